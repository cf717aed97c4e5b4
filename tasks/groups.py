"""The GPU task: embed and classify one group on a Dask worker, and record telemetry."""

from __future__ import annotations

import dataclasses

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.library_logs import route_library_logs
from tasks.worker_telemetry import WorkerTelemetryPlugin
from virnucpro.run import pipeline
from virnucpro.run.config import PredictConfig
from virnucpro.run.group_inference import GroupSummary, run_group
from virnucpro.run.planning import Group

GROUP_EVENT_TOPIC = "virnucpro-group"


def _dask_worker():
    """The Dask worker running this task, or None (tests may run it in-process)."""
    try:
        from distributed import get_worker

        return get_worker()
    except ValueError:
        return None


@task(name="embed-classify-group", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def embed_classify_group(group: Group, config: PredictConfig, fingerprint: str) -> GroupSummary:
    """Run one group (models stay loaded in the worker between groups); a complete
    result from an earlier run is reused, so a retry or a resumed run skips it."""
    route_library_logs()  # in the worker process: model loading, OOM splits, truncations
    worker = _dask_worker()
    summary = run_group(
        group,
        pipeline.results_dir(config, fingerprint),
        config.models,
        fingerprint,
        worker=str(worker.name) if worker else None,
    )
    if worker is not None:
        _record(worker, summary)
    verb = "skipped (complete result found)" if summary.skipped else "done"
    get_run_logger().info(
        "group %s %s: %d frames, %d tokens, %.1f s on worker %s",
        group.group_id,
        verb,
        summary.frames,
        summary.tokens,
        summary.seconds,
        summary.worker,
    )
    return summary


def _record(worker, summary: GroupSummary) -> None:
    """Telemetry on the worker (its JSON is rewritten after every group, so a killed
    worker loses nothing already done) and an event the flow collects."""
    plugin = worker.plugins.get(WorkerTelemetryPlugin.name)
    recorder = plugin.recorder if plugin is not None else None
    if recorder is not None and not summary.skipped:
        recorder.record(summary)
        recorder.write()
    # Nested: Dask sets a message's top-level "worker" to the worker's address.
    worker.log_event(GROUP_EVENT_TOPIC, {"summary": dataclasses.asdict(summary)})
