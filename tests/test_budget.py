"""The `auto` token-budget probe, driven by a fake GPU, and memory-pressure intervals."""

from __future__ import annotations

import logging

import pytest
import torch

from virnucpro.models.budget import (
    BudgetSearch,
    Trial,
    choose_token_budget,
    cuda_memory_reader,
    probe_token_budget,
)
from virnucpro.monitoring.memory_pressure import PressureInterval, memory_pressure

SEARCH = BudgetSearch("test", cpu_default=4096, start=16384, floor=1024, cap=262144)


class FakeGpu:
    """A device of `total` bytes where a step of t tokens peaks at `weights + per_token × t`
    and runs out of memory when that passes `total`. `read` reports the peak since its
    previous call, as the CUDA reader does; the first window holds a stale full-memory
    peak (as from loading), which the probe must not charge to its first step."""

    def __init__(self, total: int, weights: int, per_token: int) -> None:
        self.total, self.weights, self.per_token = total, weights, per_token
        self.window_peak = total
        self.steps: list[int] = []

    def run_step(self, tokens: int) -> None:
        self.steps.append(tokens)
        peak = self.weights + self.per_token * tokens
        if peak > self.total:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        self.window_peak = max(self.window_peak, peak)

    def read(self) -> tuple[int, int]:
        peak, self.window_peak = self.window_peak, self.weights
        return peak, self.total


def probe(gpu: FakeGpu, search: BudgetSearch = SEARCH):
    return probe_token_budget(gpu.run_step, gpu.read, search)


def test_grows_until_a_step_would_pass_ninety_percent():
    # 90% of 150,000 = 135,000 = 10,000 + t: t ≤ 125,000, so 65,536 fits and 131,072
    # (141,072 bytes: 94%, still under the total) does not.
    gpu = FakeGpu(total=150_000, weights=10_000, per_token=1)
    choice = probe(gpu)
    assert choice.tokens == 65536 and choice.fits
    assert gpu.steps == [16384, 32768, 65536, 131072]
    assert choice.trials[-1] == Trial(131072, 141_072, 150_000)
    assert "65,536 tokens per step" in choice.describe()
    assert "131,072 peaked at 94%" in choice.describe()


def test_a_step_that_runs_out_of_memory_ends_the_growth():
    gpu = FakeGpu(total=100_000, weights=10_000, per_token=1)  # 131,072 tokens: OOM
    choice = probe(gpu)
    assert choice.tokens == 65536
    assert choice.trials[-1] == Trial(131072, None, 100_000)
    assert "131,072 ran out of memory" in choice.describe()


def test_growth_stops_at_the_cap():
    gpu = FakeGpu(total=10**12, weights=10_000, per_token=1)
    choice = probe(gpu, BudgetSearch("test", 4096, start=16384, floor=1024, cap=50_000))
    assert gpu.steps == [16384, 32768, 50_000]  # the last doubling is cut to the cap
    assert choice.tokens == 50_000 and "the probe's cap" in choice.describe()


def test_a_start_over_the_limit_halves_until_a_step_fits():
    # 90% of 150,000 = 135,000 = 10,000 + 8t: t ≤ 15,625. The start (16,384) peaks at
    # 141,072 (94%) without running out; 8,192 peaks at 75,536. Were the peak not reset
    # between steps, 8,192 would be charged the start's peak and rejected.
    gpu = FakeGpu(total=150_000, weights=10_000, per_token=8)
    choice = probe(gpu)
    assert gpu.steps == [16384, 8192]
    assert choice.tokens == 8192 and choice.fits


def test_when_nothing_fits_the_floor_is_returned_and_flagged():
    gpu = FakeGpu(total=100_000, weights=95_000, per_token=1)  # weights alone: 95%
    choice = probe(gpu)
    assert gpu.steps == [16384, 8192, 4096, 2048, 1024]
    assert choice.tokens == 1024 and not choice.fits
    assert "the floor" in choice.describe()


