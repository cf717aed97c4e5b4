"""RunMonitor turns Dask's event logs into the run's events and its live view (no
cluster needed)."""

import threading
import time

from tasks.groups import GROUP_EVENT_TOPIC
from tasks.monitoring import REFRESH_THREAD, RunMonitor
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


def test_events_name_workers_and_keep_time_order(tmp_path):
    group = {"worker": "tcp://w1", "worker_name": "gpu-a", "skipped": False, "oom_splits": 0,
             "tokens": 1000, "seconds": 2.0, "wait_seconds": 1.0}  # fmt: skip
    client = FakeClient(
        {
            GROUP_EVENT_TOPIC: [
                (3.0, {**group, "group_id": "g1", "oom_splits": 2}),
                (5.0, {**group, "group_id": "g2", "skipped": True}),
            ],
            "stealing": [
                (1.0, ("request", [])),
                (4.0, ("confirm", "embed-g3", "ready", "tcp://w1", "tcp://w2", "s1")),
            ],
        }
    )
    monitor = RunMonitor(client, tmp_path / "telemetry", tmp_path / "log.csv", 3, {})
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


def group_event(worker, tokens, seconds, wait_seconds=0.0, skipped=False):
    message = {"worker": "tcp://x", "worker_name": worker, "group_id": f"g{tokens}",
               "skipped": skipped, "oom_splits": 0, "tokens": tokens, "seconds": seconds,
               "wait_seconds": wait_seconds}  # fmt: skip
    return (1.0, message)


def test_each_worker_shows_its_tokens_per_second_of_compute(tmp_path):
    client = FakeClient(
        {
            GROUP_EVENT_TOPIC: [
                group_event("gpu-a", 30_000, 4.0, wait_seconds=1.0),  # 3 s of compute
                group_event("gpu-a", 50_000, 5.0),
                group_event("gpu-b", 20_000, 2.0),
                group_event("gpu-b", 99_000, 0.0, skipped=True),  # reused, no compute
            ]
        }
    )
    dashboard = RecordingDashboard()
    monitor = RunMonitor(client, tmp_path / "t", tmp_path / "log.csv", 4, {}, dashboard)
    monitor.refresh()
    rows = {row.worker: row for row in dashboard.states[-1].workers}
    assert rows["gpu-a"].tokens_per_second == 80_000 / 8.0
    assert rows["gpu-b"].tokens_per_second == 20_000 / 2.0
    assert rows["gpu-a"].groups_queued == 1 and rows["gpu-b"].groups_queued == 0


def test_view_refreshes_on_a_timer_while_groups_run(tmp_path):
    client = FakeClient({})
    dashboard = RecordingDashboard(interval=0.05)
    with RunMonitor(client, tmp_path / "t", tmp_path / "log.csv", 1, {}, dashboard):
        time.sleep(0.5)  # no group finishes meanwhile
    assert client.info_calls >= 5  # entry, exit and the timer's refreshes
    assert len(dashboard.states) == client.info_calls
    assert REFRESH_THREAD not in {t.name for t in threading.enumerate()}  # stopped on exit
