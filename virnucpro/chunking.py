"""Cutting reads into chunks of the expected length, with VirNucPro's overlap rule.

The classifier was trained on chunks made exactly this way (SPEC §1), so the rule and
its quirks are kept: reads longer than the chunk length are cut into n = ceil(L / C)
chunks whose overlaps spread the excess evenly, and the last chunk can come out shorter
than C when the step list runs out (e.g. C=500, L=501 gives [0,500) and [250,501)).
"""

from __future__ import annotations

CHUNK_LENGTHS = (300, 500)


def chunk_spans(read_length: int, chunk_length: int) -> list[tuple[int, int]]:
    """Return the `[start, end)` span of each chunk of a read, in order.

    A read no longer than `chunk_length` is one chunk: the whole read. An empty read
    has no chunks (callers report it; the original drops it silently).
    """
    if chunk_length < 1:
        raise ValueError(f"chunk_length must be positive, got {chunk_length}")
    if read_length <= chunk_length:
        return [(0, read_length)] if read_length > 0 else []
    n = -(-read_length // chunk_length)
    excess = n * chunk_length - read_length
    lower = excess // n
    upper = lower + 1
    need = excess - lower * (n - 1)
    # The original builds this list and indexes it; when need > n - 1 it is longer
    # than n and its tail is never reached, which is the source of the short last chunk.
    steps = [upper] * need + [lower] * (n - 1 - need) + [0]
    spans = []
    start = 0
    for k in range(n):
        spans.append((start, min(start + chunk_length, read_length)))
        start += chunk_length - steps[k]
    return spans
