"""Tokenising, packing, pooling, precision and OOM handling of the ESM-2 embedder."""

import logging
import re

import esm
import numpy as np
import pytest
import torch
from helpers import cosine_rows, memory_from_steps

from virnucpro.demo_models.random_models import random_esm2, write_demo_esm_checkpoint
from virnucpro.errors import InputError
from virnucpro.models import esm_model
from virnucpro.models.budget import BudgetSearch, probe_token_budget
from virnucpro.models.esm_embedder import (
    ESM_BUDGET,
    RESIDUE_LOOKUP,
    EsmEmbedder,
    encode_proteins,
    pack_batch,
    probe_proteins,
)
from virnucpro.models.esm_model import CLS_IDX, EOS_IDX, PAD_IDX, EsmConfig

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
LETTERS = "LAGVSERTIDPKQNFYMHWCXBUZO"


def proteins(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(LETTERS), n)) for n in lengths]


@pytest.fixture(scope="module")
def small_model():
    return random_esm2(EsmConfig(2, 64, 4), seed=7)


def fp32_embedder(model, **options):
    return EsmEmbedder(model, device="cpu", precision="fp32", **options)


# --- tokeniser -------------------------------------------------------------------------


def tokens_of(sequence):
    return encode_proteins([sequence]).residues.tolist()


@pytest.mark.parametrize("letter", [*LETTERS, "-", "."])
def test_lookup_table_agrees_with_fair_esm_alphabet(letter):
    assert RESIDUE_LOOKUP[ord(letter)] == ALPHABET.encode(letter)[0]
    assert tokens_of(letter * 3) == ALPHABET.encode(letter * 3)


def test_whole_sequences_encode_as_fair_esm_encodes_them():
    sequences = [*proteins([1, 50, 166], seed=1), "MKV-LA.X"]
    encoded = encode_proteins(sequences)
    for i, sequence in enumerate(sequences):
        part = encoded.residues[encoded.offsets[i] : encoded.offsets[i + 1]]
        assert part.tolist() == ALPHABET.encode(sequence)


def test_lowercase_is_uppercased():
    assert tokens_of("mkvla") == ALPHABET.encode("MKVLA")


def test_trailing_stops_removed_internal_stop_and_j_become_x():
    assert tokens_of("MKV**") == ALPHABET.encode("MKV")
    assert tokens_of("MK*V") == ALPHABET.encode("MKXV")
    assert tokens_of("MJj") == ALPHABET.encode("MXX")


@pytest.mark.parametrize(
    ("bad", "char", "position"),
    [("MK7V", "7", 3), ("MK V", " ", 3), ("MKV\n", "\n", 4), ("MKé", "é", 3), ("M#", "#", 2)],
)
def test_non_letters_raise_input_error_naming_sequence_and_position(bad, char, position):
    expected = rf"protein sequence 1: character {re.escape(repr(char))} at position {position}\b"
    with pytest.raises(InputError, match=expected):
        encode_proteins(["MKV", bad, "LLL"])


def test_empty_sequence_is_refused():
    with pytest.raises(InputError, match="protein sequence 2 is empty"):
        encode_proteins(["MKV", "L", "**"])


def test_long_sequences_are_truncated_to_1022_residues():
    encoded = encode_proteins(["M" * 1500, "A" * 1022, "K" * 5])
    assert encoded.lengths.tolist() == [1022, 1022, 5]
    assert encoded.truncated == 1


# --- packing ---------------------------------------------------------------------------


def test_packed_layout_restarts_positions_and_pools_residues_only():
    encoded = encode_proteins(["MK", "LAG", "V"])
    batch = pack_batch(encoded, np.array([1, 0]), pad_tokens_to=1)
    m, k, leu, a, g = (ALPHABET.get_idx(c) for c in "MKLAG")
    assert batch.tokens.tolist() == [CLS_IDX, leu, a, g, EOS_IDX, CLS_IDX, m, k, EOS_IDX]
    assert batch.positions.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert batch.cu_seqlens.tolist() == [0, 5, 9]
    assert batch.segments.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_allclose(batch.weights, [0, 1 / 3, 1 / 3, 1 / 3, 0, 0, 0.5, 0.5, 0])
    assert batch.max_len == 5 and batch.count == 2 and batch.real_tokens == 9


def test_static_shape_padding_adds_one_dummy_segment():
    encoded = encode_proteins(["MK", "LAG"])
    batch = pack_batch(encoded, np.array([0, 1]), pad_tokens_to=16)
    assert len(batch.tokens) == 16 and batch.real_tokens == 9
    assert batch.cu_seqlens.tolist() == [0, 4, 9, 16]
    assert (batch.tokens[9:] == PAD_IDX).all() and (batch.weights[9:] == 0).all()
    assert (batch.segments[9:] == 2).all()
    assert batch.max_len == 128  # bucketed so compile sees few distinct values


