import json

import pytest
from distributed import Worker
from helpers import group_summary, scrape, telemetry_cluster
from prometheus_client import CollectorRegistry, generate_latest

from tasks.worker_telemetry import WorkerTelemetryPlugin, write_scrape_targets
from virnucpro.monitoring import prometheus_metrics
from virnucpro.monitoring.gpu_sampler import GpuReading
from virnucpro.monitoring.prometheus_metrics import register_collector
from virnucpro.monitoring.telemetry import TelemetryRecorder

G1 = group_summary("g1", "w", 0.0, 0.0, (500, 100, 0.25), (900, 0, 1.0), 2.0, 4)
G2 = group_summary("g2", "w", 2.0, 0.0, (300, 0, 0.5), (700, 100, 1.0), 2.0, 6, oom_splits=1)


class StubSampler:
    def latest(self) -> GpuReading:
        return GpuReading(5.0, 2, 91.0, 5 * 2**30, 80 * 2**30, 300.0, 55.0)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    monkeypatch.setattr(prometheus_metrics, "_collector", None)
    return CollectorRegistry()


def test_collector_values(registry: CollectorRegistry, tmp_path) -> None:
    recorder = TelemetryRecorder("w", tmp_path)
    recorder.record(G1)
    recorder.record(G2)
    register_collector(StubSampler(), recorder, registry=registry)
    gpu = {"gpu": "2"}  # the worker's own GPU by its NVML index
    assert registry.get_sample_value("virnucpro_gpu_utilisation_percent", gpu) == 91.0
    assert registry.get_sample_value("virnucpro_gpu_memory_used_bytes", gpu) == 5 * 2**30
    assert registry.get_sample_value("virnucpro_gpu_power_watts", gpu) == 300.0
    assert registry.get_sample_value("virnucpro_gpu_temperature_celsius", gpu) == 55.0
    esm, dnabert = {"model": "esm2"}, {"model": "dnabert"}
    assert registry.get_sample_value("virnucpro_tokens_total", esm) == 1600
    assert registry.get_sample_value("virnucpro_tokens_total", dnabert) == 800
    assert registry.get_sample_value("virnucpro_padding_tokens_total", dnabert) == 100
    assert registry.get_sample_value("virnucpro_compute_seconds_total", dnabert) == 0.75
    assert registry.get_sample_value("virnucpro_packing_efficiency") == pytest.approx(2400 / 2600)
    assert registry.get_sample_value("virnucpro_sequences_processed_total") == 10
    assert registry.get_sample_value("virnucpro_groups_done_total") == 2
    assert registry.get_sample_value("virnucpro_oom_splits_total") == 1


def test_registration_is_idempotent(registry: CollectorRegistry, tmp_path) -> None:
    first = register_collector(registry=registry)
    recorder = TelemetryRecorder("w", tmp_path)
    recorder.record(G1)
    second = register_collector(recorder=recorder, registry=registry)  # no duplicate error
    assert first is second and second.recorder is recorder
    text = generate_latest(registry).decode()
    assert text.count("# TYPE virnucpro_sequences_processed_total counter") == 1
    assert registry.get_sample_value("virnucpro_sequences_processed_total") == 4
    # Without a GPU sampler the GPU families are present but empty.
    assert "# TYPE virnucpro_gpu_utilisation_percent gauge" in text
    assert "virnucpro_gpu_utilisation_percent{" not in text


def _record_on_worker(dask_worker: Worker) -> int:
    recorder = dask_worker.plugins[WorkerTelemetryPlugin.name].recorder
    recorder.record(G1)
    return len(recorder.groups())


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
    assert 'virnucpro_tokens_total{model="esm2"} 900.0' in worker_text
    assert "virnucpro_sequences_processed_total 4.0" in worker_text
    assert "virnucpro_groups_done_total 1.0" in worker_text
    assert "virnucpro_oom_splits_total 0.0" in worker_text
    assert "dask_worker_threads 1.0" in worker_text  # Dask's own metrics still there
    assert "dask_scheduler_workers" in scheduler_text
    assert "virnucpro_" not in scheduler_text  # the scheduler process never registered ours
    # The plugin's teardown wrote the worker's records when the cluster closed.
    assert len(list(tmp_path.glob("telemetry-*.json"))) == 1
