import numpy as np
import pytest
import torch

from virnucpro.models.batching import run_splitting_on_oom, token_budget_batches


def test_packed_batches_respect_budget_and_cover_every_index():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 400, size=500)
    batches = token_budget_batches(lengths, 1000)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    for b in batches:
        assert lengths[b].sum() <= 1000 or len(b) == 1


def test_padded_batches_cost_longest_times_count():
    lengths = [10, 9, 8, 7, 3]
    batches = token_budget_batches(lengths, 30, padded=True)
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4]]


def test_oversized_sequence_gets_its_own_batch():
    batches = token_budget_batches([5000, 10, 10], 100)
    assert [b.tolist() for b in batches] == [[0], [1, 2]]


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches([1], 0)


def test_oom_split_retries_halves_until_they_fit_and_keeps_order():
    splits = []

    def run(idx):
        if len(idx) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return idx.sum()

    pieces = run_splitting_on_oom(np.arange(7), run, on_split=splits.append)
    assert np.concatenate([p for p, _ in pieces]).tolist() == list(range(7))
    assert [int(r) for _, r in pieces] == [int(p.sum()) for p, _ in pieces]
    assert splits == [7, 3, 4]


def test_oom_on_single_sequence_is_raised():
    def run(idx):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        run_splitting_on_oom(np.arange(4), run)


def test_other_errors_are_not_retried():
    calls = []

    def run(idx):
        calls.append(len(idx))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_splitting_on_oom(np.arange(4), run)
    assert calls == [4]
