"""Test helpers shared by several test modules."""

from __future__ import annotations

import os
import select
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest
from distributed import Client, LocalCluster

from tasks.worker_telemetry import WorkerTelemetryPlugin


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    """Run a command attached to a pseudo-terminal; its exit code and all it printed."""
    import pty

    main, child = pty.openpty()
    process = subprocess.Popen(
        args, stdin=child, stdout=child, stderr=child, env=env, cwd=Path(__file__).parents[1]
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the pty
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(timeout=10), output.decode(errors="replace")


@contextmanager
def telemetry_cluster(out_dir: Path) -> Iterator[tuple[LocalCluster, Client]]:
    """A one-worker process cluster with our telemetry plugin, dashboards on free ports."""
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(WorkerTelemetryPlugin(out_dir))
        yield cluster, client


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def ledger_rows(path: Path) -> list:
    """The rows of a ledger file as `LedgerRow`s, through the library's one parser."""
    from virnucpro.reads.ledger import LedgerRow, read_ledger_table

    table = read_ledger_table(path)
    return [LedgerRow(*row) for row in table.itertuples(index=False, name=None)]


def cosine_rows(a, b):
    """Cosine similarity of each row of `a` with the same row of `b`."""
    import numpy as np

    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class FakeNvml:
    """Two fake GPUs: an A100 (cc 8.0, all queries work) and a V100 (cc 7.0, no energy)."""

    def __init__(self) -> None:
        self.reads = 0
        self.shutdowns = 0
        self.utilisation = [55, 80]
        self.devices = [
            {"name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-aaaa-1111", "cc": (8, 0)},
            {"name": "Tesla V100-SXM2-32GB", "uuid": "GPU-bbbb-2222", "cc": (7, 0)},
        ]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def not_supported(*_args):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

        def energy(handle):
            if handle == 1:
                not_supported()
            return 123_456_789

        def utilisation(handle):
            self.reads += 1
            return SimpleNamespace(gpu=self.utilisation[handle], memory=10)

        patches = {
            "nvmlInit": lambda: None,
            "nvmlShutdown": self._shutdown,
            "nvmlDeviceGetCount": lambda: len(self.devices),
            "nvmlDeviceGetHandleByIndex": lambda i: i,
            "nvmlDeviceGetName": lambda h: self.devices[h]["name"],
            "nvmlDeviceGetUUID": lambda h: self.devices[h]["uuid"],
            "nvmlDeviceGetUtilizationRates": utilisation,
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(
                used=(h + 1) * 2**30, total=80 * 2**30, free=0
            ),
            "nvmlDeviceGetTemperature": lambda h, sensor: 40 + h,
            "nvmlDeviceGetPowerUsage": lambda h: 250_500,
            "nvmlDeviceGetTotalEnergyConsumption": energy,
            "nvmlDeviceGetCudaComputeCapability": lambda h: self.devices[h]["cc"],
            "nvmlSystemGetDriverVersion": lambda: "550.54.15",
            "nvmlSystemGetCudaDriverVersion": lambda: 12040,
        }
        for name, function in patches.items():
            monkeypatch.setattr(pynvml, name, function)

    def _shutdown(self) -> None:
        self.shutdowns += 1


def group_summary(
    group_id: str,
    worker: str,
    started_at: float,
    wait: float,
    dnabert: tuple[int, int, float],
    esm: tuple[int, int, float],
    seconds: float,
    frames: int,
    skipped: bool = False,
    oom_splits: int = 0,
):
    """A GroupSummary as `run_group` returns it; `dnabert` and `esm` are (tokens,
    padding tokens, seconds) of each model's pass over the group's `frames` frames."""
    from virnucpro.models.batching import EmbedStats
    from virnucpro.run.group_inference import GroupSummary

    def stats(tokens: int, padding: int, compute: float, splits: int = 0) -> EmbedStats:
        return EmbedStats(frames, tokens, padding, 2, splits, 0, compute)

    return GroupSummary(group_id, frames, esm[0], skipped, worker, started_at, seconds, wait,
                        stats(*dnabert), stats(*esm, oom_splits), 32768, 16384)  # fmt: skip


def fixed_run():
    """A small run with known figures (tests/test_run_telemetry.py works them out):
    two workers, three groups computed over a 100 s → 115 s GPU stage, one reused.

    w0 (GPU 0): g1 100–108 s (wait 2, DNABERT-S 1 s, ESM-2 4 s), g2 108–115 s;
    w1 (GPU 1): g3 101–113 s; reading every 5 s-ish with known utilisations."""
    from virnucpro.monitoring.gpu_sampler import GpuReading
    from virnucpro.monitoring.telemetry import WorkerTelemetry, records_of

    gib = 2**30
    computed = {
        "w0": [
            group_summary("g1", "w0", 100.0, 2.0, (3000, 300, 1.0), (8000, 0, 4.0), 8.0, 10),
            group_summary("g2", "w0", 108.0, 0.0, (3000, 100, 1.0), (10000, 200, 5.0), 7.0, 12),
        ],
        "w1": [
            group_summary("g3", "w1", 101.0, 3.0, (4000, 0, 2.0), (12000, 0, 6.0), 12.0, 8,
                          oom_splits=1),
        ],
    }  # fmt: skip
    readings = {
        "w0": [GpuReading(100.0, 0, 50.0, 10 * gib, 80 * gib, 300.0, 60.0),
               GpuReading(105.0, 0, 100.0, 20 * gib, 80 * gib, 400.0, 70.0)],
        "w1": [GpuReading(99.0, 1, 0.0, 5 * gib, 80 * gib, 100.0, 40.0),
               GpuReading(104.0, 1, 90.0, 30 * gib, 80 * gib, 350.0, 65.0)],
    }  # fmt: skip
    workers = []
    for name, summaries in computed.items():
        gpu = readings[name][0].gpu
        groups, batches = [], []
        for summary in summaries:
            group, passes = records_of(summary, gpu)
            groups.append(group)
            batches += passes
        workers.append(WorkerTelemetry(name, groups, batches, readings[name]))
    reused = group_summary("g4", "old", 10.0, 1.0, (2000, 0, 1.0), (4000, 0, 2.0), 5.0, 5, True)
    return workers, [*computed["w0"], *computed["w1"], reused]


def memory_from_steps(steps: list[int], total: int):
    """A fake GPU memory reader for the budget probe: 1 byte per token of the largest
    step the model received since the previous read, on a device of `total` bytes."""
    read_up_to = [0]

    def read_memory() -> tuple[int, int]:
        peak = max(steps[read_up_to[0] :], default=0)
        read_up_to[0] = len(steps)
        return peak, total

    return read_memory
