"""The flow against a Dask cluster the user already runs: a real `dask scheduler` and
two `dask worker` processes, each with its own local directory, as README's "Running
on several machines" starts them (on one machine, sharing the output directory)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows.predict import predict
from tasks.cluster import GPU_RESOURCE
from virnucpro.demo_models.random_models import GeneratedModels, write_demo_models
from virnucpro.errors import VirNucProError
from virnucpro.run import pipeline
from virnucpro.run.config import ModelConfig, PredictConfig

# The `dask` command installed with distributed, as README's commands use it.
DASK = str(Path(sys.executable).with_name("dask"))
TEXT_OUTPUTS = (
    "prediction_results.txt",
    "prediction_results_highestscore.csv",
    "read_verdicts.tsv",
)


@contextmanager
def dask_cluster(tmp_path: Path, worker_args: list[str]) -> Iterator[str]:
    """`dask scheduler` + two `dask worker` processes; yields the scheduler address."""
    scheduler_file = tmp_path / "scheduler.json"
    quiet = {**os.environ, "DASK_LOGGING__DISTRIBUTED": "warning"}
    processes = [
        subprocess.Popen(
            [DASK, "scheduler", "--port", "0",
             "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)],
            env=quiet,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start in 60 s"
            time.sleep(0.2)
        for name in ("w1", "w2"):
            processes.append(
                subprocess.Popen(
                    [DASK, "worker",
                     "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                     "--name", name, "--dashboard-address", ":0",
                     "--local-directory", str(tmp_path / f"local-{name}"), *worker_args],
                    env=quiet,
                )
            )  # fmt: skip
        import json

        from distributed import Client

        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> GeneratedModels:
    return write_demo_models(tmp_path_factory.mktemp("models"))


def parameters(reads: Path, models: GeneratedModels, out_dir: Path, address: str) -> dict:
    return {
        "reads": [str(reads)],
        "classifier": str(models.classifier),
        "out_dir": str(out_dir),
        "esm_model": str(models.esm),
        "dnabert_model": str(models.dnabert),
        "trust_remote_code": True,
        "scheduler_address": address,
    }


@pytest.mark.slow
def test_workers_with_the_gpu_resource_give_the_local_runs_outputs(
    prefect_api, reference_dir, models, tmp_path
):
    reads = reference_dir / "reads_public.fa"
    local = pipeline.predict(
        PredictConfig(
            reads=(reads,),
            models=ModelConfig(
                classifier=models.classifier,
                esm_model=str(models.esm),
                dnabert_model=str(models.dnabert),
                trust_remote_code=True,
            ),
            out_dir=tmp_path / "local",
        )
    )
    with dask_cluster(tmp_path, ["--resources", f"{GPU_RESOURCE}=1"]) as address:
        summary = predict(**parameters(reads, models, tmp_path / "remote", address))
    assert summary["groups"] == len(local.groups) and summary["groups_skipped"] == 0
    for name in TEXT_OUTPUTS:
        remote = (tmp_path / "remote" / "reads_public" / name).read_bytes()
        assert remote == (tmp_path / "local" / "reads_public" / name).read_bytes(), name


@pytest.mark.slow
def test_workers_without_the_gpu_resource_are_refused_in_seconds(
    prefect_api, reference_dir, models, tmp_path
):
    reads = reference_dir / "test_with_orfs.fa"
    with dask_cluster(tmp_path, []) as address:
        started = time.monotonic()
        with pytest.raises(VirNucProError) as error:
            predict(**parameters(reads, models, tmp_path / "out", address))
        seconds = time.monotonic() - started
    assert seconds < 30
    message = str(error.value)
    assert f"none of the 2 worker(s) of the Dask cluster at {address}" in message
    assert f"dask cuda worker {address} --resources GPU=1" in message
