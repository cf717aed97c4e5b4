import numpy as np
import original_prepare
from hypothesis import given, settings
from hypothesis import strategies as st

from virnucpro.reads.translation import (
    FRAME_SUFFIXES,
    STATUS_NO_STOP_FREE,
    STATUS_OK,
    STATUS_ONLY_AMBIGUOUS,
    STATUS_TOO_SHORT,
    select_frames,
)

# Mostly ACGT so stop-free frames occur; some IUPAC codes and lowercase.
nucleotides = st.text(alphabet="ACGTACGTACGTACGTacgtNRYK", min_size=0, max_size=700)


def _ours(chunks):
    block = select_frames(chunks)
    per_chunk = [[] for _ in chunks]
    for c, f, p, n in zip(block.chunk, block.frame, block.protein, block.nucleotide, strict=True):
        per_chunk[c].append((FRAME_SUFFIXES[f], p, n))
    return block, per_chunk


@settings(max_examples=200, deadline=None)
@given(st.lists(nucleotides, min_size=1, max_size=12))
def test_frames_match_the_per_codon_oracle(chunks):
    _, per_chunk = _ours(chunks)
    assert per_chunk == [original_prepare.kept_frames(c) for c in chunks]


@settings(max_examples=200, deadline=None)
@given(st.lists(nucleotides, min_size=1, max_size=12))
def test_protein_is_translation_of_its_nucleotide_slice_minus_dropped_codons(chunks):
    block, per_chunk = _ours(chunks)
    for chunk, frames, dropped in zip(
        chunks, per_chunk, block.ambiguous_codons_dropped, strict=True
    ):
        codons_read = 0
        for suffix, protein, nucleotide in frames:
            assert protein and "*" not in protein
            assert nucleotide == nucleotide.upper()
            # Translating the paired slice gives a prefix of the protein's codons (the
            # slice is 3·len(protein)+1 long, so it is short by the dropped codons).
            translated = original_prepare.translate(nucleotide, 0)
            assert protein.startswith(translated)
            offset = int(suffix[1]) - 1
            strand = (
                chunk.upper()
                if suffix[0] == "F"
                else original_prepare.reverse_complement(chunk.upper())
            )
            codons_read += (len(strand) - offset) // 3
            assert original_prepare.translate(strand, offset) == protein
        assert dropped == codons_read - sum(len(p) for _, p, _ in frames)


def test_statuses_say_why_a_chunk_has_no_frame():
    block = select_frames(["AC", "NNNNNNNNN", "CTAACTAGTTAG", "ATGGCC", ""])
    assert block.status == [
        STATUS_TOO_SHORT,
        STATUS_ONLY_AMBIGUOUS,
        STATUS_NO_STOP_FREE,
        STATUS_OK,
        STATUS_TOO_SHORT,
    ]


def test_reverse_frames_use_the_reverse_complement():
    # ATG GCC → forward "MA"; reverse complement GGCCAT → "GH".
    block = select_frames(["ATGGCC"])
    frames = dict(zip([FRAME_SUFFIXES[f] for f in block.frame], block.protein, strict=True))
    assert frames["F1"] == "MA"
    assert frames["R1"] == "GH"
    assert np.all(block.chunk == 0)


def test_dropped_codons_shorten_the_nucleotide_slice():
    # F1 reads ATG NNN GCC: the NNN codon is dropped, protein "MA", and the paired
    # slice is s[0:3·2+1] = "ATGNNNG" — the original's quirk, kept.
    block = select_frames(["ATGNNNGCC"])
    f1 = list(block.frame).index(0)
    assert block.protein[f1] == "MA"
    assert block.nucleotide[f1] == "ATGNNNG"
    assert block.ambiguous_codons_dropped[0] >= 1
