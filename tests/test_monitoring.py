"""RunMonitor turns Dask's event logs into the run's events and its live view (no
cluster needed)."""

import dataclasses
import threading
import time

from helpers import group_summary

from tasks.groups import GROUP_EVENT_TOPIC
from tasks.monitoring import (
    REFRESH_THREAD,
    RunMonitor,
    create_progress,
    group_summaries,
    publish_live_links,
    worker_throughput,
)
from virnucpro.monitoring.live_dashboard import Dashboard


class FakeClient:
    """The few Client calls RunMonitor makes, answering from canned logs."""

    def __init__(self, events: dict[str, list]):
        self.events = events
        self.plugins = []
        self.info_calls = 0

    def register_plugin(self, plugin):
        self.plugins.append(plugin)

    def get_events(self, topic):
        return self.events.get(topic, [])

    def scheduler_info(self, n_workers=-1):
        self.info_calls += 1
        return {"workers": {"tcp://w1": {"name": "gpu-a"}, "tcp://w2": {"name": "gpu-b"}}}

    def processing(self):
        return {"tcp://w1": ["g3"], "tcp://w2": []}


def group_event(stamp: float, summary) -> tuple[float, dict]:
    """A group event as `tasks.groups` logs it (the worker's address added by Dask)."""
    return (stamp, {"summary": dataclasses.asdict(summary), "worker": "tcp://x"})


def test_events_name_workers_and_keep_time_order(tmp_path):
    g1 = group_summary("g1", "gpu-a", 1.0, 0.0, (10, 0, 1.0), (10, 0, 1.0), 2.0, 1, oom_splits=2)
    g2 = group_summary("g2", "gpu-a", 1.0, 0.0, (10, 0, 1.0), (10, 0, 1.0), 2.0, 1, skipped=True)
    client = FakeClient(
        {
            GROUP_EVENT_TOPIC: [group_event(3.0, g1), group_event(5.0, g2)],
            "stealing": [
                (1.0, ("request", [])),
                (4.0, ("confirm", "embed-g3", "ready", "tcp://w1", "tcp://w2", "s1")),
            ],
        }
    )
    monitor = RunMonitor(client, tmp_path / "telemetry", 3, {})
    monitor.failed("g4", RuntimeError("corrupt"))
    events = [(e.kind, e.worker, e.detail) for e in monitor.events()]
    assert events[:-1] == [
        ("group_done", "gpu-a", "g1"),
        ("oom_split", "gpu-a", "g1: 2 batch split(s)"),
        ("stolen", "gpu-b", "embed-g3 from tcp://w1"),
        ("group_skipped", "gpu-a", "g2"),
    ]
    assert events[-1][0] == "failed" and "g4: corrupt" in events[-1][2]  # stamped now
    assert len(client.plugins) == 1  # telemetry plugin registered on the workers


class RecordingDashboard(Dashboard):
    def __init__(self, interval=2.0):
        super().__init__(interval=interval)
        self.states = []

    def update(self, state):
        self.states.append(state)


def test_each_worker_shows_its_share_of_the_runs_tokens_per_second(tmp_path):
    """The report's definition, live: ESM-2 tokens of finished groups over the GPU
    stage so far (first group start 10 s → the last end, 20 s, once all are done)."""
    a1 = group_summary("a1", "gpu-a", 10.0, 1.0, (5, 0, 1.0), (30_000, 0, 3.0), 5.0, 3)
    a2 = group_summary("a2", "gpu-a", 15.0, 0.0, (5, 0, 1.0), (50_000, 0, 4.0), 5.0, 3)
    b1 = group_summary("b1", "gpu-b", 12.0, 0.0, (5, 0, 1.0), (20_000, 0, 2.0), 4.0, 3)
    reused = group_summary("b0", "gpu-b", 1.0, 0.0, (5, 0, 1.0), (99_000, 0, 2.0), 4.0, 3,
                           skipped=True)  # fmt: skip
    stamped = [group_event(20.0, s) for s in (a1, a2, b1, reused)]
    client = FakeClient({GROUP_EVENT_TOPIC: stamped})
    dashboard = RecordingDashboard()
    monitor = RunMonitor(client, tmp_path / "t", 4, {}, dashboard=dashboard)
    for summary in (a1, a2, b1, reused):
        monitor.done[summary.worker] += 1  # as `finished` counts them
    monitor.refresh()
    rows = {row.worker: row for row in dashboard.states[-1].workers}
    assert rows["gpu-a"].tokens_per_second == 80_000 / 10
    assert rows["gpu-b"].tokens_per_second == 20_000 / 10  # the reused group computed nothing
    assert rows["gpu-a"].groups_queued == 1 and rows["gpu-b"].groups_queued == 0
    summaries = [s for _, s in group_summaries(stamped)]
    assert summaries == [a1, a2, b1, reused]
    assert worker_throughput(summaries, now=30.0) == {"gpu-a": 80_000 / 20, "gpu-b": 1_000.0}


def test_view_refreshes_on_a_timer_while_groups_run(tmp_path):
    client = FakeClient({})
    dashboard = RecordingDashboard(interval=0.05)
    with RunMonitor(client, tmp_path / "t", 1, {}, dashboard=dashboard):
        time.sleep(0.5)  # no group finishes meanwhile
    assert client.info_calls >= 5  # entry, exit and the timer's refreshes
    assert len(dashboard.states) == client.info_calls
    assert REFRESH_THREAD not in {t.name for t in threading.enumerate()}  # stopped on exit


def test_live_links_and_progress_go_on_the_parent_run(monkeypatch):
    """The run a user opens (its URL is logged first) gets the links and the progress
    bar, though the cluster and its links exist only inside the sub-run."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.testing.utilities import prefect_test_harness

    from tasks import dask_page

    monkeypatch.setattr(dask_page, "page_link", lambda link: link.replace("status", "page"))

    @flow
    def sub_run(parent):
        publish_live_links("http://host:8787/status", parent)
        return create_progress(parent, 12), FlowRunContext.get().flow_run.id

    @flow
    def parent_run():
        return FlowRunContext.get().flow_run.id, *sub_run(FlowRunContext.get().flow_run.id)

    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(), get_client(sync_client=True) as client:
        parent, progress, child = parent_run()
        artifacts = client.read_artifacts()
    assert parent != child
    by_key = {a.key: a for a in artifacts}
    assert {by_key[k].flow_run_id for k in ("dask-dashboard", "virnucpro-dask-page")} == {parent}
    assert by_key["virnucpro-progress"].id == progress
    assert by_key["virnucpro-progress"].flow_run_id == parent
    assert by_key["virnucpro-progress"].description == "0/12 groups done"
    assert "(http://host:8787/page)" in by_key["virnucpro-dask-page"].data
