"""Watching the GPU stage while it runs: terminal dashboard, events, worker telemetry.

The flow process holds the Dask client; from it we read which worker holds which
group, the group events workers log when they finish, and Dask's own work-stealing
events. GPU figures come from NVML in this process (no CUDA context), so on a local
cluster the dashboard shows each worker's GPU; on a remote cluster, the workers'
Prometheus gauges (dashboards/) carry them instead.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from distributed import Client

from tasks.groups import GROUP_EVENT_TOPIC
from virnucpro.gpu_monitor import GpuMonitor
from virnucpro.group_inference import GroupSummary
from virnucpro.live_dashboard import Dashboard, DashboardState, WorkerStatus
from virnucpro.prometheus_metrics import WorkerTelemetryPlugin
from virnucpro.telemetry import RunEvent

_STEAL_CONFIRMED = (
    "confirm"  # distributed's stealing log: ("confirm", key, state, victim, thief, …)
)


class RunMonitor:
    """Feeds the terminal dashboard and collects the run's events."""

    def __init__(
        self,
        client: Client,
        telemetry_dir: Path,
        throughput_log: Path,
        total_groups: int,
        worker_gpus: dict[str, int],
    ):
        """`telemetry_dir`: this run's worker JSON; `throughput_log`: the CSV every run
        appends to; `worker_gpus`: worker name → GPU index on a local cluster (else {})."""
        self.client = client
        self.worker_gpus = worker_gpus
        self.total = total_groups
        self.failures: list[RunEvent] = []
        self.done: Counter[str] = Counter()
        self.gpus = GpuMonitor()
        self.dashboard = Dashboard()
        client.register_plugin(WorkerTelemetryPlugin(telemetry_dir, throughput_log))

    def __enter__(self) -> RunMonitor:
        self.dashboard.__enter__()
        self.refresh()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.refresh()
        self.dashboard.__exit__(*exc_info)

    def finished(self, summary: GroupSummary) -> None:
        self.done[summary.worker] += 1
        self.refresh()

    def failed(self, group_id: str, error: BaseException) -> None:
        self.failures.append(RunEvent(time.time(), "failed", "", f"{group_id}: {error}"))
        self.refresh()

    def events(self) -> list[RunEvent]:
        """Finished groups, OOM splits, work stolen between workers, failures; by time."""
        events = list(self.failures)
        for stamp, message in self.client.get_events(GROUP_EVENT_TOPIC):
            name = message["worker_name"]
            done = "group_skipped" if message["skipped"] else "group_done"
            events.append(RunEvent(stamp, done, name, message["group_id"]))
            if message["oom_splits"]:
                detail = f"{message['group_id']}: {message['oom_splits']} batch split(s)"
                events.append(RunEvent(stamp, "oom_split", name, detail))
        steals = [
            (stamp, message)
            for stamp, message in self.client.get_events("stealing")
            if message and message[0] == _STEAL_CONFIRMED
        ]
        workers = self.client.scheduler_info(n_workers=-1)["workers"] if steals else {}
        for stamp, (_, key, _, victim, thief, *_) in steals:
            name = str(workers.get(thief, {}).get("name", thief))
            events.append(RunEvent(stamp, "stolen", name, f"{key} from {victim}"))
        return sorted(events, key=lambda e: e.time)

    def refresh(self) -> None:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        processing = self.client.processing()
        gpus = {s.index: s for s in self.gpus.sample()}
        stolen = Counter(e.worker for e in self.events() if e.kind == "stolen")
        rows = []
        for address, worker in sorted(info.items()):
            name = str(worker.get("name", address))
            sample = gpus.get(self.worker_gpus.get(name, -1))
            rows.append(
                WorkerStatus(
                    worker=name,
                    gpu=sample.nvml_index if sample else None,
                    utilisation_percent=sample.utilisation_percent if sample else None,
                    memory_used_bytes=sample.memory_used_bytes if sample else None,
                    memory_total_bytes=sample.memory_total_bytes if sample else None,
                    groups_queued=len(processing.get(address, ())),
                    groups_done=self.done[name],
                    stolen=stolen[name],
                )
            )
        self.dashboard.update(
            DashboardState(rows, self.events()[-8:], sum(self.done.values()), self.total)
        )
