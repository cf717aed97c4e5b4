"""Classifier features: `[DNABERT-S ‖ ESM-2]` per kept frame, joined by frame id (SPEC §3).

The two embedders run separately (and may reorder, batch or shard their work), so rows
are matched by frame id, never by position: a frame missing from either side, or an id
seen twice, would otherwise pair one frame's DNA with another frame's protein silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from virnucpro.errors import FeatureError


@dataclass(frozen=True)
class FrameFeatures:
    """Feature rows (float32 [n, dnabert_dim + esm_dim]) and the frame id of each row."""

    frame_ids: list[str]
    matrix: np.ndarray


def join_features(
    dnabert_ids: Sequence[str],
    dnabert: np.ndarray,
    esm_ids: Sequence[str],
    esm: np.ndarray,
) -> FrameFeatures:
    """Concatenate each frame's DNABERT-S and ESM-2 rows, in the order of `dnabert_ids`."""
    dnabert_rows = _row_index(dnabert_ids, dnabert, "DNABERT-S")
    esm_rows = _row_index(esm_ids, esm, "ESM-2")
    _require_same_frames(dnabert_rows, esm_rows)
    order = [esm_rows[frame] for frame in dnabert_ids]
    matrix = np.concatenate(
        [np.asarray(dnabert, dtype=np.float32), np.asarray(esm, dtype=np.float32)[order]],
        axis=1,
    )
    return FrameFeatures(frame_ids=list(dnabert_ids), matrix=matrix)


def _row_index(ids: Sequence[str], matrix: np.ndarray, source: str) -> dict[str, int]:
    if matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise FeatureError(
            f"{source} embeddings: {len(ids)} frame ids but a matrix of shape {matrix.shape}"
        )
    rows: dict[str, int] = {}
    for row, frame in enumerate(ids):
        if frame in rows:
            raise FeatureError(
                f"{source} embeddings: frame {frame} appears twice (rows {rows[frame]} and {row})"
            )
        rows[frame] = row
    return rows


def _require_same_frames(dnabert_rows: dict[str, int], esm_rows: dict[str, int]) -> None:
    for present, absent, missing_from in (
        (dnabert_rows, esm_rows, "ESM-2"),
        (esm_rows, dnabert_rows, "DNABERT-S"),
    ):
        missing = [frame for frame in present if frame not in absent]
        if missing:
            shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
            raise FeatureError(f"{len(missing)} frame(s) have no {missing_from} embedding: {shown}")
