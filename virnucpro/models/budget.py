"""Token budgets sized from GPU memory (`auto`), and memory pressure over a run.

A fixed tokens-per-step is a guess: too large for a 24 GB GPU, far too small for a
141 GB one. With `auto`, each engine, once its model is loaded, runs a short probe:
synthetic steps of realistic shape, doubling in size, each measured for the GPU memory
it peaked at; the largest step that stays under `MEMORY_LIMIT` of the device is kept.
Doubling (not a finer search) is deliberate: real steps differ from the synthetic one
in shape, so precision beyond a factor of two would be illusory, and the factor left
over is headroom. The probe takes its step and memory reader as arguments, so the same
code runs on a GPU with real ones and in CPU tests with fakes.

The limit is the one the run report's memory-pressure events use
(`monitoring.memory_pressure`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from virnucpro.models.batching import is_out_of_memory
from virnucpro.monitoring.memory_pressure import MEMORY_LIMIT

log = logging.getLogger(__name__)


StepRunner = Callable[[int], object]  # runs one synthetic step of that many tokens
# Peak bytes in use on the device since the previous call, and its total bytes.
MemoryReader = Callable[[], tuple[int, int]]


@dataclass(frozen=True)
class BudgetSearch:
    """One engine's `auto` budget: its value on the CPU (where memory is not the limit,
    so there is no probe) and the probe's start, floor and cap on a GPU."""

    engine: str  # for log lines
    cpu_default: int
    start: int
    floor: int  # the probe halves down to this when the start does not fit
    cap: int  # and doubles up to this: beyond it steps buy no throughput, only probe time

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.start <= self.cap:
            raise ValueError(f"{self.engine}: need 1 ≤ floor ≤ start ≤ cap, got {self}")


@dataclass(frozen=True)
class Trial:
    """One probe step: its size and the peak memory it reached."""

    tokens: int
    peak_bytes: int | None  # None: it ran out of memory
    total_bytes: int

    def fits(self, limit: float) -> bool:
        return self.peak_bytes is not None and self.peak_bytes <= limit * self.total_bytes


@dataclass(frozen=True)
class BudgetChoice:
    """An `auto` budget and how it was found (no trials: the CPU default, unprobed)."""

    tokens: int
    trials: tuple[Trial, ...] = ()
    limit: float = MEMORY_LIMIT
    seconds: float = 0.0

    @property
    def fits(self) -> bool:
        """False when the probe found no step under the limit (the floor is used)."""
        return not self.trials or any(t.fits(self.limit) for t in self.trials)

    def describe(self) -> str:
        """One line for the log and the benchmarks: the budget, its memory, why not more."""
        if not self.trials:
            return f"{self.tokens:,} tokens per step (the CPU default: no probe)"
        gib = 1024**3
        total = self.trials[0].total_bytes
        chosen = next((t for t in self.trials if t.tokens == self.tokens), None)
        if chosen is None or not chosen.fits(self.limit):
            reason = f"no probe step stayed under {self.limit:.0%} of memory: the floor"
        else:
            larger = [t for t in self.trials if t.tokens > self.tokens]
            if not larger:
                stop = "the probe's cap"
            elif larger[0].peak_bytes is None:
                stop = f"{larger[0].tokens:,} ran out of memory"
            else:
                stop = f"{larger[0].tokens:,} peaked at {larger[0].peak_bytes / total:.0%}"
            reason = (
                f"peak {chosen.peak_bytes / gib:.1f} of {total / gib:.1f} GiB "
                f"({chosen.peak_bytes / total:.0%}); {stop}"
            )
        return (
            f"{self.tokens:,} tokens per step ({reason}); probed {len(self.trials)} step "
            f"sizes in {self.seconds:.1f} s"
        )


def probe_token_budget(
    run_step: StepRunner,
    read_memory: MemoryReader,
    search: BudgetSearch,
    limit: float = MEMORY_LIMIT,
) -> BudgetChoice:
    """The largest `search.start × 2^k` (within floor and cap) whose step peaks under
    `limit` of the device's memory.

    From the start, double while steps fit; if the start does not fit, halve until one
    does (at most log2(cap / floor) + 1 steps either way). A step that runs out of
    memory counts as not fitting; any other error propagates. When nothing fits, the
    floor is returned and `BudgetChoice.fits` is False.
    """
    started = time.perf_counter()
    trials: list[Trial] = []

    def fits(tokens: int) -> bool:
        peak_known = True
        try:
            run_step(tokens)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            peak_known = False
        # Read after the `except` block, once the error (and the step's tensors its
        # traceback holds) is gone, so the reader can free them.
        peak, total = read_memory()
        trials.append(Trial(tokens, peak if peak_known else None, total))
        return trials[-1].fits(limit)

    read_memory()  # opens the first step's window
    tokens = search.start
    if fits(tokens):
        while tokens < search.cap and fits(larger := min(2 * tokens, search.cap)):
            tokens = larger
    else:
        while tokens > search.floor:
            tokens = max(tokens // 2, search.floor)
            if fits(tokens):
                break
    return BudgetChoice(tokens, tuple(trials), limit, time.perf_counter() - started)


def cuda_memory_reader(device: torch.device) -> MemoryReader:
    """Peak bytes in use on `device` since the previous call, and its total.

    In use counts what this process's allocator reserved (not only what tensors
    occupied: the cache and its fragmentation are memory the GPU cannot give to anything
    else) plus everything outside the allocator (other processes, CUDA context): the
    figure nvidia-smi, and the run report's sampler, see. Each call ends after emptying
    the cache and resetting the peak, so the next step is measured on its own.
    """

    def read() -> tuple[int, int]:
        torch.cuda.synchronize(device)
        free, total = torch.cuda.mem_get_info(device)
        outside = total - free - torch.cuda.memory_reserved(device)
        peak = torch.cuda.max_memory_reserved(device) + outside
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return peak, total

    return read


def choose_token_budget(
    search: BudgetSearch,
    device: torch.device,
    run_step: StepRunner,
    read_memory: MemoryReader | None = None,
) -> BudgetChoice:
    """An engine's `auto` budget: the CPU default off CUDA, else the probe's choice on
    `device` (with `cuda_memory_reader` unless given a reader), logged."""
    if device.type != "cuda":
        return BudgetChoice(search.cpu_default)
    choice = probe_token_budget(run_step, read_memory or cuda_memory_reader(device), search)
    level = logging.INFO if choice.fits else logging.WARNING
    log.log(level, "%s token budget on %s: %s", search.engine, device, choice.describe())
    return choice
