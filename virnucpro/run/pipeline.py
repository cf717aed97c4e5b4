"""The whole pipeline in one process: the library path, without Prefect or Dask.

reads → prepare (per input) → plan groups → embed and classify each group → assemble
per-input outputs. The Prefect flow (`flows/predict.py`) runs the same functions as
tasks, with the group step spread over a Dask cluster; results are identical.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from virnucpro.models.device import resolve_device, resolved_precision_of
from virnucpro.reads.preparation import PreparedFiles, prepare_reads
from virnucpro.run.assembly import InputResult, assemble_outputs
from virnucpro.run.checks import check_inputs, input_out_dir
from virnucpro.run.config import PredictConfig
from virnucpro.run.fingerprint import run_fingerprint
from virnucpro.run.group_inference import GroupSummary, read_scores, run_group
from virnucpro.run.planning import Group, plan_groups, read_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    inputs: list[InputResult]
    groups: list[GroupSummary]


def prepare_input(config: PredictConfig, reads: Path) -> PreparedFiles:
    return prepare_reads(
        reads, config.chunk_length, input_out_dir(config, reads), workers=config.prepare_workers
    )


def plan(config: PredictConfig, prepared: Sequence[PreparedFiles]) -> list[Group]:
    """All kept frames of all inputs, in groups of about `group_tokens` tokens."""
    return plan_groups(read_frames(prepared), config.group_tokens, groups_dir(config))


def groups_dir(config: PredictConfig) -> Path:
    return config.work_dir / "groups"


def results_dir(config: PredictConfig, fingerprint: str) -> Path:
    """Group results of one model set and precision (`run.fingerprint`)."""
    return config.work_dir / "results" / fingerprint


def remove_stale_work(config: PredictConfig, groups: Sequence[Group], fingerprint: str) -> int:
    """After a successful run: delete group files this run did not plan and results of
    other fingerprints (other models or precision), unless `keep_work`. Returns how
    many files or directories went."""
    if config.keep_work:
        return 0
    planned = {g.path.name for g in groups}
    stale = [p for p in groups_dir(config).iterdir() if p.name not in planned]
    stale += [p for p in results_dir(config, fingerprint).parent.iterdir() if p.name != fingerprint]
    stale += [p for p in results_dir(config, fingerprint).iterdir() if p.suffix == ".tmp"]
    for path in stale:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    if stale:
        log.info("removed %d work files of other runs from %s", len(stale), config.work_dir)
    return len(stale)


def predict(config: PredictConfig) -> RunResult:
    """Run everything here, group after group."""
    config = check_inputs(config)
    prepared = [prepare_input(config, path) for path in config.reads]
    groups = plan(config, prepared)
    precision = resolved_precision_of(config.models.precision, resolve_device(config.models.device))
    models = replace(config.models, precision=precision)
    fingerprint = run_fingerprint(models, precision)
    results = results_dir(config, fingerprint)
    summaries = [run_group(g, results, models, fingerprint) for g in groups]
    inputs = assemble_outputs(prepared, read_scores(results, groups))
    remove_stale_work(config, groups, fingerprint)
    return RunResult(inputs, summaries)
