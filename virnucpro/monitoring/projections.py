"""How long bigger jobs would take, and how well a run scaled over its workers.

Projections use token throughput, not reads per second, because a step's cost follows
tokens: reads that give more or longer frames take longer. Hours for N reads are
N × (ESM-2 tokens per read of this run's inputs) ÷ the run's throughput.

Scaling compares a run with the latest run of the same settings on fewer workers in
the throughput log: speedup over it, and efficiency = speedup ÷ the ideal (linear)
speedup, e.g. 2 GPUs at 1.9× one GPU's throughput are 95% efficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from virnucpro.monitoring.run_telemetry import RunTelemetry
from virnucpro.monitoring.throughput_log import read_runs

PROJECTED_READS = (1_000_000, 6_000_000)


@dataclass(frozen=True)
class Projection:
    reads: int
    tokens_per_read: float
    tokens_per_second: float | None
    hours: float | None  # None when nothing was computed, so nothing was measured


def project(
    run: RunTelemetry, reads: int, counts: tuple[int, ...] = PROJECTED_READS
) -> list[Projection]:
    """Hours to embed each count of reads like the `reads` reads of this run."""
    per_read = run.tokens / reads if reads else 0.0
    rate = run.tokens_per_second
    return [
        Projection(n, per_read, rate, n * per_read / rate / 3600 if rate else None) for n in counts
    ]


@dataclass(frozen=True)
class Baseline:
    """A reference run: the same job with the same settings on fewer workers."""

    tokens_per_second: float
    n_gpus: int  # its workers (one per GPU)
    run_id: str = ""

    @classmethod
    def from_throughput_log(
        cls, path: Path | str, settings: str, workers: int, exclude_run: str
    ) -> Baseline | None:
        """The latest logged run with these `settings` on fewer than `workers` workers
        that measured a throughput; None if there is none."""
        for run in reversed(read_runs(path)):
            comparable = run.settings == settings and run.workers < workers
            if comparable and run.run_id != exclude_run and (rate := run.tokens_per_second):
                return cls(rate, run.workers, run.run_id)
        return None


@dataclass(frozen=True)
class Scaling:
    speedup: float
    efficiency: float
    n_gpus: int
    baseline: Baseline


def scaling(tokens_per_second: float, n_gpus: int, baseline: Baseline) -> Scaling:
    """Speedup over the baseline and how much of the ideal (linear) speedup it is."""
    speedup = tokens_per_second / baseline.tokens_per_second
    ideal = n_gpus / baseline.n_gpus
    return Scaling(speedup=speedup, efficiency=speedup / ideal, n_gpus=n_gpus, baseline=baseline)
