"""Every command the README shows runs, as written, so the README cannot drift from the
code:

- `make demo`, twice: the second run reuses every group (the demo writes its random
  models again, with the same bytes, and results are keyed by content);
- the commands of "Running on your data" (the flow, `virnucpro prepare`, `virnucpro
  predict`, `virnucpro make-demo-models`), read from the README itself. Their file names
  are files in a scratch directory, and the default models they name
  (`esm2_t36_3B_UR50D`, `zhihan1996/DNABERT-S`) are small random-init stand-ins put in
  the caches where those names are looked up, as a download would (no network here).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser

from virnucpro.demo_models.random_models import write_demo_models
from virnucpro.models.sources import DNABERT_S, ESM2_3B
from virnucpro.run.planning import MIN_GROUPS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE_READS = ROOT / "virnucpro" / "data" / "sample_reads.fa"

pytestmark = pytest.mark.slow


def readme_commands(section: str) -> list[list[str]]:
    """The shell commands in the ```sh blocks of a README section, as argument lists."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```sh\n(.*?)```", text[start:end], re.DOTALL)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [argv for argv in map(lambda line: shlex.split(line, comments=True), lines) if argv]


def environment(tmp_path: Path, cache: Path) -> dict[str, str]:
    """No configured Prefect API (the flow starts its own), Prefect's database and the
    model caches in the scratch directory, and no network."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and k not in ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE")
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        XDG_CACHE_HOME=str(cache),
        HF_HUB_OFFLINE="1",
    )
    return env


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    completed = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{shlex.join(argv)}\n{output}"
    return output


def test_make_demo_twice_reuses_every_group(tmp_path):
    venv = Path(sys.prefix)
    demo = [
        "make",
        "-C",
        str(ROOT),
        "-o",
        f"{venv}/.installed",  # the venv this test runs in is the one to use, as it is
        "demo",
        f"VENV={venv}",
        f"DEMO_OUT={tmp_path / 'demo'}",
    ]
    env = environment(tmp_path, tmp_path / "cache")

    first = run(demo, ROOT, env)
    second = run(demo, ROOT, env)

    assert f"{MIN_GROUPS} groups done, 0 skipped" in first, first
    assert f"0 groups done, {MIN_GROUPS} skipped" in second, second
    for output in (first, second):
        assert f"results: {tmp_path / 'demo' / 'sample_reads'}" in output
        assert "Traceback" not in output and "distributed." not in output, output
    results = list((tmp_path / "demo" / ".virnucpro-work" / "results").glob("*/*.parquet"))
    assert len(results) == MIN_GROUPS  # one fingerprint: nothing computed twice


@pytest.fixture
def scratch(tmp_path, reference_dir) -> Path:
    """The files the commands name: reads.fa, more_reads/ and 300_model.pth (a demo
    classifier for the demo models' features)."""
    shutil.copy(SAMPLE_READS, tmp_path / "reads.fa")
    (tmp_path / "more_reads").mkdir()
    with open(reference_dir / "reads_public.fa") as handle:
        records = list(SimpleFastaParser(handle))[:40]
    (tmp_path / "more_reads" / "more.fa").write_text(  # read ids unique across inputs
        "".join(f">more_{title}\n{sequence}\n" for title, sequence in records)
    )
    models = write_demo_models(tmp_path / "demo-models")
    shutil.copy(models.classifier, tmp_path / "300_model.pth")
    return tmp_path


def cache_default_models(cache: Path, scratch: Path) -> None:
    """The demo models under the default names, where resolving those names finds them:
    fair-esm's torch.hub file and a Hugging Face hub snapshot."""
    models = scratch / "demo-models"
    checkpoints = cache / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    shutil.copy(next(models.glob("esm2_*.pt")), checkpoints / f"{ESM2_3B}.pt")
    hub = cache / "huggingface" / "hub" / f"models--{DNABERT_S.replace('/', '--')}"
    revision = "0" * 40
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text(revision)
    shutil.copytree(next(models.glob("dnabert_*")), hub / "snapshots" / revision)


def as_run_here(argv: list[str]) -> list[str]:
    """The README's programs in this checkout and virtual environment."""
    if argv[:2] == [".venv/bin/python", "flows/predict.py"]:
        return [sys.executable, str(ROOT / "flows" / "predict.py"), *argv[2:]]
    if argv[0] == "virnucpro":
        return [str(Path(sys.executable).parent / "virnucpro"), *argv[1:]]
    raise AssertionError(f"a README command this test does not know: {shlex.join(argv)}")


def test_the_commands_for_your_own_data_run_as_written(scratch):
    commands = readme_commands("Running on your data")
    programs = [argv[1] if argv[0] != "virnucpro" else f"virnucpro {argv[1]}" for argv in commands]
    assert programs == [
        "flows/predict.py",
        "virnucpro prepare",
        "virnucpro predict",
        "virnucpro make-demo-models",
    ]
    cache = scratch / "cache"
    cache_default_models(cache, scratch)
    env = environment(scratch, cache)
    flow, prepare, predict, make_models = (as_run_here(argv) for argv in commands)

    output = run(flow, scratch, env)
    for stem in ("reads", "more"):
        assert f"results: results/{stem}" in output, output
        assert (scratch / "results" / stem / "read_verdicts.tsv").is_file()
    flow_frames = (scratch / "results/reads/reads_chunked300_identified_protein.faa").read_bytes()

    run(prepare, scratch, env)
    assert (scratch / "prepared/reads_chunked300_identified_protein.faa").read_bytes() == (
        flow_frames
    )
    assert (scratch / "prepared/reads_chunked300_ledger.tsv").is_file()

    output = run(predict, scratch, env)
    assert re.search(r"^\d+ frames scored → results/reads$", output, re.MULTILINE), output

    output = run(make_models, scratch, env)
    written = re.findall(r": (models/\S+)$", output, re.MULTILINE)  # ESM-2, DNABERT-S, classifier
    assert len(written) == 3 and all((scratch / path).exists() for path in written), output
