"""VirNucPro prediction flow: reads in, per-read virus verdicts out.

    python flows/predict.py reads.fa --classifier 300_model.pth --trust-remote-code

prepare reads → plan groups → embed and classify each group on the Dask cluster (one
worker per GPU) → write outputs → report. The same flow runs as a Prefect deployment
(`deployments/`). Without a configured Prefect server, one local API is started for the
run and shared with the Dask workers.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from uuid import UUID

if __name__ != "flows.predict":  # a script, or loaded by path (Prefect deployments)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":
    # The command line checks its arguments, inputs and models before the imports
    # below (Prefect, Dask: seconds), then imports this module as `flows.predict`.
    from flows.predict_cli import main

    sys.exit(main())

import dask
from prefect import flow, get_run_logger
from prefect.artifacts import update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import as_completed

from flows.predict_cli import record_plan, run_config
from tasks.cluster import (
    GPU_RESOURCE,
    run_precision,
    task_runner,
    worker_gpus,
)
from tasks.groups import embed_classify_group
from tasks.library_logs import route_library_logs
from tasks.monitoring import RunMonitor, create_progress, publish_live_links
from tasks.preparation import assemble, plan, prepare
from tasks.report import publish_report, throughput_log_path
from tasks.worker_telemetry import write_scrape_targets
from virnucpro.demo_models.random_models import is_generated
from virnucpro.errors import VirNucProError
from virnucpro.monitoring.report import Target
from virnucpro.monitoring.telemetry import RunEvent
from virnucpro.monitoring.throughput_log import RunLabel, ThroughputLog, settings_key
from virnucpro.run import pipeline
from virnucpro.run.config import ClusterConfig, ModelConfig, PredictConfig
from virnucpro.run.fingerprint import run_fingerprint
from virnucpro.run.group_inference import GroupSummary
from virnucpro.run.planning import Group

RANDOM_MODELS_WARNING = (
    "these predictions come from random-init test models and are meaningless; "
    "use the real ESM-2 3B, DNABERT-S and VirNucPro classifier weights for real results"
)


class GroupsFailed(VirNucProError):
    """Some groups failed after their retries; the others' results are kept for a rerun."""


@flow(name="virnucpro-embed-groups")
def embed_groups(
    config: PredictConfig,
    groups: list[Group],
    fingerprint: str,
    worker_gpus: dict[str, int],
    telemetry: Path,
    parent_run: UUID | None = None,
) -> tuple[list[GroupSummary], list[RunEvent], int]:
    """Run every group on the cluster, one per GPU at a time, with a live view.

    The live links and the progress bar go on `parent_run`, the run whose URL is
    logged first. Returns the summaries, the run's events and the number of workers."""
    logger = get_run_logger()
    client = FlowRunContext.get().task_runner.client  # starts or connects the cluster
    targets = write_scrape_targets(client, config.out_dir / "prometheus_targets.json")
    logger.info("Prometheus scrape targets for this run: %s", targets)
    for link in publish_live_links(client.dashboard_link, parent_run):
        logger.info("live dashboard: %s", link)
    progress = create_progress(parent_run, len(groups))
    workers = len(client.scheduler_info(n_workers=-1)["workers"])
    label = RunLabel(str(parent_run), settings_key(config, fingerprint), workers)
    throughput_log = ThroughputLog(throughput_log_path(config), label)  # shared by all runs
    summaries, failed = [], []
    with RunMonitor(client, telemetry, len(groups), worker_gpus, throughput_log) as monitor:
        with dask.annotate(resources={GPU_RESOURCE: 1}):
            futures = {embed_classify_group.submit(g, config, fingerprint): g for g in groups}
        for done, future in enumerate(as_completed(list(futures)), start=1):
            group_id = futures[future].group_id
            try:
                summaries.append(future.result())
                monitor.finished(summaries[-1])
            except Exception as error:  # the task's own retries are spent: report, go on
                failed.append(group_id)
                monitor.failed(group_id, error)
                logger.error("group %s failed: %s", group_id, error)
            update_progress_artifact(
                progress, 100.0 * done / len(futures), f"{done}/{len(futures)} groups done"
            )
        events = monitor.events()
    skipped = sum(s.skipped for s in summaries)
    logger.info(
        "%d groups done, %d skipped (complete results from an earlier run)",
        len(summaries) - skipped,
        skipped,
    )
    if failed:
        raise GroupsFailed(
            f"{len(failed)} group(s) failed after retries: {', '.join(sorted(failed))}. "
            f"Results of the other groups are kept in {pipeline.results_dir(config, fingerprint)}; "
            "rerun the same command to compute only what is missing."
        )
    return summaries, events, workers


