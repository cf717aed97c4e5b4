"""The library (`virnucpro/`) works without the orchestrator: no module of it imports
Prefect, Dask or distributed (those live in `tasks/` and `flows/`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import virnucpro

ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "dask_cuda")

IMPORT_ALL = f"""
import importlib, importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ORCHESTRATION!r}:
            raise ImportError(f"the library imported {{name}}")

sys.meta_path.insert(0, Refuse())
for name in sys.argv[1:]:
    importlib.import_module(name)
print(len(sys.argv) - 1)
"""


def library_modules() -> list[str]:
    root = Path(virnucpro.__file__).parent
    return sorted(
        ".".join(("virnucpro", *path.relative_to(root).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in root.rglob("*.py")
        if "dnabert_code" not in path.parts  # remote-code files, not modules of ours
    )


def test_every_library_module_imports_without_prefect_or_dask():
    modules = library_modules()
    assert "virnucpro.run.pipeline" in modules and "virnucpro.monitoring.report" in modules
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *modules],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [str(len(modules))]


def test_the_guard_catches_an_orchestration_import():
    """The check itself works: importing a task module (which needs Prefect) fails."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, "tasks.cluster"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(virnucpro.__file__).parents[1],
    )
    assert result.returncode != 0
    assert "the library imported prefect" in result.stderr
