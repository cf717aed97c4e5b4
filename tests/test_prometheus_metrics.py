import json

import pytest
from distributed import Worker
from helpers import scrape, telemetry_cluster
from prometheus_client import CollectorRegistry, generate_latest

from tasks.worker_telemetry import WorkerTelemetryPlugin, write_scrape_targets
from virnucpro.monitoring import prometheus_metrics
from virnucpro.monitoring.gpu_monitor import GpuSample
from virnucpro.monitoring.prometheus_metrics import register_collector
from virnucpro.monitoring.telemetry import BatchRecord, TelemetryRecorder


def batch(model: str, group: str, tokens: int, seconds: float, oom: int = 0) -> BatchRecord:
    return BatchRecord(
        "w", 0, group, model, sequences=4, tokens=tokens, token_budget=1000,
        padded_tokens=1000, seconds=seconds, wait_seconds=0.0, started_at=0.0, oom_splits=oom,
    )  # fmt: skip


class StubMonitor:
    def sample(self) -> list[GpuSample]:
        return [
            GpuSample(0, 2, "NVIDIA H100", "GPU-x", 91.0, 5 * 2**30, 80 * 2**30, 55.0, 300.0,
                      None, (9, 0), True, 0.0)
        ]  # fmt: skip


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    monkeypatch.setattr(prometheus_metrics, "_collector", None)
    return CollectorRegistry()


def test_collector_values(registry: CollectorRegistry, tmp_path) -> None:
    recorder = TelemetryRecorder("w", tmp_path)
    for record in (
        batch("esm2", "g1", 900, 1.0),
        batch("esm2", "g2", 700, 1.0, oom=1),
        batch("dnabert", "g1", 500, 0.25),
    ):
        recorder.record(record)
    register_collector(StubMonitor(), recorder, registry=registry)
    assert registry.get_sample_value("virnucpro_gpu_utilisation_percent", {"gpu": "0"}) == 91.0
    assert registry.get_sample_value("virnucpro_gpu_memory_used_bytes", {"gpu": "0"}) == 5 * 2**30
    assert registry.get_sample_value("virnucpro_gpu_power_watts", {"gpu": "0"}) == 300.0
    assert registry.get_sample_value("virnucpro_tokens_per_second", {"model": "esm2"}) == 800.0
    assert registry.get_sample_value("virnucpro_tokens_per_second", {"model": "dnabert"}) == 2000.0
    assert registry.get_sample_value("virnucpro_packing_efficiency") == pytest.approx(2100 / 3000)
    assert registry.get_sample_value("virnucpro_sequences_processed_total") == 12
    assert registry.get_sample_value("virnucpro_groups_done_total") == 2
    assert registry.get_sample_value("virnucpro_oom_splits_total") == 1


def test_registration_is_idempotent(registry: CollectorRegistry, tmp_path) -> None:
    first = register_collector(registry=registry)
    recorder = TelemetryRecorder("w", tmp_path)
    recorder.record(batch("esm2", "g1", 100, 1.0))
    second = register_collector(recorder=recorder, registry=registry)  # no duplicate error
    assert first is second and second.recorder is recorder
    text = generate_latest(registry).decode()
    assert text.count("# TYPE virnucpro_sequences_processed_total counter") == 1
    assert registry.get_sample_value("virnucpro_sequences_processed_total") == 4
    # Without a GPU monitor the GPU families are present but empty.
    assert "# TYPE virnucpro_gpu_utilisation_percent gauge" in text
    assert registry.get_sample_value("virnucpro_gpu_utilisation_percent", {"gpu": "0"}) is None


def _record_on_worker(dask_worker: Worker) -> int:
    recorder = dask_worker.plugins[WorkerTelemetryPlugin.name].recorder
    recorder.record(batch("esm2", "g1", 900, 1.5))
    return len(recorder.records())


def test_metrics_on_a_real_dask_worker_endpoint(tmp_path) -> None:
    with telemetry_cluster(tmp_path) as (cluster, client):
        assert list(client.run(_record_on_worker).values()) == [1]
        (worker,) = client.scheduler_info()["workers"].values()
        worker_text = scrape(f"http://{worker['host']}:{worker['services']['dashboard']}/metrics")
        scheduler_text = scrape(cluster.dashboard_link.replace("/status", "/metrics"))
        targets = json.loads(write_scrape_targets(client, tmp_path / "targets.json").read_text())
    scheduler_port = cluster.dashboard_link.split(":")[-1].split("/")[0]
    assert targets == [
        {"targets": [f"127.0.0.1:{scheduler_port}"], "labels": {"job": "dask-scheduler"}},
        {
            "targets": [f"{worker['host']}:{worker['services']['dashboard']}"],
            "labels": {"job": "dask-workers"},
        },
    ]
    for name in (
        "virnucpro_gpu_utilisation_percent",
        "virnucpro_gpu_memory_used_bytes",
        "virnucpro_gpu_memory_total_bytes",
        "virnucpro_gpu_temperature_celsius",
        "virnucpro_gpu_power_watts",
        "virnucpro_packing_efficiency",
    ):
        assert f"# TYPE {name} gauge" in worker_text
    assert 'virnucpro_tokens_per_second{model="esm2"} 600.0' in worker_text
    assert "virnucpro_sequences_processed_total 4.0" in worker_text
    assert "virnucpro_groups_done_total 1.0" in worker_text
    assert "virnucpro_oom_splits_total 0.0" in worker_text
    assert "dask_worker_threads 1.0" in worker_text  # Dask's own metrics still there
    assert "dask_scheduler_workers" in scheduler_text
    assert "virnucpro_" not in scheduler_text  # the scheduler process never registered ours
    # The plugin's teardown wrote the worker's records when the cluster closed.
    assert len(list(tmp_path.glob("telemetry-*.json"))) == 1
