"""One group on the demo models: scored, stored with its summary, reused only when the
stored result is complete and keyed for this run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from virnucpro.demo_models.random_models import write_demo_models
from virnucpro.models.classifier import load_classifier, predict_proba
from virnucpro.models.dnabert import load_dnabert
from virnucpro.models.esm_embedder import EsmEmbedder
from virnucpro.run.config import ModelConfig
from virnucpro.run.group_inference import read_scores, result_path, run_group
from virnucpro.run.planning import Frames, plan_groups

# 24 frames make 8 groups (MIN_GROUPS) of 3.
PROTEINS = [p[: 5 + 7 * i] for i, p in enumerate(["MKVACDEFGHIKLMNPQRSTVWY" * 8] * 24)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> ModelConfig:
    written = write_demo_models(tmp_path_factory.mktemp("models"))
    return ModelConfig(
        classifier=written.classifier,
        esm_model=str(written.esm),
        dnabert_model=str(written.dnabert),
        trust_remote_code=True,
        precision="fp32",
        device="cpu",
    )


@pytest.fixture
def group(tmp_path):
    frames = Frames(
        [f"r{i}_chunk_1F1" for i in range(len(PROTEINS))],
        ["ACG" * len(p) + "A" for p in PROTEINS],
        PROTEINS,
    )
    return plan_groups(frames, 10**9, tmp_path / "groups")[0]


def test_scores_are_the_engines_output_classified_by_frame_id(models, group, tmp_path):
    summary = run_group(group, tmp_path / "results", models, "fp-a")
    assert not summary.skipped and summary.frames == 3
    # The same computation by hand, from the three models loaded independently.
    frames = pq.read_table(group.path)
    dnabert = load_dnabert(models.dnabert_model, max_tokens=4096, trust_remote_code=True)
    esm = EsmEmbedder(models.esm_model, device="cpu", precision="fp32", compile=False)
    classifier = load_classifier(models.classifier, dnabert_dim=dnabert.dim, esm_dim=esm.dim)
    features = np.concatenate(
        [
            dnabert.embed(frames.column("nucleotide").to_pylist()),
            esm.embed(frames.column("protein").to_pylist()),
        ],
        axis=1,
    )
    expected = predict_proba(classifier, features)
    scores = read_scores(tmp_path / "results", [group])
    got = np.stack([scores[f] for f in frames.column("frame_id").to_pylist()])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_complete_result_is_reused_with_its_stored_summary(models, group, tmp_path):
    first = run_group(group, tmp_path / "results", models, "fp-a", worker="w1")
    again = run_group(group, tmp_path / "results", models, "fp-a", worker="w2")
    assert again == dataclasses.replace(first, skipped=True)
    assert again.worker == "w1" and again.esm.tokens == first.esm.tokens > 0


@pytest.mark.parametrize("damage", ["other fingerprint", "garbage", "other frames"])
def test_an_unusable_result_is_computed_again(models, group, tmp_path, damage):
    results = tmp_path / "results"
    first = run_group(group, results, models, "fp-a")
    path = result_path(results, group)
    fingerprint = "fp-a"
    if damage == "other fingerprint":
        fingerprint = "fp-b"
    elif damage == "garbage":
        path.write_bytes(b"PAR1 not really")
    else:
        table = pq.read_table(path)
        pq.write_table(table.slice(1), path)
    again = run_group(group, results, models, fingerprint)
    assert not again.skipped and again.started_at > first.started_at
    assert pq.read_table(path).num_rows == group.frames
