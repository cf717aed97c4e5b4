"""throughput_log.csv across runs: lines per group, runs read back, scaling's baseline,
and projections."""

import pytest
from helpers import fixed_run, group_summary

from virnucpro.monitoring.projections import Baseline, project, scaling
from virnucpro.monitoring.run_telemetry import RunRecords, summarise
from virnucpro.monitoring.telemetry import records_of
from virnucpro.monitoring.throughput_log import (
    COLUMNS,
    RunLabel,
    ThroughputLog,
    read_runs,
    settings_key,
)
from virnucpro.run.config import ModelConfig, PredictConfig


def log_run(path, run_id: str, settings: str, workers: int, groups) -> None:
    """Append `groups` (summaries) as run `run_id` would."""
    log = ThroughputLog(path, RunLabel(run_id, settings, workers))
    log.prepare()
    for summary in groups:
        log.append(*records_of(summary))


def one_group(start: float, esm_tokens: int, seconds: float, worker: str = "w0"):
    """A group with no wait, DNABERT-S taking no time, ESM-2 all of `seconds`."""
    return group_summary(f"g{start}", worker, start, 0.0, (10, 0, 0.0), (esm_tokens, 0, seconds),
                         seconds, 4)  # fmt: skip


def test_runs_read_back_with_the_reports_throughput(tmp_path):
    path = tmp_path / "throughput_log.csv"
    workers, summaries = fixed_run()
    log_run(path, "run-a", "s1", 2, [s for s in summaries if not s.skipped])
    (run,) = read_runs(path)
    assert (run.run_id, run.settings, run.workers, len(run.groups)) == ("run-a", "s1", 2, 3)
    assert run.tokens_per_second == summarise(RunRecords.combine(workers)).tokens_per_second
    assert run.tokens_per_second == 30000 / 15
    assert path.read_text().count("\n") == 1 + 3
    assert read_runs(tmp_path / "absent.csv") == []


def test_a_log_of_another_layout_is_moved_aside(tmp_path):
    path = tmp_path / "throughput_log.csv"
    path.write_text("time,worker,gpu,sequences_per_s\n1.0,w0,0,3.0\n")
    log_run(path, "run-a", "s1", 1, [one_group(0.0, 1000, 1.0)])
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    (aside,) = [p for p in tmp_path.iterdir() if p != path]
    assert aside.read_text().startswith("time,worker,gpu,sequences_per_s")


def test_baseline_is_the_latest_same_settings_run_on_fewer_workers(tmp_path):
    path = tmp_path / "throughput_log.csv"
    log_run(path, "one-gpu-old", "s1", 1, [one_group(0.0, 1000, 1.0)])  # 1000 tokens/s
    log_run(path, "one-gpu", "s1", 1, [one_group(10.0, 1200, 1.0)])  # latest: 1200
    log_run(path, "other-settings", "s2", 1, [one_group(20.0, 5000, 1.0)])
    log_run(path, "two-gpus", "s1", 2, [one_group(30.0, 2280, 1.0, w) for w in ("a", "b")])
    baseline = Baseline.from_throughput_log(path, "s1", workers=2, exclude_run="two-gpus")
    assert baseline == Baseline(1200.0, 1, "one-gpu")
    result = scaling(4560.0, 2, baseline)
    assert (result.speedup, result.efficiency) == (3.8, 1.9)
    assert scaling(2280.0, 2, baseline).efficiency == pytest.approx(0.95)  # 1.9x on 2 GPUs
    assert Baseline.from_throughput_log(path, "s1", workers=1, exclude_run="x") is None
    assert Baseline.from_throughput_log(path, "s3", workers=8, exclude_run="x") is None


def test_settings_key_follows_models_and_batching_not_inputs(tmp_path):
    config = PredictConfig(reads=(tmp_path / "a.fa",), models=ModelConfig())
    same = PredictConfig(reads=(tmp_path / "b.fa",), models=ModelConfig())
    bigger_steps = PredictConfig(reads=(), models=ModelConfig(esm_tokens_per_batch=8192))
    assert settings_key(config, "f1") == settings_key(same, "f1")
    assert settings_key(config, "f1") != settings_key(config, "f2")
    assert settings_key(config, "f1") != settings_key(bigger_steps, "f1")


def test_projections_per_read():
    workers, summaries = fixed_run()
    run = summarise(RunRecords.combine(workers, summaries))
    one, six = project(run, reads=20)  # 34 000 tokens / 20 reads = 1700 tokens per read
    assert (one.reads, one.tokens_per_read, one.tokens_per_second) == (1_000_000, 1700.0, 2000.0)
    assert one.hours == pytest.approx(1_000_000 * 1700 / 2000 / 3600)
    assert six.hours == pytest.approx(6 * one.hours)
    nothing = summarise(RunRecords.combine([], [s for s in summaries if s.skipped]))
    assert [p.hours for p in project(nothing, reads=20)] == [None, None]
