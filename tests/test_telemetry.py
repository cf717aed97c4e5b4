import csv
import json

import pytest

from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.projections import Baseline, project, scaling
from virnucpro.monitoring.telemetry import (
    THROUGHPUT_COLUMNS,
    BatchRecord,
    RunMetadata,
    RunTelemetry,
    TelemetryRecorder,
    aggregate,
    collect_metadata,
    load_records,
)


def batch(worker: str, gpu: int, group: str, **values) -> BatchRecord:
    defaults = dict(model="esm2", token_budget=1000, padded_tokens=1000, wait_seconds=0.5)
    return BatchRecord(worker=worker, gpu=gpu, group_id=group, **{**defaults, **values})


# Two workers; w2 is the slowest (span 101 → 108 s = 7 s), so elapsed is 7 s.
RECORDS = [
    batch("w1", 0, "g1", sequences=10, tokens=900, seconds=2.0, started_at=100.0,
          gpu_utilisation=80.0, gpu_memory_used=10 * 2**30),
    batch("w1", 0, "g1", sequences=20, tokens=950, seconds=3.0, started_at=102.0,
          gpu_utilisation=60.0, oom_splits=1),
    batch("w2", 1, "g2", sequences=5, tokens=400, seconds=1.0, started_at=101.0,
          gpu_utilisation=90.0),
    batch("w2", 1, "g3", sequences=15, tokens=850, seconds=2.0, started_at=106.0),
]  # fmt: skip


def test_batch_record_derived_values() -> None:
    record = RECORDS[0]
    assert record.tokens_per_second == 450.0
    assert record.sequences_per_second == 5.0
    assert record.packing_efficiency == 0.9
    assert record.ended_at == 102.0


def test_aggregate_totals_and_workers() -> None:
    run = aggregate(RECORDS)
    assert (run.sequences, run.tokens, run.batches, run.oom_splits) == (50, 3100, 4, 1)
    assert run.groups_done == 3
    assert run.elapsed_seconds == 7.0
    assert run.tokens_per_second == pytest.approx(3100 / 7)
    assert run.sequences_per_second == pytest.approx(50 / 7)
    assert run.mean_tokens_per_sequence == 62.0
    assert run.mean_utilisation == pytest.approx((80 + 60 + 90) / 3)
    assert run.packing_efficiency == pytest.approx(3100 / 4000)
    w1, w2 = run.workers
    assert (w1.worker, w1.gpu, w1.sequences, w1.tokens) == ("w1", 0, 30, 1850)
    assert (w1.busy_seconds, w1.span_seconds, w1.tokens_per_second) == (5.0, 5.0, 370.0)
    assert (w1.mean_utilisation, w1.packing_efficiency, w1.groups_done) == (70.0, 0.925, 1)
    assert w2.tokens_per_second == pytest.approx(1250 / 3)
    assert (w2.span_seconds, w2.mean_utilisation, w2.groups_done) == (7.0, 90.0, 2)
    assert w2.packing_efficiency == 0.625


def test_aggregate_empty_run() -> None:
    run = aggregate([])
    assert (run.sequences, run.elapsed_seconds, run.tokens_per_second) == (0, 0.0, 0.0)
    assert run.mean_utilisation is None and run.workers == []


def test_recorder_writes_json_and_throughput_log(tmp_path) -> None:
    for worker in ("w1", "w2"):
        recorder = TelemetryRecorder(worker, tmp_path)
        for record in RECORDS:
            if record.worker == worker:
                recorder.record(record)
        assert recorder.write() == tmp_path / f"telemetry-{worker}.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "telemetry-w1.json",
        "telemetry-w2.json",
        "throughput.csv",
    ]  # no temporary files left behind
    assert load_records(tmp_path / "telemetry-w1.json") == RECORDS[:2]
    from_files = aggregate(sorted(tmp_path.glob("telemetry-*.json")))
    assert from_files == aggregate(RECORDS)

    with (tmp_path / "throughput.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == THROUGHPUT_COLUMNS
    assert len(rows) == 1 + len(RECORDS)  # one line per batch
    assert rows[1] == ["102.000", "w1", "0", "5.000", "450.0", "80.0", str(10 * 2**30)]
    assert rows[4][5:] == ["", ""]  # no utilisation sample, no memory sample


def test_run_telemetry_json_round_trip() -> None:
    run = aggregate(RECORDS)
    assert RunTelemetry.from_dict(json.loads(json.dumps(run.to_dict()))) == run


def test_projections_from_token_throughput() -> None:
    run = aggregate(RECORDS)
    one, six = project(run)
    # 1e6 sequences × 62 tokens / (3100/7 tokens/s) = 140 000 s
    assert (one.sequences, one.hours) == (1_000_000, pytest.approx(140_000 / 3600))
    assert (six.sequences, six.hours) == (6_000_000, pytest.approx(6 * 140_000 / 3600))
    (longer,) = project(run, sequences=(1_000_000,), mean_tokens_per_sequence=124.0)
    assert longer.hours == pytest.approx(2 * 140_000 / 3600)
    assert project(aggregate([]))[0].hours == float("inf")


def test_scaling_efficiency() -> None:
    result = scaling(tokens_per_second=700.0, n_gpus=4, baseline=Baseline(200.0, 1))
    assert result.speedup == 3.5
    assert result.efficiency == 0.875
    two_to_eight = scaling(1500.0, 8, Baseline(400.0, 2))
    assert two_to_eight.efficiency == pytest.approx(3.75 / 4)


def test_baseline_from_telemetry_json(tmp_path) -> None:
    path = tmp_path / "telemetry.json"
    path.write_text(json.dumps({"run": aggregate(RECORDS).to_dict()}))
    assert Baseline.from_telemetry_json(path) == Baseline(pytest.approx(3100 / 7), 2)


def test_metadata_on_cpu_only_machine() -> None:
    metadata = collect_metadata(GpuMonitor())
    assert metadata.gpus == [] and metadata.driver_version is None
    assert metadata.cpu_count >= 1 and metadata.cpu_model
    assert metadata.torch.startswith("2.")
    assert metadata.python.count(".") == 2
    assert RunMetadata.from_dict(json.loads(json.dumps(metadata.to_dict()))) == metadata


def test_recorders_can_share_one_throughput_log_across_runs(tmp_path) -> None:
    shared = tmp_path / "throughput_log.csv"
    for run in ("run1", "run2"):
        recorder = TelemetryRecorder("w0", tmp_path / run, throughput_log=shared)
        recorder.record(batch("w0", 0, "g1", sequences=4, tokens=100, seconds=1.0, started_at=1.0))
        recorder.write()
    lines = shared.read_text().splitlines()
    assert len(lines) == 3  # one header, one line per run
    assert (tmp_path / "run1" / "telemetry-w0.json").exists()
    assert not (tmp_path / "run1" / "throughput.csv").exists()
