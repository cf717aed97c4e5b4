"""Embed and classify one group of frames: the unit of GPU work.

A worker loads the three models once (cached per process by their configuration) and
then runs any number of groups: DNABERT-S on the nucleotide slices, ESM-2 on the
proteins, features joined by frame id, the classifier, and the group's result written
atomically as Parquet (`frame_id, score1, score2`) with the run fingerprint and the
group's summary (who computed it, when, how fast) in its metadata. A result that is
present, readable, fingerprinted for this run and covers exactly the group's frames is
complete: resuming skips it and reports the stored summary, marked `skipped`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from virnucpro.atomic_write import write_parquet
from virnucpro.models.batching import EmbedStats
from virnucpro.models.classifier import MLPClassifier, load_classifier, predict_proba
from virnucpro.models.dnabert import DnabertEmbedder, load_dnabert
from virnucpro.models.esm_embedder import EsmEmbedder
from virnucpro.models.features import join_features
from virnucpro.run.config import ModelConfig
from virnucpro.run.planning import Group, read_group

log = logging.getLogger(__name__)

RESULT_SCHEMA = pa.schema(
    [("frame_id", pa.string()), ("score1", pa.float32()), ("score2", pa.float32())]
)
_FINGERPRINT_KEY = b"virnucpro.fingerprint"
_SUMMARY_KEY = b"virnucpro.summary"


@dataclass
class Models:
    """The loaded models of one worker process."""

    dnabert: DnabertEmbedder
    esm: EsmEmbedder
    classifier: MLPClassifier


@functools.cache
def load_models(config: ModelConfig) -> Models:
    """Load once per process; later groups with the same configuration reuse them."""
    # ESM-2 first: each engine sizes its `auto` steps from the memory left when it
    # loads, and DNABERT-S must see ESM-2's weights already there (not the reverse:
    # DNABERT-S is ~0.2 GB, within the probe's headroom).
    esm = EsmEmbedder(
        config.esm_model,
        device=config.device,
        precision=config.precision,
        max_tokens=config.esm_tokens_per_batch,
    )
    dnabert = load_dnabert(
        config.dnabert_model,
        max_tokens=config.dnabert_tokens_per_batch,
        trust_remote_code=config.trust_remote_code,
        device=config.device,
        precision=config.precision,
    )
    classifier = load_classifier(config.classifier, dnabert_dim=dnabert.dim, esm_dim=esm.dim)
    classifier.to(dnabert.device)
    return Models(dnabert, esm, classifier)


@dataclass(frozen=True)
class GroupSummary:
    """What a group task returns: small, whatever the group's size."""

    group_id: str
    frames: int
    tokens: int
    skipped: bool  # a complete result from an earlier run was found
    worker: str
    started_at: float  # unix time the group started
    seconds: float  # the whole group, reading to writing
    wait_seconds: float = 0.0  # before embedding: reading the group, loading models
    dnabert: EmbedStats | None = None  # None when skipped
    esm: EmbedStats | None = None
    dnabert_budget: int = 0  # tokens per step each engine was allowed
    esm_budget: int = 0

    @property
    def oom_splits(self) -> int:
        return sum(s.oom_splits for s in (self.dnabert, self.esm) if s is not None)

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> GroupSummary:
        values = json.loads(data)
        for engine in ("dnabert", "esm"):
            if values[engine] is not None:
                values[engine] = EmbedStats(**values[engine])
        return cls(**values)


def result_path(results_dir: Path, group: Group) -> Path:
    return results_dir / f"{group.group_id}.parquet"


def stored_summary(path: Path, group: Group, fingerprint: str) -> GroupSummary | None:
    """The summary stored with a complete result at `path` (this fingerprint, exactly
    the group's frames), marked skipped; None when there is no complete result."""
    if not path.exists():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None
    metadata = table.schema.metadata or {}
    if metadata.get(_FINGERPRINT_KEY) != fingerprint.encode() or table.num_rows != group.frames:
        return None
    if not table.column("frame_id").equals(read_group(group).column("frame_id")):
        return None
    try:
        summary = GroupSummary.from_json(metadata[_SUMMARY_KEY])
    except (KeyError, ValueError, TypeError):
        return None
    return dataclasses.replace(summary, skipped=True)


def run_group(
    group: Group,
    results_dir: Path,
    config: ModelConfig,
    fingerprint: str,
    worker: str | None = None,
) -> GroupSummary:
    """Embed, classify and store one group, unless its result is already complete.

    `worker` names who ran it in the summary (the Dask worker; default: the host)."""
    started, started_at = time.perf_counter(), time.time()
    path = result_path(results_dir, group)
    worker = worker or socket.gethostname()
    if (stored := stored_summary(path, group, fingerprint)) is not None:
        log.info("group %s: complete result found, skipped", group.group_id)
        return stored

    table = read_group(group)
    frame_ids = table.column("frame_id").to_pylist()
    models = load_models(config)
    waited = time.perf_counter() - started
    dnabert = models.dnabert.embed(table.column("nucleotide").to_pylist())
    esm = models.esm.embed(table.column("protein").to_pylist())
    features = join_features(frame_ids, dnabert, frame_ids, esm)
    scores = predict_proba(models.classifier, features.matrix)

    summary = GroupSummary(
        group.group_id,
        group.frames,
        group.tokens,
        False,
        worker,
        started_at,
        time.perf_counter() - started,
        waited,
        models.dnabert.last_stats,
        models.esm.last_stats,
        models.dnabert.max_tokens,
        models.esm.max_tokens,
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    result = pa.table(
        [features.frame_ids, scores[:, 0], scores[:, 1]], schema=RESULT_SCHEMA
    ).replace_schema_metadata(
        {_FINGERPRINT_KEY: fingerprint.encode(), _SUMMARY_KEY: summary.to_json()}
    )
    write_parquet(result, path)
    return summary


def read_scores(results_dir: Path, groups: list[Group]) -> dict[str, np.ndarray]:
    """frame id → [P(others), P(virus)] over all groups' results."""
    scores: dict[str, np.ndarray] = {}
    for group in groups:
        table = pq.read_table(result_path(results_dir, group))
        matrix = np.stack(
            [table.column("score1").to_numpy(), table.column("score2").to_numpy()], axis=1
        )
        scores.update(zip(table.column("frame_id").to_pylist(), matrix, strict=True))
    return scores
