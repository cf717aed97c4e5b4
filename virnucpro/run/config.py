"""Run configuration: the one home of every run option, its default and its help.

`virnucpro predict`, `flows/predict.py`, `deployments/serve.py` and the flow's
parameters are all built from these dataclasses (`virnucpro.run.arguments` turns the
fields' metadata into command-line options), so an option is named, defaulted and
explained once. No torch here: `--help` must not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from virnucpro.errors import OptionError
from virnucpro.models.precision import PRECISIONS, Precision
from virnucpro.models.sources import DNABERT_S, ESM2_3B
from virnucpro.reads.chunking import CHUNK_LENGTHS


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A dataclass field that is also a command-line option (`--name-with-dashes`);
    `metadata` may add argparse `choices` and flag `aliases`."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class ModelConfig:
    """The three models and how to run them. Hashable: workers cache loaded models by it."""

    classifier: Path = option(None, "the VirNucPro classifier: 300_model.pth / 500_model.pth")
    esm_model: str = option(ESM2_3B, "fair-esm model name or ESM-2 checkpoint file")
    dnabert_model: str = option(DNABERT_S, "DNABERT-S hub id or local snapshot directory")
    dnabert_revision: str | None = option(
        None, "hub revision (commit, tag, branch) of a hub --dnabert-model; default: main"
    )
    model_cache: Path | None = option(
        None,
        "directory models are downloaded to and read from, shared by all workers "
        "(default: the torch hub and Hugging Face caches)",
    )
    trust_remote_code: bool = option(
        False, "allow DNABERT-S's own model code to run (required for the real model)"
    )
    precision: Precision = option(
        "auto", "auto: BF16 on GPUs with compute capability ≥ 8.0, else FP32", choices=PRECISIONS
    )
    device: str = option("auto", "cpu, cuda, cuda:1 (auto: a GPU if there is one)")
    esm_tokens_per_batch: int | None = option(
        None,
        "ESM-2 packed tokens per step (default: auto, sized on each GPU from its free "
        "memory by a short probe; 4096 on the CPU)",
    )
    dnabert_tokens_per_batch: int | None = option(
        None,
        "DNABERT-S padded tokens per step (default: auto, sized on each GPU from its free "
        "memory by a short probe; 32768 on the CPU)",
    )

    def __post_init__(self) -> None:
        # The command lines check choices; callers from Python or a deployment do not.
        if self.precision not in PRECISIONS:
            raise OptionError(
                f"--precision {self.precision}: not a precision "
                f"(choose from {', '.join(PRECISIONS)})"
            )


@dataclass(frozen=True)
class ClusterConfig:
    """Where the GPU work runs (the flow): an existing cluster, or local workers."""

    scheduler_address: str | None = option(None, "use this running Dask cluster")
    gpus: tuple[int, ...] | None = option(
        None, "GPU indices to use, e.g. 0,2 (default: every visible GPU)"
    )
    cpu_workers: int = option(1, "local workers on a machine without GPUs")


@dataclass(frozen=True)
class PredictConfig:
    """One prediction run: inputs, outputs, models, and how work is split."""

    reads: tuple[Path, ...]
    models: ModelConfig
    out_dir: Path = option(Path("virnucpro-output"), "output directory", aliases=("--out",))
    chunk_length: int = option(300, "nt per chunk (the classifier's)", choices=CHUNK_LENGTHS)
    group_tokens: int = option(
        2_000_000, "ESM-2 tokens per group, the unit of GPU work and of resuming"
    )
    min_tokens_per_second: float | None = option(None, "a throughput target for the report")
    keep_work: bool = option(False, "keep work files of other runs (other models, inputs)")
    prepare_workers: int | None = None  # processes for read preparation (CPU count)

    @property
    def work_dir(self) -> Path:
        """Intermediate files (groups, per-group results, telemetry) live here."""
        return self.out_dir / ".virnucpro-work"
