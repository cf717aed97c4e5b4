"""Tasks that run in the flow process: prepare inputs, plan groups, assemble outputs."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from virnucpro import pipeline
from virnucpro.assembly import InputResult, assemble_outputs
from virnucpro.config import PredictConfig
from virnucpro.group_inference import read_scores
from virnucpro.planning import Group
from virnucpro.preparation import PreparedFiles


@task(name="prepare-reads", cache_policy=NO_CACHE)
def prepare(config: PredictConfig, reads_index: int) -> PreparedFiles:
    reads = config.reads[reads_index]
    prepared = pipeline.prepare_input(config, reads)
    c = prepared.counts
    get_run_logger().info(
        "%s: %d reads (%d empty) → %d chunks → %d frames; %d chunks without a kept frame",
        reads.name,
        c.reads,
        c.empty_reads,
        c.chunks,
        c.frames,
        c.chunks_without_frames,
    )
    return prepared


@task(name="plan-groups", cache_policy=NO_CACHE)
def plan(config: PredictConfig, prepared: list[PreparedFiles]) -> list[Group]:
    groups = pipeline.plan(config, prepared)
    get_run_logger().info(
        "%d frames in %d groups (%d workers × %d groups per worker)",
        sum(g.frames for g in groups),
        len(groups),
        config.workers,
        config.groups_per_worker,
    )
    return groups


@task(name="assemble-outputs", cache_policy=NO_CACHE)
def assemble(
    config: PredictConfig, prepared: list[PreparedFiles], groups: list[Group]
) -> list[InputResult]:
    results = assemble_outputs(prepared, read_scores(pipeline.results_dir(config), groups))
    for result in results:
        get_run_logger().info(
            "%s: %d frames scored → %s",
            result.prepared.protein.parent.name,
            result.frames_scored,
            result.outputs.read_verdicts.text,
        )
    return results
