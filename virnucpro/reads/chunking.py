"""Cutting reads into chunks of the expected length, with VirNucPro's overlap rule.

The classifier was trained on chunks made exactly this way (SPEC §1), so the rule and
its quirks are kept: reads longer than the chunk length are cut into n = ceil(L / C)
chunks whose overlaps spread the excess evenly, and the last chunk can come out shorter
than C when the step list runs out (e.g. C=500, L=501 gives [0,500) and [250,501)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_LENGTHS = (300, 500)


@dataclass(frozen=True)
class Chunks:
    """The chunks of many reads, one entry per chunk, in read order."""

    read: np.ndarray  # index of the read each chunk comes from
    number: np.ndarray  # 1-based chunk number within its read
    start: np.ndarray
    end: np.ndarray


def chunk_reads(read_lengths: np.ndarray, chunk_length: int) -> Chunks:
    """Chunks of every read at once (vectorised over reads).

    With excess r = n·C − L, lower = floor(r / n) and need = r − lower·(n − 1), the
    original's step list is [lower+1]·need + [lower]·(n−1−need) + [0]; the sum of its
    first m entries is (lower+1)·min(m, need) + lower·max(0, m − need) — which also
    covers need > n − 1, where the list is longer than n and its tail never used. An
    empty read has no chunks (callers report it; the original drops it silently).
    """
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be positive, got {chunk_length}")
    lengths = np.asarray(read_lengths, dtype=np.int64)
    counts = np.where(lengths <= chunk_length, lengths > 0, -(-lengths // chunk_length))
    excess = counts * chunk_length - lengths
    lower = np.where(counts > 0, excess // np.maximum(counts, 1), 0)
    need = excess - lower * (counts - 1)
    read = np.repeat(np.arange(len(lengths)), counts)
    m = np.arange(len(read)) - np.repeat(np.cumsum(counts) - counts, counts)
    lo, nd = lower[read], need[read]
    start = m * chunk_length - ((lo + 1) * np.minimum(m, nd) + lo * np.maximum(0, m - nd))
    end = np.minimum(start + chunk_length, lengths[read])
    return Chunks(read, m + 1, start, end)
