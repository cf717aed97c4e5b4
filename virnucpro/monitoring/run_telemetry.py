"""What a whole run adds up to, and the one definition of throughput.

Throughput is ESM-2 tokens per wall-clock second of the GPU stage, all workers
together; the GPU stage runs from the first computed group's start to the last one's
end (while a run is going: to now). ESM-2 tokens because ESM-2 3B is ~80% of the
compute and the figure embedders are compared by; wall-clock seconds because that is
what a user waits for (model loading, reading and stragglers included). A worker's
share is its own tokens over the same stage, so the workers' shares add up to the
run's figure. The live view, the report, the throughput log's runs and Grafana
(`rate()` of the token counters) all count this way.

A resumed run's result is partly computed now and partly reused from earlier runs:
result figures (frames, tokens, groups) cover both; measured figures (throughput,
GPU utilisation, packing) cover only what was computed now, and are None when nothing
was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from virnucpro.monitoring.gpu_sampler import GpuReading, time_weighted_mean
from virnucpro.monitoring.telemetry import (
    ESM,
    MODELS,
    BatchRecord,
    GroupRecord,
    WorkerTelemetry,
    records_of,
)

if TYPE_CHECKING:
    from virnucpro.run.group_inference import GroupSummary

THROUGHPUT_DEFINITION = (
    "ESM-2 tokens per wall-clock second of the GPU stage (first computed group's start "
    "to the last one's end), all workers together"
)


def stage_window(
    groups: Iterable[GroupRecord], now: float | None = None
) -> tuple[float, float] | None:
    """The GPU stage of the groups computed now, or None if none was; `now` extends it
    while groups are still running."""
    computed = [g for g in groups if not g.reused]
    if not computed:
        return None
    end = max(g.ended_at for g in computed)
    return min(g.started_at for g in computed), max(end, now) if now is not None else end


def tokens_per_second(
    batches: Iterable[BatchRecord], window: tuple[float, float] | None, model: str = ESM
) -> float | None:
    """`model`'s tokens computed now over the stage's wall-clock seconds (the
    throughput definition); None without a stage."""
    if window is None or window[1] <= window[0]:
        return None
    tokens = sum(b.tokens for b in batches if b.model == model and not b.reused)
    return tokens / (window[1] - window[0])


def packing_efficiency(batches: Iterable[BatchRecord]) -> float | None:
    """Real tokens over all tokens computed (real + padding): 1 − the padding waste."""
    real = padded = 0
    for b in batches:
        real += b.tokens
        padded += b.tokens + b.padding_tokens
    return real / padded if padded else None


@dataclass(frozen=True)
class RunRecords:
    """Every record of a run: the groups computed now (from the workers' telemetry),
    those reused from earlier runs, and each worker's GPU readings (by worker name:
    NVML indices repeat across machines)."""

    groups: list[GroupRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)
    gpu_readings: dict[str, list[GpuReading]] = field(default_factory=dict)

    @classmethod
    def combine(
        cls, workers: Iterable[WorkerTelemetry], summaries: Iterable[GroupSummary] = ()
    ) -> RunRecords:
        """Workers' telemetry plus the reused groups among `summaries` (a group a worker
        computed now counts as computed even if a retry then found its result)."""
        groups, batches, readings = [], [], {}
        for worker in workers:
            groups += worker.groups
            batches += worker.batches
            if worker.gpu_readings:
                readings[worker.worker] = sorted(worker.gpu_readings, key=lambda r: r.time)
        computed = {g.group_id for g in groups}
        for summary in summaries:
            if summary.skipped and summary.group_id not in computed:
                group, passes = records_of(summary)
                groups.append(group)
                batches += passes
        return cls(groups, batches, readings)

    def computed(self) -> RunRecords:
        return RunRecords(
            [g for g in self.groups if not g.reused],
            [b for b in self.batches if not b.reused],
            self.gpu_readings,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecords:
        return cls(
            [GroupRecord(**g) for g in data["groups"]],
            [BatchRecord(**b) for b in data["batches"]],
            {w: [GpuReading(**r) for r in rs] for w, rs in data["gpu_readings"].items()},
        )


@dataclass(frozen=True)
class ModelSummary:
    """One model's passes computed now."""

    model: str
    sequences: int
    tokens: int
    padding_tokens: int
    steps: int
    seconds: float  # compute seconds, summed over workers
    tokens_per_second: float | None  # over the GPU stage (the definition)
    packing_efficiency: float | None


