"""The report: figures said with what they cover, targets that pass, fail or say why
they do not apply, and a resumed run reported as a whole."""

import dataclasses
import json

import pytest
from helpers import fixed_run, group_summary

from virnucpro.monitoring import report as report_module
from virnucpro.monitoring.projections import Baseline
from virnucpro.monitoring.report import (
    RunInfo,
    Target,
    build_report,
    render_markdown,
    tables,
)
from virnucpro.monitoring.report_files import write_report
from virnucpro.monitoring.run_telemetry import RunRecords, RunTelemetry
from virnucpro.monitoring.telemetry import GpuInfo, RunEvent, RunMetadata

METADATA = RunMetadata(
    hostname="node7", python="3.11.9", torch="2.13.0", cuda="12.8",
    driver_version="570.1", cuda_driver_version="12.8", cpu_model="AMD EPYC 7763",
    cpu_count=64, gpus=[GpuInfo(0, "NVIDIA H100", 80 * 2**30, True)],
)  # fmt: skip
EVENTS = [
    RunEvent(3600.0, "stolen", "w1", "g7 from w0"),
    RunEvent(3605.0, "group_done", "w1", "g7"),
]
# fixed_run: 3 groups computed on 2 workers over 15 s at 2000 tokens/s, one reused;
# 34 000 ESM-2 tokens for 20 reads.
INFO = RunInfo("run-b", "s1", workers=2, reads=20, started_at=50.0, finished_at=130.0)


def records() -> RunRecords:
    workers, summaries = fixed_run()
    return RunRecords.combine(workers, summaries)


def targets_of(report) -> dict[str, Target]:
    return {t.name: t for t in report.targets}


def test_a_small_run_shows_n_a_with_reasons_not_failures():
    report = build_report(records(), INFO, EVENTS, metadata=METADATA)
    result = targets_of(report)
    assert result["packing_efficiency"].passed is True  # 40 000 / 40 600 = 98.5%
    few = "too few groups (3 computed on 2 worker(s); start-up dominates below 4 per worker)"
    for name in ("gpu_utilisation_percent", "scaling_efficiency", "hours_for_6m_reads"):
        assert (result[name].passed, result[name].reason) == (None, few)


@pytest.fixture
def enough_groups(monkeypatch):
    """Count fixed_run's 3 groups on 2 workers as enough for every target."""
    monkeypatch.setattr(report_module, "MIN_GROUPS_PER_WORKER", 1)


def test_targets_apply_to_a_run_with_enough_groups(enough_groups):
    result = targets_of(build_report(records(), INFO, baseline=Baseline(1100.0, 1, "r1")))
    assert result["gpu_utilisation_percent"].value == pytest.approx(74.667, abs=1e-3)
    assert result["gpu_utilisation_percent"].passed is True
    assert result["hours_for_6m_reads"].value == pytest.approx(6e6 * 1700 / 2000 / 3600)
    assert result["hours_for_6m_reads"].passed is False  # 1417 h > 10 h
    assert result["scaling_efficiency"].value == pytest.approx(2000 / 1100 / 2)
    assert result["scaling_efficiency"].passed is False  # 91% < 95%
    alone = targets_of(build_report(records(), INFO))["scaling_efficiency"]
    assert alone.reason.startswith("no earlier run with the same models and settings")


def test_test_models_and_cpu_runs_do_not_judge_the_6m_projection(enough_groups):
    cpu = dataclasses.replace(records(), gpu_readings={})
    info = INFO
    assert targets_of(build_report(cpu, info))["hours_for_6m_reads"].reason == (
        "no GPU: the 10 h target is for GPU runs"
    )
    assert targets_of(build_report(cpu, info))["gpu_utilisation_percent"].reason == (
        "no GPU readings (CPU workers, or NVML unavailable)"
    )
    scaled_cpu = build_report(cpu, info, baseline=Baseline(500.0, 1, "one-cpu"))
    assert targets_of(scaled_cpu)["scaling_efficiency"].reason.startswith("no GPU: the target")
    assert scaled_cpu.scaling is not None  # still reported, not judged
    test_models = dataclasses.replace(info, test_models=True)
    report = build_report(records(), test_models)
    assert targets_of(report)["hours_for_6m_reads"].reason.startswith("test models")
    assert "**Test models: random-init stand-ins" in render_markdown(report)


def test_scaling_from_a_baseline_and_user_targets(enough_groups):
    user = [Target("tokens_per_second", 3000.0), Target("gpu_utilisation_percent", 80.0)]
    result = targets_of(build_report(records(), INFO, targets=user))
    assert result["tokens_per_second"].passed is False  # 2000 < 3000
    assert result["gpu_utilisation_percent"].passed is False  # 74.7% < 80%, replaces 70%
    with pytest.raises(ValueError, match="unknown target metric"):
        build_report(records(), INFO, targets=[Target("speed", 1.0)])
    report = build_report(records(), INFO, baseline=Baseline(1000.0, 1, "one-gpu"))
    assert (report.scaling.speedup, report.scaling.efficiency) == (2.0, 1.0)
    text = render_markdown(report)
    assert "- 2 workers vs run one-gpu on 1 at 1,000.0 tokens/s" in text
    assert "- Speedup: 2.00x; efficiency: 100.0%" in text


