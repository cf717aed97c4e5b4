"""Tasks that run in the flow process: prepare inputs, plan groups, assemble outputs."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from virnucpro.reads.preparation import PreparedFiles
from virnucpro.run import pipeline
from virnucpro.run.assembly import InputResult, assemble_outputs
from virnucpro.run.config import PredictConfig
from virnucpro.run.group_inference import read_scores
from virnucpro.run.planning import Group


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
        "%d frames, %d tokens in %d groups",
        sum(g.frames for g in groups),
        sum(g.tokens for g in groups),
        len(groups),
    )
    return groups


@task(name="assemble-outputs", cache_policy=NO_CACHE)
def assemble(
    config: PredictConfig, prepared: list[PreparedFiles], groups: list[Group], fingerprint: str
) -> list[InputResult]:
    scores = read_scores(pipeline.results_dir(config, fingerprint), groups)
    results = assemble_outputs(prepared, scores)
    for result in results:
        get_run_logger().info(
            "%s: %d frames scored → %s",
            result.prepared.protein.parent.name,
            result.frames_scored,
            result.outputs.read_verdicts.text,
        )
    return results
