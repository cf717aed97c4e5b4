"""Assembly: scores of groups (which mix inputs) back to each input's files, in the
order preparation wrote the frames, and no frame left without a score."""

from __future__ import annotations

import numpy as np
import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser

from virnucpro.errors import FeatureError
from virnucpro.reads.preparation import prepare_reads
from virnucpro.run.assembly import assemble_outputs


@pytest.fixture
def prepared(reference_dir, tmp_path):
    return [
        prepare_reads(reference_dir / name, 500, tmp_path / name.removesuffix(".fa"))
        for name in ("test_with_orfs.fa", "reads_public.fa")
    ]


def frame_ids(files) -> list[str]:
    with open(files.protein) as handle:
        return [frame_id for frame_id, _ in SimpleFastaParser(handle)]


def test_each_input_gets_its_frames_in_preparation_order(prepared):
    ids = [frame_ids(files) for files in prepared]
    everything = [f for group in ids for f in group]
    rng = np.random.default_rng(3)
    scores = {f: rng.dirichlet((1, 1)).astype(np.float32) for f in everything}
    shuffled = dict(sorted(scores.items(), key=lambda _: rng.random()))  # as groups mix
    results = assemble_outputs(prepared, shuffled)
    for files, result, expected in zip(prepared, results, ids, strict=True):
        assert result.frames_scored == len(expected) > 0
        lines = result.outputs.predictions.text.read_text().splitlines()[1:]
        assert [line.split("\t")[0] for line in lines] == expected
        assert result.outputs.predictions.text.parent == files.protein.parent
        for line in lines:
            frame, _, score1, score2 = line.split("\t")
            assert (score1, score2) == tuple(map(str, scores[frame]))


def test_a_frame_without_a_score_is_an_error_naming_the_file(prepared):
    ids = frame_ids(prepared[0])
    scores = {f: np.array([0.5, 0.5], np.float32) for f in ids[1:]}
    with pytest.raises(FeatureError, match=rf"{prepared[0].protein}: 1 frame\(s\) .* {ids[0]}"):
        assemble_outputs(prepared[:1], scores)