@dataclass(frozen=True)
class WorkerSummary:
    """One worker's share of the groups computed now."""

    worker: str
    gpu: int | None
    groups: int
    sequences: int
    tokens: int  # ESM-2
    busy_seconds: float  # its groups, end to end
    wait_seconds: float  # of which reading groups and loading models
    busy_fraction: float | None  # busy seconds over the GPU stage
    tokens_per_second: float | None  # its tokens over the GPU stage: shares add up
    mean_utilisation: float | None  # time-weighted over the GPU stage
    peak_memory_bytes: int | None
    oom_splits: int


@dataclass(frozen=True)
class RunTelemetry:
    """The whole run. Result figures cover computed and reused groups; the others only
    the groups computed now (None when none was)."""

    sequences: int  # frames scored, the whole result
    tokens: int  # their ESM-2 tokens
    groups_done: int  # groups in the result
    groups_computed: int
    groups_reused: int
    sequences_computed: int
    stage_started_at: float | None
    stage_seconds: float | None
    tokens_per_second: float | None
    sequences_per_second: float | None
    mean_utilisation: float | None  # over GPUs, time-weighted over the GPU stage
    packing_efficiency: float | None
    oom_splits: int
    models: list[ModelSummary] = field(default_factory=list)
    workers: list[WorkerSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTelemetry:
        values = {f.name: data[f.name] for f in fields(cls) if f.name not in ("models", "workers")}
        return cls(
            **values,
            models=[ModelSummary(**m) for m in data["models"]],
            workers=[WorkerSummary(**w) for w in data["workers"]],
        )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _model_summary(model: str, batches: list[BatchRecord], window) -> ModelSummary:
    mine = [b for b in batches if b.model == model]
    return ModelSummary(
        model=model,
        sequences=sum(b.sequences for b in mine),
        tokens=sum(b.tokens for b in mine),
        padding_tokens=sum(b.padding_tokens for b in mine),
        steps=sum(b.steps for b in mine),
        seconds=sum(b.seconds for b in mine),
        tokens_per_second=tokens_per_second(mine, window, model),
        packing_efficiency=packing_efficiency(mine),
    )


def _worker_summary(worker: str, records: RunRecords, window) -> WorkerSummary:
    groups = [g for g in records.groups if g.worker == worker]
    batches = [b for b in records.batches if b.worker == worker]
    mine = records.gpu_readings.get(worker, [])
    gpu = mine[0].gpu if mine else None
    busy = sum(g.seconds for g in groups)
    stage = window[1] - window[0] if window else 0.0
    return WorkerSummary(
        worker=worker,
        gpu=gpu,
        groups=len(groups),
        sequences=sum(g.frames for g in groups),
        tokens=sum(b.tokens for b in batches if b.model == ESM),
        busy_seconds=busy,
        wait_seconds=sum(g.wait_seconds for g in groups),
        busy_fraction=busy / stage if stage > 0 else None,
        tokens_per_second=tokens_per_second(batches, window),
        mean_utilisation=time_weighted_mean(mine, *window) if window and mine else None,
        peak_memory_bytes=max((r.memory_used_bytes for r in mine), default=None),
        oom_splits=sum(b.oom_splits for b in batches),
    )


def summarise(records: RunRecords) -> RunTelemetry:
    """Run totals from its records (see the module docstring for what covers what)."""
    now = records.computed()
    window = stage_window(now.groups)
    esm_all = [b for b in records.batches if b.model == ESM]
    workers = [
        _worker_summary(name, now, window) for name in sorted({g.worker for g in now.groups})
    ]
    stage = window[1] - window[0] if window else None
    sequences_now = sum(g.frames for g in now.groups)
    gpu_means = [
        mean
        for readings in now.gpu_readings.values()
        if window and (mean := time_weighted_mean(readings, *window)) is not None
    ]
    return RunTelemetry(
        sequences=sum(g.frames for g in records.groups),
        tokens=sum(b.tokens for b in esm_all),
        groups_done=len(records.groups),
        groups_computed=len(now.groups),
        groups_reused=len(records.groups) - len(now.groups),
        sequences_computed=sequences_now,
        stage_started_at=window[0] if window else None,
        stage_seconds=stage,
        tokens_per_second=tokens_per_second(now.batches, window),
        sequences_per_second=sequences_now / stage if stage else None,
        mean_utilisation=_mean(gpu_means),
        packing_efficiency=packing_efficiency(now.batches),
        oom_splits=sum(b.oom_splits for b in now.batches),
        models=[_model_summary(m, now.batches, window) for m in MODELS],
        workers=workers,
    )


def worker_shares(records: RunRecords, now: float | None = None) -> dict[str, float]:
    """Each worker's tokens per second so far (the live view), by the definition."""
    window = stage_window(records.groups, now)
    by_worker: dict[str, list[BatchRecord]] = defaultdict(list)
    for b in records.batches:
        by_worker[b.worker].append(b)
    return {w: tokens_per_second(bs, window) or 0.0 for w, bs in by_worker.items()}
