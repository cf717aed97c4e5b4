"""A run's totals and the one throughput definition, on a run with known figures
(`helpers.fixed_run`): stage 100 s → 115 s, ESM-2 tokens 8000 + 10000 + 12000."""

import json

import pytest
from helpers import fixed_run, group_summary

from virnucpro.monitoring.run_telemetry import (
    RunRecords,
    RunTelemetry,
    stage_window,
    summarise,
    worker_shares,
)

GIB = 2**30


@pytest.fixture
def records() -> RunRecords:
    workers, summaries = fixed_run()
    return RunRecords.combine(workers, summaries)


def test_result_covers_computed_and_reused_groups(records):
    run = summarise(records)
    assert (run.groups_done, run.groups_computed, run.groups_reused) == (4, 3, 1)
    assert (run.sequences, run.sequences_computed) == (10 + 12 + 8 + 5, 30)
    assert run.tokens == 8000 + 10000 + 12000 + 4000


def test_throughput_is_esm_tokens_over_the_stage_wall_clock(records):
    run = summarise(records)
    assert (run.stage_started_at, run.stage_seconds) == (100.0, 15.0)
    assert run.tokens_per_second == 30000 / 15
    assert run.sequences_per_second == 30 / 15
    esm = next(m for m in run.models if m.model == "esm2")
    dnabert = next(m for m in run.models if m.model == "dnabert")
    assert (esm.tokens, esm.padding_tokens, esm.seconds) == (30000, 200, 15.0)
    assert esm.tokens_per_second == run.tokens_per_second
    assert dnabert.tokens_per_second == pytest.approx(10000 / 15)
    assert esm.packing_efficiency == pytest.approx(30000 / 30200)
    assert run.packing_efficiency == pytest.approx(40000 / 40600)
    assert run.oom_splits == 1


def test_workers_shares_add_up_to_the_run(records):
    run = summarise(records)
    w0, w1 = run.workers
    assert (w0.worker, w0.gpu, w0.groups, w0.sequences, w0.tokens) == ("w0", 0, 2, 22, 18000)
    assert (w0.tokens_per_second, w1.tokens_per_second) == (1200.0, 800.0)
    assert w0.tokens_per_second + w1.tokens_per_second == run.tokens_per_second
    assert (w0.busy_seconds, w0.wait_seconds, w0.busy_fraction) == (15.0, 2.0, 1.0)
    assert w1.busy_fraction == pytest.approx(12 / 15)
    assert (w0.peak_memory_bytes, w1.peak_memory_bytes) == (20 * GIB, 30 * GIB)


def test_utilisation_is_time_weighted_over_the_stage(records):
    run = summarise(records)
    w0, w1 = run.workers
    assert w0.mean_utilisation == pytest.approx((5 * 50 + 10 * 100) / 15)
    assert w1.mean_utilisation == pytest.approx((4 * 0 + 11 * 90) / 15)  # 99 s reading from 100 s
    assert run.mean_utilisation == pytest.approx((1250 / 15 + 990 / 15) / 2)


def test_a_fully_reused_run_measures_nothing_rather_than_zero():
    reused = [
        group_summary("g1", "w0", 10.0, 1.0, (100, 0, 1.0), (300, 0, 1.0), 3.0, 4, skipped=True)
    ]
    run = summarise(RunRecords.combine([], reused))
    assert (run.sequences, run.tokens, run.groups_reused, run.groups_computed) == (4, 300, 1, 0)
    assert run.tokens_per_second is None and run.stage_seconds is None
    assert run.mean_utilisation is None and run.packing_efficiency is None
    assert run.workers == []


def test_a_group_computed_now_is_not_also_counted_as_reused(records):
    workers, summaries = fixed_run()
    retried = group_summary("g1", "w0", 100.0, 2.0, (3000, 300, 1.0), (8000, 0, 4.0), 8.0, 10,
                            skipped=True)  # fmt: skip
    again = RunRecords.combine(workers, [*summaries, retried])
    assert summarise(again) == summarise(records)


def test_live_shares_use_the_same_definition_until_now(records):
    computed = records.computed()
    assert stage_window(computed.groups, now=120.0) == (100.0, 120.0)
    assert worker_shares(computed, now=120.0) == {"w0": 18000 / 20, "w1": 12000 / 20}
    assert worker_shares(computed) == {"w0": 1200.0, "w1": 800.0}


def test_json_round_trips(records):
    run = summarise(records)
    assert RunTelemetry.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    assert RunRecords.from_dict(json.loads(json.dumps(records.to_dict()))) == records
