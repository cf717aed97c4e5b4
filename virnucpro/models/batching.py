"""Token-budget batching and out-of-memory split-and-retry, shared by both embedders.

Both engines sort sequences by length and fill each step up to a token budget; the
ESM-2 engine packs (cost = sum of lengths), the DNABERT-S engine pads (cost = longest
× count). A batch that still runs out of GPU memory is halved and retried, down to a
single sequence, so no sequence is ever lost to an OOM.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class EmbedStats:
    """Counters of one `embed` call of either engine, for telemetry."""

    sequences: int = 0
    tokens: int = 0  # real tokens (special tokens included, padding excluded)
    padding_tokens: int = 0  # tokens computed only to pad a step (padding, static shapes)
    steps: int = 0
    oom_splits: int = 0
    truncated: int = 0
    seconds: float = 0.0


def token_budget_batches(
    lengths: Sequence[int] | np.ndarray, max_tokens: int, *, padded: bool = False
) -> list[np.ndarray]:
    """Group sequence indices into batches whose token cost stays within `max_tokens`.

    Longest first, so batches hold similar lengths (little padding, and the largest
    batch runs first, which surfaces an OOM early). A single sequence longer than the
    budget gets a batch of its own rather than being dropped. Returns index arrays into
    `lengths`; every index appears exactly once.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        total = int(lengths[order[start]])
        longest = total
        while end < len(order):
            n = int(lengths[order[end]])
            cost = longest * (end - start + 1) if padded else total + n
            if cost > max_tokens:
                break
            total += n
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def is_out_of_memory(error: BaseException) -> bool:
    """True for a CUDA (or other accelerator) allocation failure."""
    return isinstance(error, torch.OutOfMemoryError)


def run_splitting_on_oom(
    indices: np.ndarray,
    run: Callable[[np.ndarray], T],
    *,
    on_split: Callable[[int], None] | None = None,
) -> list[tuple[np.ndarray, T]]:
    """Run `run(indices)`; on OOM, halve the batch and retry each half recursively.

    Returns `(indices, result)` pieces covering `indices` in order. A single sequence
    that still does not fit re-raises the error: there is nothing left to split.
    `on_split(batch_size)` is called before each split so callers can count the event.
    """
    try:
        return [(indices, run(indices))]
    except Exception as error:
        if not is_out_of_memory(error) or len(indices) <= 1:
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.warning("out of memory on a batch of %d sequences; splitting and retrying", len(indices))
    if on_split is not None:
        on_split(len(indices))
    middle = len(indices) // 2
    return run_splitting_on_oom(indices[:middle], run, on_split=on_split) + run_splitting_on_oom(
        indices[middle:], run, on_split=on_split
    )
