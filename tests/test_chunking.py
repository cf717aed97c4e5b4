import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from virnucpro.reads.chunking import chunk_reads


def chunk_spans(read_length: int, chunk_length: int) -> list[tuple[int, int]]:
    """The `[start, end)` spans of one read's chunks, through the vectorised chunker."""
    chunks = chunk_reads(np.array([read_length]), chunk_length)
    return list(zip(chunks.start.tolist(), chunks.end.tolist(), strict=True))


@pytest.mark.parametrize(
    ("length", "chunk_length", "expected"),
    [
        (501, 500, [(0, 500), (250, 501)]),  # the short-last-chunk quirk from the SPEC
        (1000, 300, [(0, 300), (249, 549), (498, 798), (747, 1000)]),
        (300, 300, [(0, 300)]),
        (2, 300, [(0, 2)]),
        (1, 500, [(0, 1)]),
        (600, 300, [(0, 300), (300, 600)]),
        (0, 300, []),
    ],
)
def test_known_spans(length, chunk_length, expected):
    assert chunk_spans(length, chunk_length) == expected


@given(st.integers(1, 20_000), st.sampled_from([300, 500]))
def test_spans_follow_the_rule_and_cover_the_read(length, chunk_length):
    spans = chunk_spans(length, chunk_length)
    n = math.ceil(length / chunk_length)
    assert len(spans) == n
    # Chunk k starts at (k-1)·C − sum(steps[:k-1]) with the SPEC's step list.
    r = n * chunk_length - length
    lower = r // n
    need = r - lower * (n - 1)
    steps = [lower + 1] * need + [lower] * (n - 1 - need) + [0]
    for k, (start, end) in enumerate(spans, start=1):
        assert start == (k - 1) * chunk_length - sum(steps[: k - 1])
        assert end == min(start + chunk_length, length)
    # Together the chunks cover the whole read, in order, without gaps.
    assert spans[0][0] == 0
    assert spans[-1][1] == length
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start <= end


def test_zero_chunk_length_is_refused():
    with pytest.raises(ValueError, match="chunk_length"):
        chunk_spans(10, 0)


@given(st.lists(st.integers(0, 5000), max_size=50), st.sampled_from([300, 500]))
def test_many_reads_at_once_equal_one_at_a_time(lengths, chunk_length):
    chunks = chunk_reads(np.array(lengths, dtype=np.int64), chunk_length)
    expected = [
        (i, k, start, end)
        for i, n in enumerate(lengths)
        for k, (start, end) in enumerate(chunk_spans(n, chunk_length), start=1)
    ]
    got = list(
        zip(
            chunks.read.tolist(),
            chunks.number.tolist(),
            chunks.start.tolist(),
            chunks.end.tolist(),
            strict=True,
        )
    )
    assert got == expected
