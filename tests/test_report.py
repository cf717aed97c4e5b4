import dataclasses
import json

import pytest

from virnucpro.monitoring.projections import Baseline
from virnucpro.monitoring.report import (
    Target,
    evaluate_targets,
    render_markdown,
    tables,
    write_report,
)
from virnucpro.monitoring.telemetry import (
    BatchRecord,
    GpuInfo,
    RunEvent,
    RunMetadata,
    RunTelemetry,
    aggregate,
)


def batch(worker: str, gpu: int, started_at: float, utilisation: float) -> BatchRecord:
    return BatchRecord(
        worker=worker, gpu=gpu, group_id=f"{worker}-g", model="esm2", sequences=100,
        tokens=36_000, token_budget=40_000, padded_tokens=40_000, seconds=10.0,
        wait_seconds=0.0, started_at=started_at, gpu_utilisation=utilisation,
    )  # fmt: skip


# Two GPUs, 2 batches each over a 20 s span: 144 000 tokens / 20 s = 7 200 tokens/s,
# 400 sequences / 20 s = 20 sequences/s, utilisation mean 75 %, packing 90 %.
RUN = aggregate(
    [batch("w0", 0, 0.0, 70.0), batch("w0", 0, 10.0, 80.0),
     batch("w1", 1, 0.0, 75.0), batch("w1", 1, 10.0, 75.0)]
)  # fmt: skip
METADATA = RunMetadata(
    hostname="node7", python="3.11.9", torch="2.13.0", cuda="12.8",
    driver_version="570.1", cuda_driver_version="12.8", cpu_model="AMD EPYC 7763",
    cpu_count=64, gpus=[GpuInfo(0, "NVIDIA H100", 80 * 2**30, True)],
)  # fmt: skip
EVENTS = [
    RunEvent(3600.0, "stolen", "w1", "group g7 from w0"),
    RunEvent(3661.0, "failed", "w0", "group g9: CUDA error"),
    RunEvent(3662.0, "retried", "w1", "group g9"),
]


def test_run_numbers() -> None:
    assert RUN.tokens_per_second == 7200.0
    assert RUN.sequences_per_second == 20.0
    assert RUN.mean_utilisation == 75.0
    assert RUN.packing_efficiency == 0.9


def test_targets_pass_and_fail() -> None:
    results = {t.name: t for t in evaluate_targets(RUN)}
    assert results["gpu_utilisation_percent"].passed is True  # 75 ≥ 70
    assert results["packing_efficiency"].passed is True  # 0.90 ≥ 0.90
    user = [
        Target("tokens_per_second", 10_000.0),
        Target("gpu_utilisation_percent", 80.0),  # replaces the default 70 %
        Target("elapsed_seconds", 30.0, higher_is_better=False),
    ]
    results = {t.name: t for t in evaluate_targets(RUN, user)}
    assert results["tokens_per_second"].value == 7200.0
    assert results["tokens_per_second"].passed is False
    assert results["gpu_utilisation_percent"].passed is False
    assert results["elapsed_seconds"].passed is True
    assert len(results) == 4
    with pytest.raises(ValueError, match="unknown target metric"):
        evaluate_targets(RUN, [Target("speed", 1.0)])


def test_unmeasured_target_is_neither_pass_nor_fail() -> None:
    cpu_run = aggregate([BatchRecord("cpu", None, "g", "esm2", 1, 10, 10, 10, 1.0, 0.0, 0.0)])
    utilisation = next(t for t in evaluate_targets(cpu_run) if t.name.startswith("gpu"))
    assert utilisation.value is None and utilisation.passed is None


def test_markdown_contains_the_numbers() -> None:
    text = render_markdown(
        RUN, METADATA, EVENTS, [Target("tokens_per_second", 10_000.0)], Baseline(4000.0, 1)
    )
    assert "- Sequences: 400" in text
    assert "- Tokens: 144,000" in text
    assert "- Elapsed: 20.0 s" in text
    assert "7,200.0 tokens/s, 20.00 sequences/s" in text
    assert "| w0 | 0 | 200 | 72000 | 20.0 | 3600.0 | 75.0 | 0.9 | 1 | 0 |" in text
    assert "failed: 1, retried: 1, stolen: 1" in text
    assert "| 01:00:00 | stolen | w1 | group g7 from w0 |" in text
    # 1e6 sequences × 360 tokens / 7200 tokens/s = 50 000 s = 13.89 h; 6e6 → 83.33 h
    assert "- 1,000,000 sequences: 13.89 h" in text
    assert "- 6,000,000 sequences: 83.33 h" in text
    # 7200 / 4000 = 1.8× on 2 GPUs vs 1: efficiency 90 %
    assert "Speedup: 1.80x; efficiency: 90.0%" in text
    assert "| gpu_utilisation_percent | 75.000 | ≥ 70.000 | PASS |" in text
    assert "| packing_efficiency | 0.900 | ≥ 0.900 | PASS |" in text
    assert "| tokens_per_second | 7,200.000 | ≥ 10,000.000 | FAIL |" in text
    assert "0: NVIDIA H100 (80 GiB)" in text


def test_markdown_without_optional_parts() -> None:
    text = render_markdown(RUN)
    assert "## Scaling" not in text and "## Machine" not in text
    assert "## Events\n\n(none)" in text


def test_unmeasured_utilisation_reads_n_a_without_a_unit() -> None:
    assert "- Mean GPU utilisation: 75.0%;" in render_markdown(RUN)
    cpu_run = dataclasses.replace(RUN, mean_utilisation=None)
    assert "- Mean GPU utilisation: n/a; packing" in render_markdown(cpu_run)


def test_tables_for_artifacts() -> None:
    result = tables(RUN)
    assert set(result) == {"summary", "workers", "projections"}
    summary = {row["metric"]: row["value"] for row in result["summary"]}
    assert summary["tokens/s"] == 7200.0 and summary["sequences"] == 400
    assert [row["worker"] for row in result["workers"]] == ["w0", "w1"]
    assert result["workers"][0]["tokens/s"] == 3600.0
    assert [row["hours"] for row in result["projections"]] == [13.89, 83.33]


def test_write_report(tmp_path) -> None:
    report, telemetry = write_report(
        tmp_path / "out", RUN, METADATA, EVENTS, None, Baseline(4000.0, 1)
    )
    assert report.read_text().startswith("# VirNucPro run report")
    payload = json.loads(telemetry.read_text())
    assert RunTelemetry.from_dict(payload["run"]) == RUN
    assert RunMetadata.from_dict(payload["metadata"]) == METADATA
    assert [e["kind"] for e in payload["events"]] == ["stolen", "failed", "retried"]
    assert [t["passed"] for t in payload["targets"]] == [True, True]
    assert payload["scaling"]["efficiency"] == 0.9
    assert payload["projections"][0]["hours"] == pytest.approx(50_000 / 3600)
