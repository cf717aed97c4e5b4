"""Telemetry on every Dask worker: a GPU sampler, a recorder and the Prometheus collector.

The plugin is the Dask side of `virnucpro.monitoring`: it gives each worker process
one `GpuSampler` (its own GPU, once a second, from set-up to shutdown), one
`TelemetryRecorder` and registers the library's collector in the registry that the
worker's `/metrics` renders.
"""

from __future__ import annotations

import json
from pathlib import Path

from distributed import Client, Worker, WorkerPlugin

from virnucpro.atomic_write import write_text
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.gpu_sampler import SAMPLE_INTERVAL, GpuSampler
from virnucpro.monitoring.prometheus_metrics import register_collector
from virnucpro.monitoring.telemetry import TelemetryRecorder
from virnucpro.monitoring.throughput_log import ThroughputLog


class WorkerTelemetryPlugin(WorkerPlugin):
    """Gives each Dask worker a GPU sampler, a telemetry recorder and the collector.

    Tasks find the recorder as `get_worker().plugins[WorkerTelemetryPlugin.name].recorder`.
    On teardown the sampler stops and the recorder's JSON is written, so the GPU
    readings up to the worker's shutdown are kept.
    """

    name = "virnucpro-telemetry"

    def __init__(
        self, out_dir: Path | str, throughput_log: ThroughputLog | None = None, gpu_index: int = 0
    ) -> None:
        """`gpu_index`: the visible index of the GPU the worker's models use (see
        `virnucpro.monitoring.gpu_sampler`)."""
        self.out_dir = Path(out_dir)
        self.throughput_log = throughput_log
        self.gpu_index = gpu_index
        self.sampler: GpuSampler | None = None
        self.recorder: TelemetryRecorder | None = None

    def setup(self, worker: Worker) -> None:
        # Cached for less than the sampling interval, so every reading is a fresh one.
        self.sampler = GpuSampler(GpuMonitor(max_age=SAMPLE_INTERVAL / 2), self.gpu_index)
        self.sampler.start()
        self.recorder = TelemetryRecorder(
            str(worker.name), self.out_dir, self.sampler, self.throughput_log
        )
        register_collector(self.sampler, self.recorder)

    def teardown(self, worker: Worker) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.recorder is not None and (self.recorder.groups() or self.sampler.readings()):
            self.recorder.write()


def write_scrape_targets(client: Client, path: Path | str) -> Path:
    """Write a Prometheus `file_sd_configs` file listing the scheduler and every worker.

    Worker dashboard ports are chosen at start-up (a taken port falls back to a random
    one), so only the scheduler knows them; Prometheus re-reads this file on change.
    """
    info = client.scheduler_info(n_workers=-1)
    scheduler_host = info["address"].split("://")[-1].rsplit(":", 1)[0]
    workers = [
        f"{w['host']}:{w['services']['dashboard']}"
        for w in info["workers"].values()
        if "dashboard" in w.get("services", {})
    ]
    groups = [
        {"targets": [f"{scheduler_host}:{info['services']['dashboard']}"],
         "labels": {"job": "dask-scheduler"}},
        {"targets": sorted(workers), "labels": {"job": "dask-workers"}},
    ]  # fmt: skip
    out = Path(path)
    write_text(out, json.dumps(groups, indent=1))  # Prometheus never reads half a file
    return out
