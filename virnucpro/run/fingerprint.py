"""What a run's results depend on, as one short key.

Results are keyed by content: each model file by a SHA-256 of its bytes (a snapshot
directory by its files' hashes), and the precision the run really uses (bf16 or fp32,
never `auto`). Not batch sizes or the number of workers: they change scores only at
rounding level (~1e-7), so a rerun with other settings may reuse finished groups.

Hashing a 5 GB checkpoint takes seconds, so hashes are cached by absolute path, size
and modification time in `$XDG_CACHE_HOME/virnucpro/content-hashes.json`: a model is
hashed once, and rewriting it with the same bytes (as `make demo` does) keeps its key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from virnucpro.atomic_write import write_text
from virnucpro.run.config import ModelConfig

_CHUNK = 1 << 24


def run_fingerprint(models: ModelConfig, precision: str) -> str:
    """The key of a run's results for `models` run in `precision` (bf16/fp16/fp32)."""
    if precision not in ("bf16", "fp16", "fp32"):
        raise ValueError(f"fingerprint needs a resolved precision, not {precision!r}")
    identity = {
        "classifier": model_identity(models.classifier),
        "esm_model": model_identity(models.esm_model),
        "dnabert_model": model_identity(models.dnabert_model),
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def model_identity(path: str | Path) -> str:
    """A model file or snapshot directory by content. Models are resolved to local
    paths (`run.checks`) before anything is keyed, so a hub name is an error here."""
    path = Path(path)
    if path.is_file():
        return content_hash(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        listing = [(p.relative_to(path).as_posix(), content_hash(p)) for p in files]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    raise ValueError(f"{path}: not a local model file or directory (resolve models first)")


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, from the cache when path, size and mtime match."""
    path = path.resolve()
    stat = path.stat()
    key = f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}"
    cache = _read_cache()
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    cache = {k: v for k, v in _read_cache().items() if not k.startswith(f"{path}\t")}
    cache[key] = digest.hexdigest()
    cache_file().parent.mkdir(parents=True, exist_ok=True)
    write_text(cache_file(), json.dumps(cache, indent=0))
    return cache[key]


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "virnucpro" / "content-hashes.json"


def _read_cache() -> dict[str, str]:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, ValueError):  # absent or damaged: rebuilt as files are hashed
        return {}
