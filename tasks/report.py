"""The final task: telemetry → performance report, in the Prefect UI and on disk."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, runtime, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from virnucpro.monitoring.plots import figures, png_data_uri
from virnucpro.monitoring.projections import Baseline
from virnucpro.monitoring.report import (
    FIGURES,
    FIGURES_NOTE,
    Report,
    RunInfo,
    Target,
    build_report,
    render_markdown,
    tables,
)
from virnucpro.monitoring.report_files import write_report
from virnucpro.monitoring.run_telemetry import RunRecords
from virnucpro.monitoring.telemetry import RunEvent, collect_metadata, load_worker_telemetry
from virnucpro.monitoring.throughput_log import settings_key
from virnucpro.reads.preparation import PreparedFiles
from virnucpro.run.config import PredictConfig
from virnucpro.run.group_inference import GroupSummary

THROUGHPUT_LOG = "throughput_log.csv"
DASK_REPORT = "dask-performance-report.html"


def throughput_log_path(config: PredictConfig) -> Path:
    """The log every run in `config.out_dir` appends to."""
    return config.out_dir / THROUGHPUT_LOG


def plots_markdown(report: Report) -> str:
    """The figures as PNG data URIs in markdown: how the Prefect UI shows images."""
    drawn = figures(report.records)
    parts = [f"# VirNucPro run figures\n\n{FIGURES_NOTE}"]
    parts += [f"**{text}**\n\n![{name}]({png_data_uri(drawn[name])})" for name, text in FIGURES]
    return "\n\n".join(parts) + "\n"


def _flow_run_start(run_id: str) -> float | None:
    """When flow run `run_id` started, as the API recorded it."""
    with get_client(sync_client=True) as client:
        started = client.read_flow_run(UUID(run_id)).start_time
    return started.timestamp() if started else None


@task(name="performance-report", cache_policy=NO_CACHE)
def publish_report(
    config: PredictConfig,
    fingerprint: str,
    prepared: list[PreparedFiles],
    summaries: list[GroupSummary],
    events: list[RunEvent],
    telemetry_dir: Path,
    workers: int,
    targets: list[Target],
    test_models: bool,
) -> Path:
    """Combine every worker's telemetry with the reused groups, write report.md,
    report.html and telemetry.json next to the outputs, and publish the report, its
    figures, its tables and links to the saved files as Prefect artifacts. Returns
    the path of report.md."""
    run_id = str(runtime.flow_run.id)
    settings = settings_key(config, fingerprint)
    records = RunRecords.combine(
        map(load_worker_telemetry, sorted(telemetry_dir.glob("telemetry-*.json"))), summaries
    )
    info = RunInfo(
        run_id=run_id,
        settings=settings,
        workers=workers,
        reads=sum(p.counts.reads for p in prepared),
        test_models=test_models,
        started_at=_flow_run_start(run_id),
        finished_at=time.time(),
    )
    baseline = Baseline.from_throughput_log(
        throughput_log_path(config), settings, workers, exclude_run=run_id
    )
    report = build_report(records, info, events, targets, baseline, collect_metadata())
    written = write_report(config.out_dir, report)

    create_markdown_artifact(render_markdown(report), key="virnucpro-report",
                             description="VirNucPro performance report")  # fmt: skip
    create_markdown_artifact(plots_markdown(report), key="virnucpro-figures",
                             description="VirNucPro run figures")  # fmt: skip
    for name, rows in tables(report).items():
        if rows:
            create_table_artifact(rows, key=f"virnucpro-{name}", description=f"VirNucPro {name}")
    links = {
        "virnucpro-report-html": (written.html, "VirNucPro report with figures (report.html)"),
        "dask-performance-report": (
            config.out_dir / DASK_REPORT,
            "Dask performance report, saved when the cluster closed",
        ),
    }
    for key, (path, text) in links.items():
        if path.exists():
            create_link_artifact(path.resolve().as_uri(), link_text=text, key=key)
    run = report.run
    get_run_logger().info(
        "%d sequences (%d groups computed, %d reused); %s tokens/s over a %s s GPU stage; "
        "report: %s",
        run.sequences,
        run.groups_computed,
        run.groups_reused,
        "n/a" if run.tokens_per_second is None else f"{run.tokens_per_second:,.0f}",
        "n/a" if run.stage_seconds is None else f"{run.stage_seconds:.1f}",
        written.markdown,
    )
    return written.markdown