def test_errors_other_than_out_of_memory_propagate():
    def broken(tokens: int) -> None:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        probe_token_budget(broken, FakeGpu(100, 0, 0).read, SEARCH)


def test_search_bounds_must_be_ordered():
    with pytest.raises(ValueError, match="floor ≤ start ≤ cap"):
        BudgetSearch("test", 4096, start=1024, floor=2048, cap=4096)


def test_off_cuda_auto_is_the_cpu_default_without_a_probe():
    gpu = FakeGpu(total=150_000, weights=10_000, per_token=1)
    choice = choose_token_budget(SEARCH, torch.device("cpu"), gpu.run_step, gpu.read)
    assert choice.tokens == 4096 and choice.trials == () and gpu.steps == []
    assert choice.describe() == "4,096 tokens per step (the CPU default: no probe)"


def test_on_cuda_auto_probes_and_logs_the_choice(caplog):
    gpu = FakeGpu(total=150 * 2**30, weights=10 * 2**30, per_token=2**20)  # 1 MiB a token
    with caplog.at_level(logging.INFO, logger="virnucpro.models.budget"):
        choice = choose_token_budget(SEARCH, torch.device("cuda"), gpu.run_step, gpu.read)
    # 90% of 150 GiB = 135 GiB = 10 GiB + t MiB: t ≤ 128,000 tokens.
    assert choice.tokens == 65536
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith(
        "test token budget on cuda: 65,536 tokens per step (peak 74.0 of 150.0 GiB (49%); "
        "131,072 peaked at 92%); probed 4 step sizes in"
    )


def test_on_cuda_a_probe_where_nothing_fits_is_a_warning(caplog):
    gpu = FakeGpu(total=100_000, weights=95_000, per_token=1)
    with caplog.at_level(logging.INFO, logger="virnucpro.models.budget"):
        choice = choose_token_budget(SEARCH, torch.device("cuda"), gpu.run_step, gpu.read)
    assert choice.tokens == 1024
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_cuda_reader_counts_reserved_peak_plus_memory_outside_the_allocator(monkeypatch):
    """100 bytes, 30 free, 50 reserved by us: 20 held outside (other processes, CUDA
    context). Our reserved peak of 60 puts the device's peak at 80; then the window
    closes: cache emptied, peak reset."""
    calls = []
    fake = {
        "synchronize": lambda device: calls.append("synchronize"),
        "mem_get_info": lambda device: (30, 100),
        "memory_reserved": lambda device: 50,
        "max_memory_reserved": lambda device: 60,
        "empty_cache": lambda: calls.append("empty_cache"),
        "reset_peak_memory_stats": lambda device: calls.append("reset"),
    }
    for name, function in fake.items():
        monkeypatch.setattr(torch.cuda, name, function)
    assert cuda_memory_reader(torch.device("cuda"))() == (80, 100)
    assert calls == ["synchronize", "empty_cache", "reset"]


# --- memory pressure -------------------------------------------------------------------


def test_pressure_intervals_are_runs_of_readings_above_the_threshold():
    samples = [
        (0.0, 50, 100),
        (1.0, 95, 100),
        (2.0, 97, 100),
        (3.0, 90, 100),  # exactly 90%: not above
        (4.0, 91, 100),
        (5.0, 60, 100),
        (6.0, 99, 100),
    ]
    assert memory_pressure(samples) == [
        PressureInterval(1.0, 2.0, 0.97),
        PressureInterval(4.0, 4.0, 0.91),
        PressureInterval(6.0, 6.0, 0.99),  # still above at the last reading
    ]


def test_pressure_sorts_readings_skips_unreadable_ones_and_takes_a_threshold():
    samples = [(3.0, 85, 100), (1.0, 81, 100), (2.0, 0, 0), (0.0, 10, 100)]
    assert memory_pressure(samples, threshold=0.8) == [PressureInterval(1.0, 3.0, 0.85)]
    assert memory_pressure(samples) == []
    assert memory_pressure([]) == []
