"""DNABERT-S embedder on a small random-init BERT loaded through the real code path."""

from __future__ import annotations

import dataclasses
import random
import sys
import types

import numpy as np
import pytest
import torch
from helpers import copy_with_remote_code

from virnucpro.demo_models.random_models import write_demo_dnabert
from virnucpro.errors import CheckpointError, InputError
from virnucpro.models import dnabert
from virnucpro.models.dnabert import DnabertConfig, force_pytorch_attention, load_dnabert


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_demo_dnabert(tmp_path_factory.mktemp("dnabert"))


@pytest.fixture(scope="module")
def embedder(model_dir):
    # A small budget so the 30 test sequences span several padded batches.
    return load_dnabert(DnabertConfig(model=str(model_dir), max_tokens=300))


def dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


@pytest.fixture(scope="module")
def sequences():
    rng = random.Random(7)
    lengths = [1, 3, 4, 40, 298, 299, 499, 500] + [rng.randint(2, 520) for _ in range(22)]
    return [dna(rng, n) for n in lengths]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def one_at_a_time(embedder, sequences):
    """The original's way: tokenizer(seq) → model → mean over all tokens."""
    rows = []
    for seq in sequences:
        ids = torch.tensor([embedder.tokenize([seq])[0]])
        with torch.no_grad():
            hidden = embedder.model(input_ids=ids)[0]
        rows.append(hidden[0].float().mean(dim=0).numpy())
    return np.stack(rows)


def test_batched_equals_one_at_a_time_in_any_order(embedder, sequences):
    reference = one_at_a_time(embedder, sequences)
    for seed in (0, 1):
        order = list(range(len(sequences)))
        random.Random(seed).shuffle(order)
        batched = embedder.embed([sequences[i] for i in order])
        assert batched.dtype == np.float32
        assert batched.shape == (len(sequences), embedder.dim)
        assert cosine_rows(batched, reference[order]).min() >= 0.99999


def test_mean_includes_special_tokens_and_excludes_padding(embedder):
    short, long_ = "ACGTAC", "ACGT" * 60
    ids = embedder.tokenize([short])[0]
    tokenizer = embedder.tokenizer
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    with torch.no_grad():
        hidden = embedder.model(input_ids=torch.tensor([ids]))[0][0]
    with_special = hidden.mean(dim=0).numpy()
    without_special = hidden[1:-1].mean(dim=0).numpy()
    # Batched next to a much longer sequence, so the short one is mostly padding.
    row = embedder.embed_batch([ids, embedder.tokenize([long_])[0]])[0]
    np.testing.assert_allclose(row, with_special, rtol=1e-4, atol=1e-5)
    assert not np.allclose(row, without_special, rtol=1e-3, atol=1e-4)


def test_bf16_runs_on_cpu_close_to_fp32(model_dir, embedder, sequences):
    bf16 = load_dnabert(DnabertConfig(model=str(model_dir), precision="bf16", max_tokens=300))
    assert bf16.dtype == torch.bfloat16
    rows = bf16.embed(sequences[:10])
    assert rows.dtype == np.float32
    assert cosine_rows(rows, embedder.embed(sequences[:10])).min() >= 0.99


def test_oom_split_returns_identical_rows(embedder, sequences, monkeypatch):
    expected = embedder.embed(sequences)
    real = embedder.embed_batch
    calls = []

    def fail_on_big_batches(token_ids):
        calls.append(len(token_ids))
        if len(token_ids) > 1:
            raise torch.OutOfMemoryError("simulated")
        return real(token_ids)

    split = dataclasses.replace(embedder, max_tokens=10_000, oom_splits=0)
    monkeypatch.setattr(split, "embed_batch", fail_on_big_batches)
    rows = split.embed(sequences)
    assert split.oom_splits > 0 and max(calls) > 1
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)


def test_sequence_longer_than_position_table_is_an_error(embedder):
    assert embedder.max_positions == 512
    limited = dataclasses.replace(embedder, max_positions=8)
    with pytest.raises(InputError, match=r"frame_x tokenises to \d+ tokens.*only 8 positions"):
        limited.embed(["ACG", "ACGT" * 30], ids=["frame_a", "frame_x"])


def test_remote_code_needs_explicit_permission(model_dir, tmp_path):
    remote = copy_with_remote_code(model_dir, tmp_path / "remote")
    with pytest.raises(CheckpointError, match="trust_remote_code=True"):
        load_dnabert(DnabertConfig(model=str(remote)))


def test_force_pytorch_attention_clears_the_triton_kernel(monkeypatch):
    remote = types.ModuleType("fake_bert_layers")
    remote.flash_attn_qkvpacked_func = object()
    monkeypatch.setitem(sys.modules, remote.__name__, remote)
    layer_class = type("BertUnpadSelfAttention", (torch.nn.Module,), {})
    layer_class.__module__ = remote.__name__
    model = torch.nn.Sequential(layer_class(), torch.nn.Linear(2, 2))
    assert force_pytorch_attention(model) == [remote.__name__]
    assert remote.flash_attn_qkvpacked_func is None
    assert force_pytorch_attention(model) == []


def test_remote_code_compat_skips_only_the_triton_import_check(tmp_path):
    from transformers import dynamic_module_utils

    source = tmp_path / "flash_attn_triton.py"
    source.write_text("import torch\nimport triton\nimport triton.language as tl\n")
    with dnabert._remote_code_compat():
        assert dynamic_module_utils.get_imports(source) == ["torch"]
    assert "triton" in dynamic_module_utils.get_imports(source)
