"""Per-worker telemetry: a group's records per model, the JSON file, the log lines."""

import csv
import dataclasses

import pynvml
import pytest
from helpers import group_summary

from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.gpu_sampler import GpuReading
from virnucpro.monitoring.telemetry import (
    BatchRecord,
    GroupRecord,
    RunMetadata,
    TelemetryRecorder,
    collect_metadata,
    load_worker_telemetry,
    records_of,
)
from virnucpro.monitoring.throughput_log import COLUMNS, RunLabel, ThroughputLog

G1 = group_summary("g1", "w0", 100.0, 2.0, (3000, 300, 1.5), (8000, 50, 4.0), 8.0, 10,
                   oom_splits=1)  # fmt: skip


class StubSampler:
    def __init__(self, readings: list[GpuReading]) -> None:
        self._readings = readings

    def readings(self) -> list[GpuReading]:
        return list(self._readings)

    def latest(self) -> GpuReading | None:
        return self._readings[-1] if self._readings else None


def test_a_group_gives_one_record_per_model_in_the_order_they_ran():
    group, (dnabert, esm) = records_of(G1, gpu=3)
    assert group == GroupRecord("w0", 3, "g1", 10, 100.0, 8.0, 2.0)
    assert group.ended_at == 108.0
    assert dnabert == BatchRecord("w0", 3, "g1", "dnabert", 10, 3000, 300, 2, 1.5, 102.0, 0)
    assert esm == BatchRecord("w0", 3, "g1", "esm2", 10, 8000, 50, 2, 4.0, 103.5, 1)
    _, reused = records_of(dataclasses.replace(G1, skipped=True))
    assert all(b.reused for b in reused)


def test_recorder_writes_its_groups_batches_and_gpu_readings(tmp_path):
    reading = GpuReading(101.0, 3, 90.0, 2**30, 2**34, 300.0, 60.0)
    log = ThroughputLog(tmp_path / "log.csv", RunLabel("run-a", "s1", 2))
    log.prepare()
    recorder = TelemetryRecorder("w0", tmp_path / "t", StubSampler([reading]), log)
    recorder.record(G1)
    assert recorder.write() == tmp_path / "t" / "telemetry-w0.json"
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["telemetry-w0.json"]  # no temp
    telemetry = load_worker_telemetry(recorder.json_path)
    assert telemetry.groups == [records_of(G1, 3)[0]]
    assert telemetry.batches == records_of(G1, 3)[1]
    assert telemetry.gpu_readings == [reading]
    with (tmp_path / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and tuple(rows[0]) == COLUMNS
    assert rows[0]["time"] == "108.000" and rows[0]["gpu"] == "3"
    assert (rows[0]["run_id"], rows[0]["settings"], rows[0]["workers"]) == ("run-a", "s1", "2")
    assert (rows[0]["esm2_tokens"], rows[0]["esm2_padding_tokens"]) == ("8000", "50")
    assert (rows[0]["dnabert_tokens"], rows[0]["dnabert_seconds"]) == ("3000", "1.5")


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", missing)


def test_metadata_on_a_machine_without_nvml(no_nvml) -> None:
    metadata = collect_metadata(GpuMonitor())
    assert metadata.gpus == [] and metadata.driver_version is None
    assert metadata.cpu_count >= 1 and metadata.cpu_model
    assert metadata.torch.startswith("2.")
    assert metadata.python.count(".") == 2
    assert RunMetadata.from_dict(metadata.to_dict()) == metadata
