"""Run configuration: one home for every setting, with defaults.

The CLI (`virnucpro predict`), the Prefect flow's parameters and deployments all build
these dataclasses, so a setting is named and defaulted once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from virnucpro.device import Precision
from virnucpro.dnabert import DNABERT_S

ESM2_3B = "esm2_t36_3B_UR50D"


@dataclass(frozen=True)
class ModelConfig:
    """The three models and how to run them. Hashable: workers cache loaded models by it."""

    classifier: Path
    esm_model: str = ESM2_3B  # fair-esm name or checkpoint path
    dnabert_model: str = DNABERT_S  # hub name or local snapshot directory
    trust_remote_code: bool = False  # DNABERT-S ships model code; see virnucpro.dnabert
    precision: Precision = "auto"  # BF16 on GPUs with compute capability ≥ 8.0, else FP32
    device: str = "auto"
    esm_tokens_per_batch: int | None = None  # None: the engine's default for the device
    dnabert_tokens_per_batch: int = 32768

    def fingerprint(self) -> str:
        """What the results depend on. Not batch sizes: they change scores only at
        rounding level (~1e-7, from matrix shapes), so a rerun with another batch size
        may reuse finished groups. The same groups with the same models give the same
        bytes."""
        identity = {
            "classifier": _file_identity(self.classifier, content=True),
            "esm_model": _file_identity(self.esm_model),
            "dnabert_model": _file_identity(self.dnabert_model),
            "precision": self.precision,
        }
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PredictConfig:
    """One prediction run: inputs, outputs, models, and how work is split."""

    reads: tuple[Path, ...]
    out_dir: Path
    models: ModelConfig
    chunk_length: int = 300
    groups_per_worker: int = 4
    workers: int = 1  # one per GPU in the flow; the library path runs in-process
    prepare_workers: int | None = None  # processes for read preparation (CPU count)

    @property
    def work_dir(self) -> Path:
        """Intermediate files (groups, per-group results, telemetry) live here."""
        return self.out_dir / ".virnucpro-work"


def _file_identity(name_or_path: str | Path, *, content: bool = False) -> str:
    """A local file or directory by path, size and modification time (or content hash
    for small files); a hub name as itself. Cheap enough for multi-GB checkpoints."""
    path = Path(name_or_path)
    if not path.exists():
        return str(name_or_path)
    if content and path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [
        (str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    ]
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()
