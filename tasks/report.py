"""The final task: telemetry → performance report, in the Prefect UI and on disk."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from virnucpro.monitoring.report import Target, tables, write_report
from virnucpro.monitoring.telemetry import RunEvent, aggregate, collect_metadata


@task(name="performance-report", cache_policy=NO_CACHE)
def publish_report(
    telemetry_dir: Path, out_dir: Path, events: list[RunEvent], targets: list[Target]
) -> Path:
    """Aggregate every worker's telemetry, write report.md + telemetry.json next to the
    outputs and publish the same report and its tables as Prefect artifacts."""
    run = aggregate(sorted(telemetry_dir.glob("telemetry-*.json")))
    report, telemetry = write_report(out_dir, run, collect_metadata(), events, targets)
    create_markdown_artifact(report.read_text(), key="virnucpro-report",
                             description="VirNucPro performance report")  # fmt: skip
    for name, rows in tables(run).items():
        if rows:
            create_table_artifact(rows, key=f"virnucpro-{name}", description=f"VirNucPro {name}")
    get_run_logger().info(
        "%d sequences, %d tokens in %.1f s (%.0f tokens/s); report: %s",
        run.sequences,
        run.tokens,
        run.elapsed_seconds,
        run.tokens_per_second,
        report,
    )
    return telemetry