def test_markdown_says_what_each_figure_covers():
    text = render_markdown(build_report(records(), INFO, EVENTS, metadata=METADATA))
    assert "- Sequences: 35 frames scored" in text and "from 20 reads; 34,000 ESM-2" in text
    assert "- Groups: 4: 3 computed in this run, 1 reused from earlier runs" in text
    assert "- GPU stage: 15.0 s from 00:01:40 UTC, first computed group's start" in text
    assert "- Whole run: 80.0 s (preparing reads" in text
    assert "- Throughput: 2,000.0 tokens/s, 2.00 sequences/s" in text
    assert "- Definition: ESM-2 tokens per wall-clock second of the GPU stage" in text
    assert "- Work stolen: 1 (queued" in text
    assert "- Groups failed after retries: 0" in text and "- OOM batch splits: 1" in text
    assert "| 01:00:00 | stolen | w1 | g7 from w0 |" in text
    assert "group_done" not in text  # every group is counted above, not listed
    assert "- 6,000,000 reads: 1,416.67 h (at 2,000.0 tokens/s, 1,700.0 ESM-2" in text
    assert "| w0 | 0 | 2 | 22 | 18000 | 1200.0 | 15.0 | 100.0 | 83.3 | 20.0 | 0 |" in text
    assert "| ESM-2 | 30 | 30000 | 200 | 0.9934 | 6 | 15.0 | 2000.0 |" in text
    assert "| packing_efficiency | 0.985 | ≥ 0.900 | PASS |  |" in text
    assert "0: NVIDIA H100 (80 GiB)" in text


def test_a_fully_resumed_run_reports_the_result_and_no_zeros_or_infinity():
    reused = [
        group_summary(f"g{i}", "old", 10.0 * i, 1.0, (100, 0, 1.0), (400, 0, 2.0), 4.0, 3,
                      skipped=True)
        for i in range(8)
    ]  # fmt: skip
    report = build_report(RunRecords.combine([], reused), INFO)
    text = render_markdown(report)
    assert "- Sequences: 24 frames scored" in text
    assert "- Groups: 8: 0 computed in this run, 8 reused from earlier runs" in text
    assert "- GPU stage: none (nothing computed)" in text
    assert "0.0 tokens/s" not in text and "∞" not in text and "inf" not in text
    assert "## Projections\n\n- n/a: no group was computed in this run" in text
    reason = "no group was computed in this run (all 8 reused)"
    assert {t.reason for t in report.targets} == {reason}
    assert all(t.passed is None for t in report.targets)


def test_tables_and_written_files(tmp_path):
    report = build_report(records(), INFO, EVENTS, metadata=METADATA)
    rows = tables(report)
    assert set(rows) == {"summary", "models", "workers", "projections", "targets"}
    summary = {row["metric"]: row["value"] for row in rows["summary"]}
    assert summary["tokens/s"] == 2000.0 and summary["sequences"] == 35
    assert (summary["work stolen"], summary["groups failed"]) == (1, 0)
    assert [row["result"] for row in rows["targets"]] == ["n/a", "PASS", "n/a", "n/a"]
    written = write_report(tmp_path / "out", report)
    assert written.markdown.read_text() == render_markdown(report)
    payload = json.loads(written.telemetry.read_text())
    assert RunTelemetry.from_dict(payload["run"]) == report.run
    assert RunRecords.from_dict(payload["records"]) == report.records
    assert RunMetadata.from_dict(payload["metadata"]) == METADATA
    page = written.html.read_text()
    assert page.count("<svg") == 4 and "<script" not in page
    assert "2,000.0 tokens/s" in page
    assert sorted(p.name for p in written.html.parent.iterdir()) == [
        "report.html", "report.md", "telemetry.json"
    ]  # fmt: skip


def test_gpu_memory_above_the_limit_is_a_memory_pressure_event():
    from virnucpro.monitoring.gpu_sampler import GpuReading

    gib = 2**30
    pressed = dataclasses.replace(
        records(),
        gpu_readings={
            "w0": [
                GpuReading(100.0, 0, 90.0, 70 * gib, 80 * gib, None, None),  # 87.5%
                GpuReading(101.0, 0, 90.0, 74 * gib, 80 * gib, None, None),  # 92.5%
                GpuReading(103.0, 0, 90.0, 78 * gib, 80 * gib, None, None),  # 97.5%
                GpuReading(104.0, 0, 90.0, 40 * gib, 80 * gib, None, None),
            ],
            "w1": [GpuReading(100.0, 1, 90.0, 10 * gib, 80 * gib, None, None)],
        },
    )
    report = build_report(pressed, INFO, EVENTS)
    [event] = [e for e in report.events if e.kind == "memory_pressure"]
    assert (event.time, event.worker) == (101.0, "w0")
    assert event.detail == "GPU memory above 90% for 2 s, peak 98%"
    text = render_markdown(report)
    assert "- Memory pressure (GPU memory above 90%): 1 stretch(es)" in text
    assert "| memory_pressure | w0 | GPU memory above 90% for 2 s, peak 98% |" in text
    quiet = render_markdown(build_report(records(), INFO, EVENTS))
    assert "- Memory pressure (GPU memory above 90%): 0 stretch(es)" in quiet
