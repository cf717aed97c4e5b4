"""DNABERT-S embedder on our stand-in of DNABERT-S's remote code (both code variants),
loaded through the real path: a snapshot directory, `auto_map`, `trust_remote_code`."""

from __future__ import annotations

import dataclasses
import random
import sys
import types

import numpy as np
import pytest
import torch
from helpers import cosine_rows, memory_from_steps
from transformers import AutoModel, AutoTokenizer

from virnucpro.demo_models.dnabert_snapshot import write_dnabert_snapshot
from virnucpro.errors import CheckpointError
from virnucpro.models import dnabert
from virnucpro.models.budget import BudgetSearch, probe_token_budget
from virnucpro.models.dnabert import (
    DNABERT_BUDGET,
    PROBE_NUCLEOTIDES,
    force_pytorch_attention,
    load_dnabert,
)

VARIANTS = ("dnabert-s", "dnabert-2")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module", params=VARIANTS)
def model_dir(request, tmp_path_factory):
    return write_dnabert_snapshot(tmp_path_factory.mktemp(request.param), variant=request.param)


def load(model_dir, precision="fp32", max_tokens=300):
    # A small budget so the test sequences span several padded batches.
    return load_dnabert(
        model_dir, max_tokens=max_tokens, trust_remote_code=True, precision=precision
    )


@pytest.fixture(scope="module")
def embedder(model_dir):
    return load(model_dir)


def dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


@pytest.fixture(scope="module")
def sequences():
    rng = random.Random(7)
    lengths = [1, 3, 4, 40, 298, 299, 499, 500] + [rng.randint(2, 520) for _ in range(22)]
    return [dna(rng, n) for n in lengths]


@pytest.fixture(scope="module")
def original(model_dir, sequences):
    """The original tool's way, with transformers alone: tokenizer(seq) → model(input_ids)
    → mean of the last hidden state over all tokens, one sequence at a time, FP32."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    with dnabert._remote_code_compat():  # transformers 5 cannot build it on meta
        model = AutoModel.from_pretrained(model_dir, trust_remote_code=True, **_config(model_dir))
    model.eval()
    rows = []
    for seq in sequences:
        input_ids = tokenizer(seq, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            rows.append(torch.mean(model(input_ids)[0][0], dim=0).numpy())
    return np.stack(rows)


def _config(model_dir) -> dict:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    if not hasattr(config, "pad_token_id"):  # DNABERT-2's current config class
        config.pad_token_id = None
    return {"config": config}


def test_fp32_batched_equals_the_original_in_any_order(embedder, sequences, original):
    for seed in (0, 1):
        order = list(range(len(sequences)))
        random.Random(seed).shuffle(order)
        batched = embedder.embed([sequences[i] for i in order])
        assert batched.dtype == np.float32
        assert batched.shape == (len(sequences), embedder.dim)
        assert cosine_rows(batched, original[order]).min() >= 0.99999


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_batched_is_close_to_the_original(model_dir, sequences, original, precision):
    low = load(model_dir, precision)
    assert low.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert next(low.model.parameters()).dtype == low.dtype
    rows = low.embed(sequences)
    assert rows.dtype == np.float32
    cosine = cosine_rows(rows, original)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.99


def test_low_precision_needs_the_autocast(model_dir, sequences):
    """The remote code's float32 mask and ALiBi bias meet BF16 weights: without the
    embedder's autocast the forward fails as the real DNABERT-S does."""
    low = load(model_dir, "bf16")
    ids = low.tokenize(sequences[:2])
    longest = max(map(len, ids))
    input_ids = torch.tensor([t + [low.tokenizer.pad_token_id] * (longest - len(t)) for t in ids])
    mask = (input_ids != low.tokenizer.pad_token_id).long()
    with pytest.raises(RuntimeError, match=r"dtype|scalar type"), torch.no_grad():
        low.model(input_ids=input_ids, attention_mask=mask)


def test_batches_longer_than_512_tokens_regrow_alibi(embedder):
    long_ = dna(random.Random(3), 2600)
    assert len(embedder.tokenize([long_])[0]) > 512
    with pytest.warns(UserWarning, match="Increasing alibi size"):
        rows = embedder.embed([long_, "ACGT"])
    assert np.isfinite(rows).all()


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


def test_remote_code_needs_explicit_permission(model_dir):
    with pytest.raises(CheckpointError, match="trust_remote_code=True"):
        load_dnabert(model_dir, max_tokens=300)


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


# --- auto budget ---------------------------------------------------------------------


def test_auto_on_the_cpu_is_the_default_without_a_probe(model_dir):
    embedder = load_dnabert(model_dir, trust_remote_code=True, device="cpu")
    assert embedder.max_tokens == 32768 and embedder.budget.trials == ()
    assert load(model_dir).budget is None  # a given budget is kept as given


def test_probe_step_fills_a_padded_step_with_frame_wide_rows(embedder, monkeypatch):
    real = embedder.embed_batch
    steps = []

    def spy(token_ids):
        steps.append(token_ids)
        return real(token_ids)

    monkeypatch.setattr(embedder, "embed_batch", spy)
    embedder.probe_step(4096)
    [rows] = steps
    frame = dna(random.Random(11), PROBE_NUCLEOTIDES)
    widest = max(map(len, rows))
    assert abs(widest - len(embedder.tokenize([frame])[0])) <= 0.1 * widest
    assert len(rows) == 4096 // widest  # as many rows as the padded budget holds
    assert len({tuple(r) for r in rows}) > 1  # not one row repeated: some padding


def test_probe_runs_real_steps_against_a_fake_memory(embedder, monkeypatch):
    """The engine's probe step under the shared probe, memory faked from the padded
    tokens the model really received: 1 byte a token on a 10,000-byte device."""
    real = embedder.embed_batch
    padded = []

    def spy(token_ids):
        padded.append(len(token_ids) * max(map(len, token_ids)))
        return real(token_ids)

    monkeypatch.setattr(embedder, "embed_batch", spy)
    search = BudgetSearch("DNABERT-S", 32768, start=1024, floor=512, cap=32768)
    read_memory = memory_from_steps(padded, 10_000)
    choice = probe_token_budget(embedder.probe_step, read_memory, search)
    assert len(padded) == 5  # 1,024 … 16,384; 16,384 padded tokens pass 9,000
    assert all(p <= t for p, t in zip(padded, (1024, 2048, 4096, 8192, 16384), strict=True))
    assert choice.tokens == 8192


@pytest.mark.gpu
@needs_cuda
def test_gpu_auto_budget_is_probed_and_real_steps_stay_under_the_limit(model_dir, sequences):
    embedder = load_dnabert(model_dir, trust_remote_code=True, device="cuda", precision="bf16")
    choice = embedder.budget
    assert choice.trials and choice.fits and embedder.max_tokens == choice.tokens
    assert embedder.max_tokens == DNABERT_BUDGET.cap  # a small model on any GPU
    torch.cuda.reset_peak_memory_stats()
    rows = embedder.embed(sequences * 200)
    assert np.isfinite(rows).all()
    _, total = torch.cuda.mem_get_info()
    assert torch.cuda.max_memory_reserved() <= 0.9 * total
