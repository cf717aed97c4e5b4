"""Six-frame translation and stop-free frame selection, vectorised over many chunks.

SPEC §2: frames 1–3 read the upper-cased chunk from offsets 0, 1, 2; frames 4–6 read
its reverse complement the same way. A codon that is not one of the 64 ACGT codons is
dropped (not translated to X), a frame is kept only if its protein is non-empty and has
no stop, and the nucleotide string paired with a kept frame is `s[f : f + 3·len(protein)
+ 1]` — shorter than the codons read when codons were dropped, a quirk the classifier
was trained with and that the ledger reports as `ambiguous_codons_dropped`.

Why it is fast: most frames of most chunks contain a stop, so the work is finding
stops, not translating. Every triplet of a block of chunks gets one code (a byte lookup
and a few byte operations over one buffer); a second lookup flags forward stops
(TAA/TAG/TGA), reverse-strand stops (their reverse complements TTA/CTA/TCA, read on the
forward strand) and ambiguous triplets. Only those few flagged positions are mapped to
(chunk, frame), and only the kept frames are ever translated into strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FRAME_SUFFIXES = ("F1", "F2", "F3", "R1", "R2", "R3")

# Reasons a chunk has no kept frame (the ledger's `status` column).
STATUS_OK = "ok"
STATUS_TOO_SHORT = "too_short"
STATUS_ONLY_AMBIGUOUS = "only_ambiguous_codons"
STATUS_NO_STOP_FREE = "no_stop_free_frame"
_STATUSES = (STATUS_OK, STATUS_TOO_SHORT, STATUS_ONLY_AMBIGUOUS, STATUS_NO_STOP_FREE)

_BASES = "ACGT"
# NCBI table 1, the standard code the original translates with (Biopython's default),
# codons in TCAG order (TTT, TTC, TTA, TTG, TCT, ...). Spelled out: importing
# Biopython's tables costs a short `virnucpro prepare` 20 ms.
_STANDARD_CODE = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
_CODONS = {
    a + b + c: _STANDARD_CODE[16 * i + 4 * j + k]
    for i, a in enumerate("TCAG")
    for j, b in enumerate("TCAG")
    for k, c in enumerate("TCAG")
}
_N_CODES = 5  # A, C, G, T, and 4 for anything else
_DROPPED = 0  # amino-acid byte of a triplet with a non-ACGT character
_FORWARD_STOP, _REVERSE_STOP, _AMBIGUOUS = 1, 2, 4  # triplet flags


def _byte_table(mapping: dict[str, str]) -> np.ndarray:
    table = np.arange(256, dtype=np.uint8)
    for src, dst in mapping.items():
        table[ord(src)] = ord(dst)
    return table


_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_NUC_CODE = bytes(
    _BASES.index(chr(b).upper()) if chr(b).upper() in _BASES else _N_CODES - 1 for b in range(256)
)


def _reverse_complement(triplet: str) -> str:
    return triplet.translate(_COMPLEMENT)[::-1]


def _triplet_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per triplet code (25·c1 + 5·c2 + c3): flags, forward and reverse amino acid."""
    size = _N_CODES**3
    flags = np.full(size, _AMBIGUOUS, dtype=np.uint8)
    forward = np.full(size, _DROPPED, dtype=np.uint8)
    reverse = np.full(size, _DROPPED, dtype=np.uint8)
    for triplet in map("".join, itertools.product(_BASES, repeat=3)):
        code = sum(_BASES.index(b) * _N_CODES ** (2 - i) for i, b in enumerate(triplet))

        forward[code] = ord(_CODONS[triplet])
        reverse[code] = ord(_CODONS[_reverse_complement(triplet)])
        flags[code] = (_FORWARD_STOP if forward[code] == ord("*") else 0) | (
            _REVERSE_STOP if reverse[code] == ord("*") else 0
        )
    return flags, forward, reverse


_FLAGS, _FORWARD_AA, _REVERSE_AA = _triplet_tables()
_FLAGS_TABLE = _FLAGS.tobytes().ljust(256, b"\0")  # triplet code → flags, as a byte table


@dataclass(frozen=True)
class FrameBlock:
    """Kept frames of a block of chunks, in chunk order then F1..R3 order.

    `chunk` indexes the input chunks; `frame` is 0..5 (index into FRAME_SUFFIXES).
    `status` and `ambiguous_codons_dropped` have one entry per input chunk.
    """

    chunk: np.ndarray
    frame: np.ndarray
    protein: list[str]
    nucleotide: list[str]
    status: list[str]
    ambiguous_codons_dropped: np.ndarray


def _lookup(data: bytes, table: bytes) -> np.ndarray:
    """`table[b]` for every byte: bytes.translate, about 3× faster than NumPy's
    indexing with a byte array."""
    return np.frombuffer(data.translate(table), dtype=np.uint8)


def _triplet_codes(text: bytes) -> np.ndarray:
    """Code of the triplet starting at every position, either case; the last two
    positions, which start no triplet, get the code of an ambiguous one."""
    # One byte lookup, then byte arithmetic (a lookup per position costs several
    # times an arithmetic pass, so there is only one).
    codes = _lookup(text, _NUC_CODE)
    triplets = np.full(len(codes), _N_CODES**3 - 1, dtype=np.uint8)
    if len(codes) >= 3:
        triplets[:-2] = codes[:-2] * np.uint8(25) + codes[1:-1] * np.uint8(5) + codes[2:]
    return triplets