# --- embedder --------------------------------------------------------------------------


def test_rows_follow_input_order_with_duplicates(small_model):
    a, b = proteins([40, 120], seed=2)
    embedder = fp32_embedder(small_model, max_tokens=130)
    out = embedder.embed([a, b, a, a, b])
    assert out.shape == (5, 64) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)
    np.testing.assert_allclose(out[0], out[3], atol=1e-6)
    np.testing.assert_allclose(out[1], out[4], atol=1e-6)
    assert np.abs(out[0] - out[1]).max() > 1e-2


def test_stats_count_tokens_steps_and_truncation(small_model, caplog):
    sequences = [*proteins([10, 20, 30]), "M" * 1100]
    embedder = fp32_embedder(small_model, max_tokens=64)
    with caplog.at_level(logging.WARNING, logger="virnucpro.models.esm_embedder"):
        embedder.embed(sequences)
    stats = embedder.last_stats
    assert stats.sequences == 4
    assert stats.tokens == 12 + 22 + 32 + 1024
    assert stats.truncated == 1 and stats.oom_splits == 0 and stats.padding_tokens == 0
    assert stats.steps == 3  # [1100], [30, 20], [10]
    assert "1 protein sequence(s) longer than 1022 residues were truncated" in caplog.text


def test_truncated_sequence_embeds_as_its_first_1022_residues(small_model):
    (long,) = proteins([1100], seed=3)
    embedder = fp32_embedder(small_model)
    out = embedder.embed([long, long[:1022]])
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_empty_call_returns_empty_matrix(small_model):
    assert fp32_embedder(small_model).embed([]).shape == (0, 64)


def test_checkpoint_path_is_accepted(tmp_path):
    path = write_demo_esm_checkpoint(tmp_path / "esm.pt", 2, 64, 4, seed=7)
    from_file = EsmEmbedder(path, device="cpu").embed(["MKVLA"])
    from_model = fp32_embedder(random_esm2(EsmConfig(2, 64, 4), seed=7)).embed(["MKVLA"])
    np.testing.assert_array_equal(from_file, from_model)


def test_cpu_defaults_are_fp32_eager_unpadded(small_model):
    embedder = EsmEmbedder(small_model, device="cpu")
    assert embedder.dtype == torch.float32
    assert not embedder.compile and embedder.pad_tokens_to == 1 and embedder.max_tokens == 4096
    assert embedder.budget.trials == ()  # auto on the CPU: the default, no probe


def test_a_given_budget_is_kept_as_given(small_model):
    embedder = fp32_embedder(small_model, max_tokens=777)
    assert embedder.max_tokens == 777 and embedder.budget is None


def test_bf16_on_cpu_is_close_to_fp32():
    sequences = proteins([5, 60, 99, 99, 166, 166, 300], seed=4)
    fp32 = fp32_embedder(random_esm2(EsmConfig(6, 320, 20), seed=4)).embed(sequences)
    embedder = EsmEmbedder(random_esm2(EsmConfig(6, 320, 20), seed=4), "cpu", precision="bf16")
    bf16 = embedder.embed(sequences)
    assert next(embedder.model.parameters()).dtype == torch.bfloat16
    assert bf16.dtype == np.float32
    assert cosine_rows(bf16, fp32).min() >= 0.99
    assert np.abs(bf16 - fp32).max() > 0  # really ran in lower precision


def test_out_of_memory_splits_batches_and_keeps_every_row(small_model, monkeypatch):
    sequences = proteins([12, 40, 99, 99, 166, 7, 60, 80, 120, 3, 150], seed=5)
    embedder = fp32_embedder(small_model, max_tokens=2000)
    want = embedder.embed(sequences)
    assert embedder.last_stats.steps == 1

    real_attention = esm_model.attention
    largest_seen = []

    def attention_failing_above_three(q, k, v, cu_seqlens, max_len):
        sequences_in_step = len(cu_seqlens) - 1
        if sequences_in_step > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        largest_seen.append(sequences_in_step)
        return real_attention(q, k, v, cu_seqlens, max_len)

    monkeypatch.setattr(esm_model, "attention", attention_failing_above_three)
    got = embedder.embed(sequences)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    stats = embedder.last_stats
    assert stats.oom_splits == 3  # 11 → 5 + 6 → 2 + 3 + 3 + 3
    assert stats.steps == 4 and stats.tokens == sum(len(s) + 2 for s in sequences)
    assert max(largest_seen) == 3


