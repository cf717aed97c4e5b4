import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The original tool's outputs live in ../shared/reference beside the checkout (CI
# clones main with shared/ next to it).
REFERENCE = ROOT.parent / "shared" / "reference" / "virnucpro_original"

# benchmarks/original_prepare.py is the independent per-codon oracle.
sys.path.insert(0, str(ROOT / "benchmarks"))
# flows/ and tasks/ import as packages when the project is installed; also from a checkout.
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="session", autouse=True)
def content_hash_cache(tmp_path_factory) -> Path:
    """Model content hashes (`virnucpro.run.fingerprint`) are cached here, not in ~."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


@pytest.fixture(scope="module")
def prefect_api():
    """One temporary Prefect API for a test module, also exported to the environment so
    Dask worker processes started later (they inherit it) report to it too."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness():
            patch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
            yield PREFECT_API_URL.value()
