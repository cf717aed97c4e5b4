"""RunMonitor turns Dask's event logs into the run's events (no cluster needed)."""

from tasks.groups import GROUP_EVENT_TOPIC
from tasks.monitoring import RunMonitor


class FakeClient:
    """The few Client calls RunMonitor makes, answering from canned logs."""

    def __init__(self, events: dict[str, list]):
        self.events = events
        self.plugins = []

    def register_plugin(self, plugin):
        self.plugins.append(plugin)

    def get_events(self, topic):
        return self.events.get(topic, [])

    def scheduler_info(self, n_workers=-1):
        return {"workers": {"tcp://w1": {"name": "gpu-a"}, "tcp://w2": {"name": "gpu-b"}}}

    def processing(self):
        return {"tcp://w1": ["g3"], "tcp://w2": []}


def test_events_name_workers_and_keep_time_order(tmp_path):
    group = {"worker": "tcp://w1", "worker_name": "gpu-a", "skipped": False, "oom_splits": 0}
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
