"""VirNucPro prediction flow: reads in, per-read virus verdicts out.

    python flows/predict.py reads.fa --classifier 300_model.pth --trust-remote-code

prepare reads → plan groups → embed and classify each group on the Dask cluster (one
worker per GPU) → write outputs → report. The same flow runs as a Prefect deployment
(`deployments/`). Without a configured Prefect server, one local API is started for the
run and shared with the Dask workers.
"""

from __future__ import annotations

import argparse
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
from tasks.cluster import GPU_RESOURCE, ClusterSpec, ensure_prefect_api, task_runner
from tasks.groups import embed_classify_group
from tasks.library_logs import route_library_logs
from tasks.monitoring import RunMonitor
from tasks.preparation import assemble, plan, prepare
from tasks.report import publish_report
from virnucpro import pipeline
from virnucpro.cli import add_model_arguments
from virnucpro.config import ESM2_3B, ModelConfig, PredictConfig
from virnucpro.dnabert import DNABERT_S
from virnucpro.errors import VirNucProError
from virnucpro.fasta import find_fasta_files
from virnucpro.group_inference import GroupSummary
from virnucpro.planning import Group
from virnucpro.prometheus_metrics import write_scrape_targets
from virnucpro.report import Target
from virnucpro.telemetry import RunEvent
from virnucpro.test_models import is_generated

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
            f"Results of the other groups are kept in {pipeline.results_dir(config)}; "
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
    out_dir: str = "virnucpro-output",
    chunk_length: int = 300,
    esm_model: str = ESM2_3B,
    dnabert_model: str = DNABERT_S,
    trust_remote_code: bool = False,
    gpus: list[int] | None = None,
    cpu_workers: int = 1,
    esm_tokens_per_batch: int | None = None,
    dnabert_tokens_per_batch: int = 32768,
    groups_per_worker: int = 4,
    precision: str = "auto",
    scheduler_address: str | None = None,
    min_tokens_per_second: float | None = None,
) -> dict:
    """Predict viral reads in FASTA files (or directories of them)."""
    route_library_logs()
    spec = ClusterSpec(scheduler_address, tuple(gpus) if gpus else None, cpu_workers)
    config = PredictConfig(
        reads=tuple(find_fasta_files([Path(r) for r in reads])),
        out_dir=Path(out_dir),
        models=ModelConfig(
            classifier=Path(classifier),
            esm_model=esm_model,
            dnabert_model=dnabert_model,
            trust_remote_code=trust_remote_code,
            precision=precision,
            esm_tokens_per_batch=esm_tokens_per_batch,
            dnabert_tokens_per_batch=dnabert_tokens_per_batch,
        ),
        chunk_length=chunk_length,
        groups_per_worker=groups_per_worker,
        workers=spec.worker_count(),
    )
    pipeline.check_inputs(config)
    prepared = [prepare.submit(config, i) for i in range(len(config.reads))]
    prepared = [future.result() for future in prepared]
    groups = plan(config, prepared)
    fingerprint = config.models.fingerprint()
    runner = task_runner(spec, config.out_dir / "dask-performance-report.html")
    telemetry = telemetry_dir(config)
    summaries, events = embed_groups.with_options(task_runner=runner)(
        config, groups, fingerprint, spec.worker_gpus(), telemetry
    )
    results = assemble(config, prepared, groups)
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
    parser.add_argument("--out", dest="out_dir", default="virnucpro-output", help="output dir")
    parser.add_argument("--chunk-length", type=int, choices=(300, 500), default=300)
    add_model_arguments(parser)
    parser.add_argument(
        "--gpus", type=_gpu_list, help="GPU indices to use, e.g. 0,2 (default: all)"
    )
    parser.add_argument("--cpu-workers", type=int, default=1, help="workers without GPUs")
    parser.add_argument("--groups-per-worker", type=int, default=4)
    parser.add_argument("--scheduler-address", help="use this running Dask cluster")
    parser.add_argument(
        "--min-tokens-per-second", type=float, help="a throughput target for the report"
    )
    return parser.parse_args(argv)


def _gpu_list(text: str) -> list[int]:
    return [int(g) for g in text.split(",")]


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
