"""How long bigger jobs would take, and how well a run scaled over its GPUs.

Projections use token throughput, not sequence throughput, because batch cost follows
tokens: a data set of longer reads takes longer at the same sequences/s. The caller
may pass the mean tokens per sequence of the target data set; by default the measured
run's own mean is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from virnucpro.monitoring.telemetry import RunTelemetry

PROJECTED_SEQUENCES = (1_000_000, 6_000_000)


@dataclass(frozen=True)
class Projection:
    sequences: int
    mean_tokens_per_sequence: float
    tokens_per_second: float
    hours: float


def project(
    run: RunTelemetry,
    sequences: tuple[int, ...] = PROJECTED_SEQUENCES,
    mean_tokens_per_sequence: float | None = None,
) -> list[Projection]:
    """Hours to embed each sequence count at this run's overall tokens/s."""
    per_sequence = mean_tokens_per_sequence or run.mean_tokens_per_sequence
    rate = run.tokens_per_second
    return [
        Projection(
            sequences=n,
            mean_tokens_per_sequence=per_sequence,
            tokens_per_second=rate,
            hours=n * per_sequence / rate / 3600 if rate > 0 else float("inf"),
        )
        for n in sequences
    ]


@dataclass(frozen=True)
class Baseline:
    """A reference run to compare against, usually the same job on fewer GPUs."""

    tokens_per_second: float
    n_gpus: int

    @classmethod
    def from_telemetry_json(cls, path: Path | str) -> Baseline:
        """Read the baseline from an earlier run's `telemetry.json`."""
        run = RunTelemetry.from_dict(json.loads(Path(path).read_text())["run"])
        return cls(tokens_per_second=run.tokens_per_second, n_gpus=run.n_gpus)


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
