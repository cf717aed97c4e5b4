"""Watching the GPU stage while it runs: terminal dashboard, events, worker telemetry.

The flow process holds the Dask client; from it we read which worker holds which
group, the group events workers log when they finish (with their tokens and compute
time, hence each worker's throughput), and Dask's own work-stealing events. The view is
refreshed when a group ends and on a timer in between, since a GPU's load and queue
change during a group that takes minutes. GPU figures come from NVML in this process
(no CUDA context), so on a local cluster the dashboard shows each worker's GPU; on a
remote cluster, the workers' Prometheus gauges (dashboards/) carry them instead.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from distributed import Client

from tasks import dask_page
from tasks.groups import GROUP_EVENT_TOPIC
from tasks.worker_telemetry import WorkerTelemetryPlugin
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.live_dashboard import Dashboard, DashboardState, WorkerStatus
from virnucpro.monitoring.telemetry import RunEvent
from virnucpro.run.group_inference import GroupSummary

_STEAL_CONFIRMED = (
    "confirm"  # distributed's stealing log: ("confirm", key, state, victim, thief, …)
)

log = logging.getLogger(__name__)

REFRESH_THREAD = "virnucpro-dashboard-refresh"


def worker_throughput(group_messages: Iterable[tuple[float, dict]]) -> dict[str, float]:
    """ESM-2 tokens per second of compute (reading and model loading excluded) of each
    worker, over the groups it computed so far; skipped groups computed nothing."""
    tokens: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for _, message in group_messages:
        compute = message["seconds"] - message["wait_seconds"]
        if not message["skipped"] and compute > 0:
            tokens[message["worker_name"]] += message["tokens"]
            seconds[message["worker_name"]] += compute
    return {name: tokens[name] / seconds[name] for name in seconds}


class RunMonitor:
    """Feeds the terminal view and the Dask page, and collects the run's events."""

    def __init__(
        self,
        client: Client,
        telemetry_dir: Path,
        throughput_log: Path,
        total_groups: int,
        worker_gpus: dict[str, int],
        dashboard: Dashboard | None = None,
    ):
        """`telemetry_dir`: this run's worker JSON; `throughput_log`: the CSV every run
        appends to; `worker_gpus`: worker name → GPU index on a local cluster (else {});
        `dashboard`'s `interval` is also how often the view refreshes between groups."""
        self.client = client
        self.worker_gpus = worker_gpus
        self.total = total_groups
        self.failures: list[RunEvent] = []
        self.done: Counter[str] = Counter()
        self.gpus = GpuMonitor()
        self.dashboard = dashboard or Dashboard()
        self._lock = threading.Lock()  # the flow's thread and the timer both refresh
        self._stop = threading.Event()
        # The timer runs in a copy of this context, so what it logs belongs to the run.
        self._timer = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._refresh_on_timer,),
            name=REFRESH_THREAD,
            daemon=True,
        )
        client.register_plugin(WorkerTelemetryPlugin(telemetry_dir, throughput_log))

    def __enter__(self) -> RunMonitor:
        self.dashboard.__enter__()
        self.refresh()
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._timer.join()
        self.refresh()
        self.dashboard.__exit__(*exc_info)

    def _refresh_on_timer(self) -> None:
        while not self._stop.wait(self.dashboard.interval):
            try:
                self.refresh()
            except Exception as error:  # e.g. the cluster closing under us: the next tick
                log.debug("dashboard refresh failed: %s", error)

    def finished(self, summary: GroupSummary) -> None:
        with self._lock:
            self.done[summary.worker] += 1
        self.refresh()

    def failed(self, group_id: str, error: BaseException) -> None:
        with self._lock:
            self.failures.append(RunEvent(time.time(), "failed", "", f"{group_id}: {error}"))
        self.refresh()

    def events(self) -> list[RunEvent]:
        """Finished groups, OOM splits, work stolen between workers, failures; by time."""
        return self._events(self.client.get_events(GROUP_EVENT_TOPIC), None)

    def _events(
        self, group_messages: Iterable[tuple[float, dict]], workers: dict | None
    ) -> list[RunEvent]:
        """`events` from group messages already fetched; `workers` (scheduler info by
        address) names the thieves, fetched here only if None and something was stolen."""
        events = list(self.failures)
        for stamp, message in group_messages:
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
        if steals and workers is None:
            workers = self.client.scheduler_info(n_workers=-1)["workers"]
        for stamp, (_, key, _, victim, thief, *_) in steals:
            name = str(workers.get(thief, {}).get("name", thief))
            events.append(RunEvent(stamp, "stolen", name, f"{key} from {victim}"))
        return sorted(events, key=lambda e: e.time)

    def refresh(self) -> None:
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        processing = self.client.processing()
        gpus = {s.index: s for s in self.gpus.sample()}
        group_messages = self.client.get_events(GROUP_EVENT_TOPIC)  # one fetch per refresh
        events = self._events(group_messages, info)
        stolen = Counter(e.worker for e in events if e.kind == "stolen")
        throughput = worker_throughput(group_messages)
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
                    tokens_per_second=throughput.get(name, 0.0),
                    groups_queued=len(processing.get(address, ())),
                    groups_done=self.done[name],
                    stolen=stolen[name],
                )
            )
        state = DashboardState(rows, events[-8:], sum(self.done.values()), self.total)
        self.dashboard.update(state)
        dask_page.publish(state)