def telemetry_dir(config: PredictConfig) -> Path:
    """This run's telemetry only (a resumed run starts a fresh one)."""
    run = FlowRunContext.get().flow_run
    return config.work_dir / "telemetry" / str(run.id if run else "local")


@flow(name="virnucpro-predict")
def predict(
    reads: list[str],
    classifier: str,
    out_dir: str = str(PredictConfig.out_dir),
    chunk_length: int = PredictConfig.chunk_length,
    esm_model: str = ModelConfig.esm_model,
    dnabert_model: str = ModelConfig.dnabert_model,
    dnabert_revision: str | None = ModelConfig.dnabert_revision,
    trust_remote_code: bool = ModelConfig.trust_remote_code,
    model_cache: str | None = ModelConfig.model_cache,
    gpus: list[int] | None = ClusterConfig.gpus,
    cpu_workers: int = ClusterConfig.cpu_workers,
    esm_tokens_per_batch: int | None = ModelConfig.esm_tokens_per_batch,
    dnabert_tokens_per_batch: int | None = ModelConfig.dnabert_tokens_per_batch,
    group_tokens: int = PredictConfig.group_tokens,
    precision: str = ModelConfig.precision,
    scheduler_address: str | None = ClusterConfig.scheduler_address,
    min_tokens_per_second: float | None = PredictConfig.min_tokens_per_second,
    keep_work: bool = PredictConfig.keep_work,
) -> dict:
    """Predict viral reads in FASTA files (or directories of them). Parameters and
    their defaults are the run options of `virnucpro.run.config`."""
    # The parameters, checked as the command line checks them; models resolved to
    # local paths, once, here.
    config, cluster = run_config(locals())
    route_library_logs()
    # Workers run the precision the results are keyed by, never `auto`.
    config = dataclasses.replace(
        config,
        models=dataclasses.replace(
            config.models, precision=run_precision(cluster, precision, config.work_dir)
        ),
    )
    fingerprint = run_fingerprint(config.models, config.models.precision)
    prepared = [prepare.submit(config, i) for i in range(len(config.reads))]
    prepared = [future.result() for future in prepared]
    groups = plan(config, prepared)
    record_plan(groups, pipeline.results_dir(config, fingerprint))
    runner = task_runner(cluster, config.out_dir / "dask-performance-report.html")
    telemetry = telemetry_dir(config)
    summaries, events, workers = embed_groups.with_options(task_runner=runner)(
        config,
        groups,
        fingerprint,
        worker_gpus(cluster),
        telemetry,
        FlowRunContext.get().flow_run.id,
    )
    results = assemble(config, prepared, groups, fingerprint)
    pipeline.remove_stale_work(config, groups, fingerprint)
    targets = [Target("tokens_per_second", min_tokens_per_second)] if min_tokens_per_second else []
    random_models = is_generated(config.models.classifier)
    report = publish_report(
        config, fingerprint, prepared, summaries, events, telemetry, workers, targets, random_models
    )
    if random_models:
        get_run_logger().warning(RANDOM_MODELS_WARNING)
    return {
        "random_models": random_models,
        "report": str(report.with_name("report.md")),
        "outputs": [str(r.outputs.read_verdicts.text.parent) for r in results],
        "groups": len(summaries),
        "groups_skipped": sum(s.skipped for s in summaries),
        "frames": sum(r.frames_scored for r in results),
    }
