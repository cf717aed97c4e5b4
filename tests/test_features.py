"""Feature join by frame id."""

from __future__ import annotations

import numpy as np
import pytest

from virnucpro.errors import FeatureError
from virnucpro.models.features import join_features


def test_rows_are_matched_by_id_not_position():
    dnabert_ids = ["a_chunk_1F1", "a_chunk_1R2", "b_chunk_1F3"]
    dnabert = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], dtype=np.float32)
    esm_ids = ["b_chunk_1F3", "a_chunk_1F1", "a_chunk_1R2"]
    esm = np.array([[30.0, 30.0, 30.0], [10.0, 10.0, 10.0], [20.0, 20.0, 20.0]])
    joined = join_features(dnabert_ids, dnabert, esm_ids, esm)
    assert joined.frame_ids == dnabert_ids
    assert joined.matrix.dtype == np.float32 and joined.matrix.shape == (3, 5)
    np.testing.assert_array_equal(joined.matrix[:, 2], [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(joined.matrix[:, 0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("dnabert_ids", "esm_ids", "message"),
    [
        (["x", "y"], ["x", "z"], "no ESM-2 embedding: y"),
        (["x", "y"], ["y", "x", "w"], "no DNABERT-S embedding: w"),
        (["x", "x"], ["x", "y"], "DNABERT-S embeddings: frame x appears twice"),
        (["x", "y"], ["y", "y"], "ESM-2 embeddings: frame y appears twice"),
    ],
)
def test_missing_or_duplicate_frames_are_named(dnabert_ids, esm_ids, message):
    with pytest.raises(FeatureError, match=message):
        join_features(
            dnabert_ids, np.zeros((len(dnabert_ids), 2)), esm_ids, np.zeros((len(esm_ids), 3))
        )


def test_shape_must_match_ids():
    with pytest.raises(FeatureError, match=r"2 frame ids but a matrix of shape \(3, 2\)"):
        join_features(["a", "b"], np.zeros((3, 2)), ["a", "b"], np.zeros((2, 2)))
