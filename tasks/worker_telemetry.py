"""Telemetry on every Dask worker: a GPU monitor, a recorder and the Prometheus collector.

The plugin is the Dask side of `virnucpro.monitoring`: it owns one `GpuMonitor` and one
`TelemetryRecorder` per worker process and registers the library's collector in the
registry that the worker's `/metrics` renders.
"""

from __future__ import annotations

import json
from pathlib import Path

from distributed import Client, Worker, WorkerPlugin

from virnucpro.atomic_write import write_text
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.prometheus_metrics import register_collector
from virnucpro.monitoring.telemetry import TelemetryRecorder


class WorkerTelemetryPlugin(WorkerPlugin):
    """Gives each Dask worker a GPU monitor, a telemetry recorder and the collector.

    Tasks find the recorder as `get_worker().plugins[WorkerTelemetryPlugin.name].recorder`.
    On teardown the recorder's JSON is written, so telemetry survives a clean shutdown
    even if the flow did not write it.
    """

    name = "virnucpro-telemetry"

    def __init__(self, out_dir: Path | str, throughput_log: Path | str | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.throughput_log = throughput_log
        self.monitor: GpuMonitor | None = None
        self.recorder: TelemetryRecorder | None = None

    def setup(self, worker: Worker) -> None:
        self.monitor = GpuMonitor()
        self.recorder = TelemetryRecorder(str(worker.name), self.out_dir, self.throughput_log)
        register_collector(self.monitor, self.recorder)

    def teardown(self, worker: Worker) -> None:
        if self.recorder is not None and self.recorder.records():
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
