"""The whole pipeline in one process: the library path, without Prefect or Dask.

reads → prepare (per input) → plan groups → embed and classify each group → assemble
per-input outputs. The Prefect flow (`flows/predict.py`) runs the same functions as
tasks, with the group step spread over a Dask cluster; results are identical.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from virnucpro import dnabert, esm_checkpoint
from virnucpro.assembly import InputResult, assemble_outputs
from virnucpro.config import PredictConfig
from virnucpro.errors import CheckpointError, InputError
from virnucpro.fasta import fasta_stem
from virnucpro.group_inference import GroupSummary, read_scores, run_group
from virnucpro.planning import Group, plan_groups, read_frames
from virnucpro.preparation import PreparedFiles, prepare_reads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    inputs: list[InputResult]
    groups: list[GroupSummary]


def input_out_dir(config: PredictConfig, reads: Path) -> Path:
    """Each input's prepared files and results go to `<out_dir>/<stem>/`."""
    return config.out_dir / fasta_stem(reads)


def check_inputs(config: PredictConfig) -> None:
    """Before any work: refuse inputs whose outputs would collide (same stem), and
    models that cannot be found, so a typo costs seconds, not a preparation and a
    cluster start. Weights are read later, by whoever runs the groups."""
    models = config.models
    if not models.classifier.is_file():
        raise CheckpointError(f"{models.classifier}: classifier file not found")
    esm_checkpoint.check_source(models.esm_model)
    dnabert.check_source(models.dnabert_model, models.trust_remote_code)
    stems: dict[str, Path] = {}
    for path in config.reads:
        stem = fasta_stem(path)
        if stem in stems:
            raise InputError(
                f"{path} and {stems[stem]} would both write to {config.out_dir / stem}: "
                "rename one of them"
            )
        stems[stem] = path


def prepare_input(config: PredictConfig, reads: Path) -> PreparedFiles:
    return prepare_reads(
        reads, config.chunk_length, input_out_dir(config, reads), workers=config.prepare_workers
    )


def plan(config: PredictConfig, prepared: Sequence[PreparedFiles]) -> list[Group]:
    """All kept frames of all inputs, in `workers × groups_per_worker` groups."""
    return plan_groups(
        read_frames(prepared),
        config.workers * config.groups_per_worker,
        config.work_dir / "groups",
        config.models.fingerprint(),
    )


def results_dir(config: PredictConfig) -> Path:
    return config.work_dir / "results"


def predict(config: PredictConfig) -> RunResult:
    """Run everything here, group after group."""
    check_inputs(config)
    prepared = [prepare_input(config, path) for path in config.reads]
    groups = plan(config, prepared)
    fingerprint = config.models.fingerprint()
    summaries = [run_group(g, results_dir(config), config.models, fingerprint) for g in groups]
    inputs = assemble_outputs(prepared, read_scores(results_dir(config), groups))
    return RunResult(inputs, summaries)
