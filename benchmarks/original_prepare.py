"""The original tool's way of preparing reads: per-read Python, per-codon dict lookups.

Kept as the competitor in `prepare_throughput.py` and as an independent oracle in the
tests. It follows SPEC §1–2 literally, one character and one codon at a time, with no
NumPy, so that it shares no code (and no bug) with `virnucpro.reads.translation`.
"""

from __future__ import annotations

import math

_BASES = "TCAG"
_AMINO_ACIDS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODON_TABLE = {
    a + b + c: _AMINO_ACIDS[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}
_COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}
SUFFIXES = ["F1", "F2", "F3", "R1", "R2", "R3"]


def chunk_read(sequence: str, chunk_length: int) -> list[str]:
    """SPEC §1, written as the original does it: build the step list, walk it."""
    length = len(sequence)
    if length <= chunk_length:
        return [sequence] if length else []
    n = math.ceil(length / chunk_length)
    r = n * chunk_length - length
    lower = r // n
    upper = lower + 1
    need = r - lower * (n - 1)
    steps = [upper] * need + [lower] * (n - 1 - need) + [0]
    chunks = []
    for k in range(1, n + 1):
        start = (k - 1) * chunk_length - sum(steps[0 : k - 1])
        chunks.append(sequence[start : start + chunk_length])
    return chunks


def reverse_complement(sequence: str) -> str:
    return "".join(_COMPLEMENT.get(ch, ch) for ch in reversed(sequence))


def translate(sequence: str, offset: int) -> str:
    """Codons from `offset` while 3 characters remain; non-ACGT codons are dropped."""
    protein = []
    for i in range(offset, len(sequence) - 2, 3):
        amino_acid = CODON_TABLE.get(sequence[i : i + 3])
        if amino_acid is not None:
            protein.append(amino_acid)
    return "".join(protein)


def kept_frames(chunk: str) -> list[tuple[str, str, str]]:
    """(suffix, protein, nucleotide) for each stop-free, non-empty frame of a chunk."""
    upper = chunk.upper()
    strands = [upper, reverse_complement(upper)]
    frames = []
    for number, suffix in enumerate(SUFFIXES):
        strand, offset = strands[number // 3], number % 3
        protein = translate(strand, offset)
        if protein and "*" not in protein:
            frames.append((suffix, protein, strand[offset : offset + 3 * len(protein) + 1]))
    return frames


def prepare(
    reads: list[tuple[str, str]], chunk_length: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """All chunks `(chunk_id, chunk)` and kept frames `(frame_id, protein, nucleotide)`."""
    chunks, frames = [], []
    for read_id, sequence in reads:
        for k, chunk in enumerate(chunk_read(sequence, chunk_length), start=1):
            chunk_id = f"{read_id}_chunk_{k}"
            chunks.append((chunk_id, chunk))
            for suffix, protein, nucleotide in kept_frames(chunk):
                frames.append((chunk_id + suffix, protein, nucleotide))
    return chunks, frames