def _per_phase(
    values: np.ndarray, begins: np.ndarray, phase: int, reduce: np.ufunc, dtype: type
) -> np.ndarray:
    """`reduce` over each chunk's positions ≡ phase (mod 3): the chunk's triplets of one
    reading frame. `values` is padded so every chunk's first index is in range."""
    strided = values[phase::3]
    first = (begins - phase + 2) // 3
    out = reduce.reduceat(strided, first, dtype=dtype)
    # reduceat returns the element at an empty segment's start instead of the identity.
    out[np.diff(first, append=len(strided)) == 0] = 0
    return out


def select_frames(chunks: Sequence[str]) -> FrameBlock:
    """Translate every chunk in six frames and keep the stop-free, non-empty ones."""
    n = len(chunks)
    lengths = np.fromiter(map(len, chunks), dtype=np.int64, count=n)
    ends = np.cumsum(lengths)
    begins = ends - lengths
    text = "".join(chunks)
    triplets = _triplet_codes(text.encode("ascii"))
    flags = np.zeros(len(triplets) + 3, dtype=np.uint8)  # padding: see _per_phase
    flags[: len(triplets)] = _lookup(triplets.tobytes(), _FLAGS_TABLE)
    # A triplet starting in a chunk's last two positions runs into the next chunk.
    for tail in (1, 2):
        flags[(ends - tail)[lengths >= tail]] = 0
    ambiguous = flags >> 2  # _AMBIGUOUS is bit 2

    # Forward frame f of chunk j reads the positions ≡ begin_j + f (mod 3). Read on
    # the reverse strand, a triplet at local position p starts at L − p − 3, so the same
    # positions form reverse frame (L − f) mod 3: one pass per phase serves both strands.
    rows = np.arange(n)
    stops = np.zeros((n, 6), dtype=bool)
    dropped = np.zeros((n, 6), dtype=np.int64)
    for phase in range(3):
        bits = _per_phase(flags, begins, phase, np.bitwise_or, np.uint8)
        count = _per_phase(ambiguous, begins, phase, np.add, np.int32)
        forward = (phase - begins) % 3
        reverse = 3 + (lengths - forward) % 3
        stops[rows, forward] |= bits & _FORWARD_STOP > 0
        stops[rows, reverse] |= bits & _REVERSE_STOP > 0
        dropped[rows, forward] = count
        dropped[rows, reverse] = count
    offsets = np.arange(6) % 3
    codons = np.maximum(lengths[:, None] - offsets, 0) // 3
    valid = codons - dropped
    kept = ~stops & (valid > 0)

    chunk_ids, frame_ids = np.nonzero(kept)
    proteins = _proteins(triplets, begins, lengths, chunk_ids, frame_ids, codons[kept])
    nucleotides = _nucleotides(text, begins, lengths, chunk_ids, frame_ids, valid[kept])
    reason = np.select(
        [kept.any(axis=1), lengths < 3, ~(valid > 0).any(axis=1)], [0, 1, 2], default=3
    )
    status = [_STATUSES[r] for r in reason.tolist()]
    return FrameBlock(
        chunk_ids, frame_ids, proteins, nucleotides, status, np.where(kept, dropped, 0).sum(1)
    )


def _proteins(
    triplets: np.ndarray,
    begins: np.ndarray,
    lengths: np.ndarray,
    chunk_ids: np.ndarray,
    frame_ids: np.ndarray,
    counts: np.ndarray,
) -> list[str]:
    """Translate the kept frames: codon k of a forward frame f is the triplet at local
    f + 3k; of a reverse frame it is the reverse complement of the triplet at
    L − (f − 3) − 3k − 3, so both strands read the one forward triplet buffer."""
    reverse = frame_ids >= 3
    offset = frame_ids % 3
    first = np.where(
        reverse, begins[chunk_ids] + lengths[chunk_ids] - offset - 3, begins[chunk_ids] + offset
    )
    step = np.where(reverse, -3, 3)
    codon_number = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    position = np.repeat(first, counts) + np.repeat(step, counts) * codon_number
    on_reverse = np.repeat(reverse, counts)
    letters = np.where(on_reverse, _REVERSE_AA[triplets[position]], _FORWARD_AA[triplets[position]])
    keep = letters != _DROPPED
    text = letters[keep].tobytes().decode("ascii")
    per_frame = np.bincount(np.repeat(np.arange(len(counts)), counts)[keep], minlength=len(counts))
    bounds = np.concatenate(([0], np.cumsum(per_frame))).tolist()
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _nucleotides(
    text: str,
    begins: np.ndarray,
    lengths: np.ndarray,
    chunk_ids: np.ndarray,
    frame_ids: np.ndarray,
    protein_lengths: np.ndarray,
) -> list[str]:
    """`s[f : f + 3·len(protein) + 1]` of each kept frame, s the upper-cased chunk or
    its reverse complement, clipped at the chunk's end (`text` is the chunks as given)."""
    out = []
    for c, f, p in zip(
        chunk_ids.tolist(), frame_ids.tolist(), protein_lengths.tolist(), strict=True
    ):
        begin, length = int(begins[c]), int(lengths[c])
        offset = f % 3
        stop = min(offset + 3 * p + 1, length)
        if f < 3:
            out.append(text[begin + offset : begin + stop].upper())
        else:
            # s_rc[a:b] is the reverse complement of s[L − b : L − a].
            piece = text[begin + length - stop : begin + length - offset].upper()
            out.append(piece.translate(_COMPLEMENT)[::-1])
    return out
