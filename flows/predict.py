"""VirNucPro prediction flow: reads in, per-read virus verdicts out.

    python flows/predict.py reads.fa --classifier 300_model.pth --trust-remote-code

prepare reads → plan groups → embed and classify each group on the Dask cluster (one
worker per GPU) → write outputs → report. The same flow runs as a Prefect deployment
(`deployments/`). Without a configured Prefect server, one local API is started for the
run and shared with the Dask workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

if __name__ != "flows.predict":  # a script, or loaded by path (Prefect deployments)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dask
from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_link_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import dask_page
from tasks.cluster import (
    GPU_RESOURCE,
    ensure_prefect_api,
    run_precision,
    task_runner,
    worker_gpus,
)
from tasks.groups import embed_classify_group
from tasks.library_logs import route_library_logs
from tasks.monitoring import RunMonitor
from tasks.preparation import assemble, plan, prepare
from tasks.report import publish_report
from tasks.worker_telemetry import write_scrape_targets
from virnucpro.cli import MODEL_OPTIONS
from virnucpro.demo_models.random_models import is_generated
from virnucpro.errors import VirNucProError
from virnucpro.monitoring.report import Target
from virnucpro.monitoring.telemetry import RunEvent
from virnucpro.reads.fasta import find_fasta_files
from virnucpro.run import pipeline
from virnucpro.run.arguments import add_options
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
) -> tuple[list[GroupSummary], list[RunEvent]]:
    """Run every group on the cluster, one per GPU at a time, with a live view."""
    logger = get_run_logger()
    client = FlowRunContext.get().task_runner.client  # starts or connects the cluster
    targets = write_scrape_targets(client, config.out_dir / "prometheus_targets.json")
    logger.info("Prometheus scrape targets for this run: %s", targets)
    if client.dashboard_link:
        create_link_artifact(
            client.dashboard_link, link_text="Dask dashboard", key="dask-dashboard"
        )
        logger.info("live Dask dashboard: %s", client.dashboard_link)
        if page := dask_page.page_link(client.dashboard_link):
            create_link_artifact(page, link_text="VirNucPro page", key="virnucpro-dask-page")
            logger.info("live VirNucPro page in the Dask dashboard: %s", page)
    progress = create_progress_artifact(0.0, key="virnucpro-progress", description="groups done")
    summaries, failed = [], []
    throughput_log = config.out_dir / "throughput_log.csv"  # shared by all runs
    with RunMonitor(client, telemetry, throughput_log, len(groups), worker_gpus) as monitor:
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
            update_progress_artifact(progress, 100.0 * done / len(futures))
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
    return summaries, events


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
    route_library_logs()
    cluster = ClusterConfig(scheduler_address, tuple(gpus) if gpus else None, cpu_workers)
    models = ModelConfig(
        classifier=Path(classifier),
        esm_model=esm_model,
        dnabert_model=dnabert_model,
        dnabert_revision=dnabert_revision,
        trust_remote_code=trust_remote_code,
        model_cache=Path(model_cache) if model_cache else None,
        precision=precision,
        esm_tokens_per_batch=esm_tokens_per_batch,
        dnabert_tokens_per_batch=dnabert_tokens_per_batch,
    )
    config = PredictConfig(
        reads=tuple(find_fasta_files([Path(r) for r in reads])),
        models=models,
        out_dir=Path(out_dir),
        chunk_length=chunk_length,
        group_tokens=group_tokens,
        min_tokens_per_second=min_tokens_per_second,
        keep_work=keep_work,
    )
    config = pipeline.check_inputs(config)  # models resolved to local paths, once, here
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
    runner = task_runner(cluster, config.out_dir / "dask-performance-report.html")
    telemetry = telemetry_dir(config)
    summaries, events = embed_groups.with_options(task_runner=runner)(
        config, groups, fingerprint, worker_gpus(cluster), telemetry
    )
    results = assemble(config, prepared, groups, fingerprint)
    pipeline.remove_stale_work(config, groups, fingerprint)
    targets = [Target("tokens_per_second", min_tokens_per_second)] if min_tokens_per_second else []
    report = publish_report(telemetry, config.out_dir, events, targets)
    random_models = is_generated(config.models.classifier)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options named like the flow's parameters, so `predict(**vars(args))` runs it."""
    parser = argparse.ArgumentParser(prog="flows/predict.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("reads", nargs="+", help="FASTA files (.gz accepted) or directories")
    add_options(parser, PredictConfig, ("out_dir", "chunk_length"))
    add_options(parser, ModelConfig, FLOW_MODEL_OPTIONS, required=("classifier",))
    add_options(parser, ClusterConfig, ("gpus", "cpu_workers", "scheduler_address"))
    add_options(parser, PredictConfig, ("group_tokens", "min_tokens_per_second", "keep_work"))
    args = parser.parse_args(argv)
    args.out_dir, args.classifier = str(args.out_dir), str(args.classifier)
    args.model_cache = str(args.model_cache) if args.model_cache else None
    args.gpus = list(args.gpus) if args.gpus else None
    return args


# Each worker owns one GPU, so the flow has no --device.
FLOW_MODEL_OPTIONS = tuple(name for name in MODEL_OPTIONS if name != "device")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api_url = ensure_prefect_api() or PREFECT_API_URL.value()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        try:
            result = predict(**vars(args))
        except VirNucProError as error:
            print(f"virnucpro: error: {error}", file=sys.stderr)
            return 2
    for path in result["outputs"]:
        print(f"results: {path}")
    print(f"performance report: {result['report']}")
    if result["random_models"]:
        print(f"NOTE: {RANDOM_MODELS_WARNING}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
