"""What a run refuses before any work, and its models resolved to local files.

No torch here: the command line runs these checks before anything heavy is imported,
so a typo costs well under a second.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from virnucpro.errors import CheckpointError, InputError
from virnucpro.models import sources
from virnucpro.reads.fasta import fasta_stem
from virnucpro.run.config import PredictConfig


def input_out_dir(config: PredictConfig, reads: Path) -> Path:
    """Each input's prepared files and results go to `<out_dir>/<stem>/`."""
    return config.out_dir / fasta_stem(reads)


def check_inputs(config: PredictConfig) -> PredictConfig:
    """Before any work: refuse inputs whose outputs would collide (same stem), and
    resolve every model to a local path (downloading what is missing, once, here), so
    a typo or a missing network costs seconds, not a preparation and a cluster start,
    and workers only read local files. Returns the config with those paths."""
    models = config.models
    if not Path(models.classifier).is_file():
        raise CheckpointError(f"{models.classifier}: classifier file not found")
    dnabert = sources.resolve_dnabert(
        models.dnabert_model, models.dnabert_revision, models.model_cache
    )
    sources.check_remote_code(dnabert, models.trust_remote_code)
    esm = sources.resolve_esm(models.esm_model, models.model_cache)
    stems: dict[str, Path] = {}
    for path in config.reads:
        stem = fasta_stem(path)
        if stem in stems:
            raise InputError(
                f"{path} and {stems[stem]} would both write to {config.out_dir / stem}: "
                "rename one of them"
            )
        stems[stem] = path
    resolved = replace(models, esm_model=str(esm), dnabert_model=str(dnabert))
    return replace(config, models=resolved)
