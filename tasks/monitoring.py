"""Watching the GPU stage while it runs: terminal dashboard, events, worker telemetry.

The flow process holds the Dask client; from it we read which worker holds which
group, the group events workers log when they finish (each with its group's summary,
hence each worker's throughput by the report's definition, `run_telemetry`), and
Dask's own work-stealing events. The view is
refreshed when a group ends and on a timer in between, since a GPU's load and queue
change during a group that takes minutes. GPU figures come from NVML in this process
(no CUDA context), so on a local cluster the dashboard shows each worker's GPU; on a
remote cluster, the workers' Prometheus gauges (dashboards/) carry them instead.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from uuid import UUID

from distributed import Client
from prefect.artifacts import LinkArtifact, ProgressArtifact

from tasks import dask_page
from tasks.groups import GROUP_EVENT_TOPIC
from tasks.worker_telemetry import WorkerTelemetryPlugin
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.live_dashboard import Dashboard, DashboardState, WorkerStatus
from virnucpro.monitoring.run_telemetry import RunRecords, worker_shares
from virnucpro.monitoring.telemetry import RunEvent, records_of
from virnucpro.monitoring.throughput_log import ThroughputLog
from virnucpro.run.group_inference import GroupSummary

_STEAL_CONFIRMED = (
    "confirm"  # distributed's stealing log: ("confirm", key, state, victim, thief, …)
)

log = logging.getLogger(__name__)

REFRESH_THREAD = "virnucpro-dashboard-refresh"
PROGRESS_KEY = "virnucpro-progress"


def publish_live_links(dashboard_link: str | None, run_id: UUID | None) -> list[str]:
    """Link the live Dask dashboard and our page in it from flow run `run_id` (the run
    whose URL Prefect logs first, which users open); returns the links."""
    if not dashboard_link:
        return []
    links = {"dask-dashboard": ("Dask dashboard (live while the run runs)", dashboard_link)}
    if page := dask_page.page_link(dashboard_link):
        links["virnucpro-dask-page"] = ("VirNucPro page in the Dask dashboard (live)", page)
    for key, (text, link) in links.items():
        LinkArtifact(key=key, link=link, link_text=text, flow_run_id=run_id).create()
    return [link for _, link in links.values()]


def create_progress(run_id: UUID | None, total: int) -> UUID:
    """A progress bar of finished groups on flow run `run_id`."""
    artifact = ProgressArtifact(
        key=PROGRESS_KEY, progress=0.0, description=f"0/{total} groups done", flow_run_id=run_id
    )
    return artifact.create().id


def group_summaries(
    group_messages: Iterable[tuple[float, dict]],
) -> list[tuple[float, GroupSummary]]:
    """The summaries in the group events workers logged (`tasks.groups`), stamped."""
    return [(t, GroupSummary.from_json(json.dumps(m["summary"]))) for t, m in group_messages]


def worker_throughput(summaries: Iterable[GroupSummary], now: float | None) -> dict[str, float]:
    """Each worker's ESM-2 tokens/s so far, by the report's definition: its tokens of
    the groups it finished over the GPU stage until `now` (None: the stage is over)."""
    groups, batches = [], []
    for summary in summaries:
        if not summary.skipped:  # reused results computed nothing now
            group, passes = records_of(summary)
            groups.append(group)
            batches += passes
    return worker_shares(RunRecords(groups, batches), now)


class RunMonitor:
    """Feeds the terminal view and the Dask page, and collects the run's events."""

    def __init__(
        self,
        client: Client,
        telemetry_dir: Path,
        total_groups: int,
        worker_gpus: dict[str, int],
        throughput_log: ThroughputLog | None = None,
        dashboard: Dashboard | None = None,
    ):
        """`telemetry_dir`: this run's worker JSON; `worker_gpus`: worker name → GPU
        index on a local cluster (else {}); `throughput_log`: the log every run appends
        to (its header is written here, before any worker appends); `dashboard`'s
        `interval` is also how often the view refreshes between groups."""
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
        if throughput_log is not None:
            throughput_log.prepare()
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
        return self._events(group_summaries(self.client.get_events(GROUP_EVENT_TOPIC)), None)

    def _events(
        self, groups: list[tuple[float, GroupSummary]], workers: dict | None
    ) -> list[RunEvent]:
        """`events` from group summaries already fetched; `workers` (scheduler info by
        address) names the thieves, fetched here only if None and something was stolen."""
        events = list(self.failures)
        for stamp, summary in groups:
            done = "group_skipped" if summary.skipped else "group_done"
            events.append(RunEvent(stamp, done, summary.worker, summary.group_id))
            if summary.oom_splits and not summary.skipped:
                detail = f"{summary.group_id}: {summary.oom_splits} batch split(s)"
                events.append(RunEvent(stamp, "oom_split", summary.worker, detail))
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
        groups = group_summaries(self.client.get_events(GROUP_EVENT_TOPIC))  # once a refresh
        events = self._events(groups, info)
        stolen = Counter(e.worker for e in events if e.kind == "stolen")
        running = sum(self.done.values()) < self.total
        throughput = worker_throughput((s for _, s in groups), time.time() if running else None)
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