def test_single_sequence_that_runs_out_of_memory_is_reraised(small_model, monkeypatch):
    def always_oom(*args):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(esm_model, "attention", always_oom)
    with pytest.raises(torch.OutOfMemoryError):
        fp32_embedder(small_model).embed(["MKV", "LLA"])


# --- auto budget ---------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [3, 5, 1024, 1510, 1512, 4097])
def test_probe_proteins_fill_a_step_exactly(tokens):
    proteins_ = probe_proteins(tokens)
    assert sum(len(p) + 2 for p in proteins_) == tokens
    assert all(1 <= len(p) <= 502 for p in proteins_)
    assert len(encode_proteins(proteins_).residues) == tokens - 2 * len(proteins_)


def test_probe_proteins_have_frame_to_domain_lengths():
    # One full cycle of 500, 400, 300, 200, 100 residues (+2 each) is 1,510 tokens.
    assert [len(p) for p in probe_proteins(2 * 1510)] == [500, 400, 300, 200, 100] * 2


def test_probe_runs_real_steps_against_a_fake_memory(small_model):
    """The engine's probe step under the shared probe, memory faked from the tokens the
    model really received: 1 byte a token on a 5,000-byte device (limit 4,500)."""
    embedder = fp32_embedder(small_model, max_tokens=64)
    seen = []

    def forward(tokens, positions, cu_seqlens, max_len):
        seen.append(len(tokens))
        return small_model(tokens, positions, cu_seqlens, max_len)

    embedder._forward = forward
    search = BudgetSearch("ESM-2", 4096, start=1024, floor=256, cap=16384)
    read_memory = memory_from_steps(seen, 5000)
    choice = probe_token_budget(embedder.probe_step, read_memory, search)
    assert seen == [1024, 2048, 4096, 8192]
    assert choice.tokens == 4096
    assert embedder.last_stats.steps == 0  # probe steps are not counted as work


@pytest.mark.gpu
@needs_cuda
def test_gpu_auto_budget_is_probed_and_real_steps_stay_under_the_limit():
    embedder = EsmEmbedder(random_esm2(EsmConfig(6, 320, 20), seed=8), "cuda", "bf16")
    choice = embedder.budget
    assert choice.trials and choice.fits and embedder.max_tokens == choice.tokens
    # A small model on any GPU reaches the cap; a 3B one would stop below it.
    assert embedder.max_tokens == ESM_BUDGET.cap
    torch.cuda.reset_peak_memory_stats()
    sequences = proteins([99, 166] * 1500, seed=8)  # frames of 300/500-nt chunks
    embedder.embed(sequences)
    _, total = torch.cuda.mem_get_info()
    assert torch.cuda.max_memory_reserved() <= 0.9 * total


# --- compile ---------------------------------------------------------------------------


def test_failed_compile_falls_back_to_eager_once(small_model, monkeypatch, caplog):
    sequences = proteins([12, 40, 99, 166, 7, 60], seed=6)
    want = fp32_embedder(small_model).embed(sequences)
    attempts = []

    def broken_compile(model, **options):
        def compiled(*inputs):
            attempts.append(len(inputs))
            raise RuntimeError("backend compiler failed (injected)")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    embedder = fp32_embedder(small_model, compile=True, max_tokens=300)
    with caplog.at_level(logging.WARNING, logger="virnucpro.models.esm_embedder"):
        got = embedder.embed(sequences)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    assert embedder.last_stats.steps > 1 and len(attempts) == 1  # later steps run eager
    assert not embedder.compile
    assert [r.message for r in caplog.records] == [
        "torch.compile failed, ESM-2 continues uncompiled: backend compiler failed (injected)"
    ]


def test_out_of_memory_in_the_compiled_model_splits_instead_of_falling_back(
    small_model, monkeypatch
):
    sequences = proteins([12, 40, 99, 166, 7, 60], seed=6)
    want = fp32_embedder(small_model).embed(sequences)

    def compile_short_of_memory(model, **options):
        def compiled(tokens, positions, cu_seqlens, max_len):
            if len(cu_seqlens) - 1 > 2:  # sequences (and the padding segment) in the step
                raise torch.OutOfMemoryError("CUDA out of memory (injected)")
            return model(tokens, positions, cu_seqlens, max_len)

        return compiled

    monkeypatch.setattr(torch, "compile", compile_short_of_memory)
    embedder = fp32_embedder(small_model, compile=True)
    got = embedder.embed(sequences)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=0)
    assert embedder.compile and embedder.last_stats.oom_splits > 0
