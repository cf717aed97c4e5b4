"""The end-of-run report: what ran, how fast, what went wrong, and whether it met targets.

`build_report` turns a run's records into a `Report`; `render_markdown` is for people
(report.md, a Prefect markdown artifact), `tables` gives the same numbers as rows for
Prefect table artifacts, and `write_report` writes report.md, report.html (with the
plots of `plots`) and the machine-readable telemetry.json side by side. Every figure
says what it covers, and a target that cannot apply to a run says why (`n/a`) rather
than passing or failing on numbers that do not mean what it asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from virnucpro.monitoring.memory_pressure import MEMORY_LIMIT, memory_pressure
from virnucpro.monitoring.projections import Baseline, Projection, Scaling, project, scaling
from virnucpro.monitoring.run_telemetry import (
    THROUGHPUT_DEFINITION,
    RunRecords,
    RunTelemetry,
    summarise,
)
from virnucpro.monitoring.telemetry import ESM, RunEvent, RunMetadata

# Below this many computed groups per worker, model loading (first group) and the
# last group's tail are a large part of the GPU stage, so utilisation and scaling
# measure start-up more than the steady state the targets are about.
MIN_GROUPS_PER_WORKER = 4
PROJECTION_READS = 6_000_000
MODEL_NAMES = {ESM: "ESM-2", "dnabert": "DNABERT-S"}


@dataclass(frozen=True)
class RunInfo:
    """What the report needs to know about the run beyond its telemetry."""

    run_id: str
    settings: str  # `throughput_log.settings_key`: runs with equal keys are comparable
    workers: int
    reads: int  # input reads, for per-read projections
    test_models: bool = False  # random-init models (`make demo`, tests)
    started_at: float | None = None  # the whole run's start (unix time)
    finished_at: float | None = None


@dataclass(frozen=True)
class Target:
    """A pass/fail goal on one run metric (a key of `run_metrics`).

    `value` is filled by `evaluate_targets`; a target that does not apply to the run
    keeps `value` None and says why in `reason`, and neither passes nor fails."""

    name: str
    threshold: float
    higher_is_better: bool = True
    value: float | None = None
    reason: str = ""

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold


DEFAULT_TARGETS = (
    Target("gpu_utilisation_percent", 70.0),
    Target("packing_efficiency", 0.90),
    Target("scaling_efficiency", 0.95),
    Target("hours_for_6m_reads", 10.0, higher_is_better=False),
)


@dataclass(frozen=True)
class Report:
    """Everything the report says, computed once for all its renderings."""

    run: RunTelemetry
    records: RunRecords
    info: RunInfo
    projections: list[Projection]
    scaling: Scaling | None
    targets: list[Target]
    events: list[RunEvent] = field(default_factory=list)
    metadata: RunMetadata | None = None

    @property
    def event_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("stolen", "failed", "oom_split", "memory_pressure"), 0)
        for event in self.events:
            counts[event.kind] = counts.get(event.kind, 0) + 1
        return counts


def run_metrics(
    run: RunTelemetry, projections: list[Projection], scaled: Scaling | None
) -> dict[str, float | None]:
    """The run figures a `Target` can name."""
    six_million = next((p.hours for p in projections if p.reads == PROJECTION_READS), None)
    return {
        "gpu_utilisation_percent": run.mean_utilisation,
        "packing_efficiency": run.packing_efficiency,
        "scaling_efficiency": scaled.efficiency if scaled else None,
        "hours_for_6m_reads": six_million,
        "tokens_per_second": run.tokens_per_second,
        "sequences_per_second": run.sequences_per_second,
        "stage_seconds": run.stage_seconds,
        "oom_splits": float(run.oom_splits),
    }


def _not_applicable(run: RunTelemetry, info: RunInfo, scaled: Scaling | None) -> dict[str, str]:
    """Why a target does not apply to this run, by target name (absent: it applies)."""
    if run.groups_computed == 0:
        reason = f"no group was computed in this run (all {run.groups_reused} reused)"
        return {t.name: reason for t in DEFAULT_TARGETS} | {"tokens_per_second": reason}
    reasons = {}
    few = run.groups_computed < MIN_GROUPS_PER_WORKER * info.workers
    too_few = (
        f"too few groups ({run.groups_computed} computed on {info.workers} worker(s); "
        f"start-up dominates below {MIN_GROUPS_PER_WORKER} per worker)"
    )
    no_gpu = "no GPU readings (CPU workers, or NVML unavailable)"
    if run.mean_utilisation is None:
        reasons["gpu_utilisation_percent"] = no_gpu
    elif few:
        reasons["gpu_utilisation_percent"] = too_few
    if run.mean_utilisation is None:
        reasons["scaling_efficiency"] = (
            "no GPU: the target is for one worker per GPU; CPU workers share the cores"
        )
    elif few:
        reasons["scaling_efficiency"] = too_few
    elif scaled is None:
        reasons["scaling_efficiency"] = (
            "no earlier run with the same models and settings on fewer workers "
            "in throughput_log.csv"
        )
    if info.test_models:
        reasons["hours_for_6m_reads"] = "test models: their speed says nothing about ESM-2 3B"
    elif run.mean_utilisation is None:
        reasons["hours_for_6m_reads"] = "no GPU: the 10 h target is for GPU runs"
    elif few:
        reasons["hours_for_6m_reads"] = too_few
    return reasons


def evaluate_targets(
    run: RunTelemetry,
    info: RunInfo,
    projections: list[Projection],
    scaled: Scaling | None,
    targets: list[Target] | None = None,
) -> list[Target]:
    """Default targets plus the user's (a user target replaces a default of that name),
    each with its value or the reason it does not apply."""
    metrics = run_metrics(run, projections, scaled)
    chosen = {t.name: t for t in DEFAULT_TARGETS}
    for target in targets or []:
        if target.name not in metrics:
            raise ValueError(f"unknown target metric {target.name!r}; use one of {list(metrics)}")
        chosen[target.name] = target
    reasons = _not_applicable(run, info, scaled)
    return [
        replace(t, value=None, reason=reasons[t.name])
        if t.name in reasons
        else replace(
            t, value=metrics[t.name], reason="" if metrics[t.name] is not None else "not measured"
        )
        for t in chosen.values()
    ]


def build_report(
    records: RunRecords,
    info: RunInfo,
    events: list[RunEvent] | None = None,
    targets: list[Target] | None = None,
    baseline: Baseline | None = None,
    metadata: RunMetadata | None = None,
) -> Report:
    run = summarise(records)
    projections = project(run, info.reads)
    scaled = (
        scaling(run.tokens_per_second, info.workers, baseline)
        if baseline and run.tokens_per_second
        else None
    )
    return Report(
        run=run,
        records=records,
        info=info,
        projections=projections,
        scaling=scaled,
        targets=evaluate_targets(run, info, projections, scaled, targets),
        events=sorted([*(events or []), *pressure_events(records)], key=lambda e: e.time),
        metadata=metadata,
    )


def pressure_events(records: RunRecords) -> list[RunEvent]:
    """One event per stretch of a worker's GPU readings above the memory limit."""
    return [
        RunEvent(
            stretch.start,
            "memory_pressure",
            worker,
            f"GPU memory above {MEMORY_LIMIT:.0%} for {stretch.end - stretch.start:.0f} s, "
            f"peak {stretch.peak_fraction:.0%}",
        )
        for worker, readings in records.gpu_readings.items()
        for stretch in memory_pressure(
            (r.time, r.memory_used_bytes, r.memory_total_bytes) for r in readings
        )
    ]


def _number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """`value` with its unit, or "n/a" alone when it was not measured."""
    if value is None or math.isinf(value) or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.1f}"


def _markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    return lines


def _rounded(value: float | None, digits: int) -> float | str:
    return "n/a" if value is None else round(value, digits)


def target_rows(report: Report) -> list[dict[str, Any]]:
    return [
        {
            "target": t.name,
            "value": _number(t.value, 3),
            "threshold": ("≥ " if t.higher_is_better else "≤ ") + _number(t.threshold, 3),
            "result": {True: "PASS", False: "FAIL", None: "n/a"}[t.passed],
            "why n/a": t.reason if t.passed is None else "",
        }
        for t in report.targets
    ]


def tables(report: Report) -> dict[str, list[dict[str, Any]]]:
    """Rows for Prefect table artifacts: summary, models, workers, projections, targets."""
    run = report.run
    summary = [
        {"metric": "sequences", "value": run.sequences},
        {"metric": "tokens", "value": run.tokens},
        {"metric": "groups computed", "value": run.groups_computed},
        {"metric": "groups reused", "value": run.groups_reused},
        {"metric": "GPU stage (s)", "value": _rounded(run.stage_seconds, 1)},
        {"metric": "tokens/s", "value": _rounded(run.tokens_per_second, 1)},
        {"metric": "sequences/s", "value": _rounded(run.sequences_per_second, 2)},
        {"metric": "GPU utilisation %", "value": _rounded(run.mean_utilisation, 1)},
        {"metric": "packing efficiency", "value": _rounded(run.packing_efficiency, 4)},
        {"metric": "OOM splits", "value": run.oom_splits},
        {"metric": "work stolen", "value": report.event_counts["stolen"]},
        {"metric": "groups failed", "value": report.event_counts["failed"]},
    ]
    models = [
        {
            "model": MODEL_NAMES[m.model],
            "sequences": m.sequences,
            "tokens": m.tokens,
            "padding tokens": m.padding_tokens,
            "packing": _rounded(m.packing_efficiency, 4),
            "steps": m.steps,
            "compute (s)": round(m.seconds, 1),
            "tokens/s": _rounded(m.tokens_per_second, 1),
        }
        for m in run.models
    ]
    workers = [
        {
            "worker": w.worker,
            "gpu": "cpu" if w.gpu is None else w.gpu,
            "groups": w.groups,
            "sequences": w.sequences,
            "tokens": w.tokens,
            "tokens/s": _rounded(w.tokens_per_second, 1),
            "busy (s)": round(w.busy_seconds, 1),
            "busy %": _rounded(None if w.busy_fraction is None else 100 * w.busy_fraction, 1),
            "utilisation %": _rounded(w.mean_utilisation, 1),
            "peak memory (GiB)": _gib(w.peak_memory_bytes),
            "OOM splits": w.oom_splits,
        }
        for w in run.workers
    ]
    projections = [
        {
            "reads": p.reads,
            "tokens/read": round(p.tokens_per_read, 1),
            "hours": _rounded(p.hours, 2),
        }
        for p in report.projections
    ]
    return {
        "summary": summary,
        "models": models,
        "workers": workers,
        "projections": projections,
        "targets": target_rows(report),
    }


def _clock(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%H:%M:%S")


@dataclass(frozen=True)
class Section:
    """One part of the report: points, then a table (None: the section has none)."""

    title: str
    points: list[str]
    table: list[dict[str, Any]] | None = None


def _result(report: Report) -> Section:
    run, info = report.run, report.info
    points = [
        f"Sequences: {run.sequences:,} frames scored (the six-frame translations kept) "
        f"from {info.reads:,} reads; {run.tokens:,} ESM-2 tokens",
        f"Groups: {run.groups_done:,}: {run.groups_computed:,} computed in this run, "
        f"{run.groups_reused:,} reused from earlier runs (their results were complete)",
    ]
    if run.groups_reused and run.groups_computed:
        points.append(
            "Measured figures (throughput, GPUs, packing, projections) cover the "
            f"{run.groups_computed:,} groups computed now"
        )
    if run.stage_started_at is None:
        points.append("GPU stage: none (nothing computed)")
    else:
        points.append(
            f"GPU stage: {_number(run.stage_seconds)} s from {_clock(run.stage_started_at)} "
            "UTC, first computed group's start to the last one's end (reading groups and "
            "loading models included)"
        )
    if info.started_at is not None and info.finished_at is not None:
        points.append(
            f"Whole run: {_number(info.finished_at - info.started_at)} s (preparing reads, "
            "starting the cluster, the GPU stage, writing outputs)"
        )
    return Section("Result", points)


def _throughput(report: Report) -> Section:
    run = report.run
    if run.tokens_per_second is None:
        return Section("Throughput", ["n/a: no group was computed in this run"])
    points = [
        f"Throughput: {_number(run.tokens_per_second)} tokens/s, "
        f"{_number(run.sequences_per_second, 2)} sequences/s",
        f"Definition: {THROUGHPUT_DEFINITION}. The live view, throughput_log.csv and "
        "Grafana count the same way; a worker's tokens/s is its share of it.",
        f"Mean GPU utilisation: {_number(run.mean_utilisation, unit='%')} (NVML, read every "
        "second on each worker's GPU, time-weighted over the GPU stage)",
        f"Packing efficiency: {_percent(run.packing_efficiency)} (real tokens over all "
        "tokens computed, padding included, both models)",
    ]
    return Section("Throughput", points, tables(report)["models"])


def _events(report: Report) -> Section:
    counts = report.event_counts
    points = [
        f"Work stolen: {counts['stolen']} (queued groups Dask moved to an idler worker)",
        f"Groups failed after retries: {counts['failed']}",
        f"OOM batch splits: {report.run.oom_splits}",
        f"Memory pressure (GPU memory above {MEMORY_LIMIT:.0%}): "
        f"{counts['memory_pressure']} stretch(es)",
    ]
    notable = [
        {"time (UTC)": _clock(e.time), "kind": e.kind, "worker": e.worker, "detail": e.detail}
        for e in report.events
        if e.kind not in ("group_done", "group_skipped")
    ]
    return Section("Events", points, notable)


def _projections(report: Report) -> Section:
    if report.run.tokens_per_second is None:
        return Section("Projections", ["n/a: no group was computed in this run"])
    return Section(
        "Projections",
        [
            f"{p.reads:,} reads: {_number(p.hours, 2)} h "
            f"(at {_number(p.tokens_per_second)} tokens/s, "
            f"{_number(p.tokens_per_read)} ESM-2 tokens per read of this run's inputs)"
            for p in report.projections
        ],
    )


def _scaling(report: Report) -> Section:
    s = report.scaling
    if s is None:
        target = next((t for t in report.targets if t.name == "scaling_efficiency"), None)
        return Section("Scaling", [f"n/a: {target.reason if target else 'no baseline'}"])
    return Section(
        "Scaling",
        [
            f"{s.n_gpus} workers vs run {s.baseline.run_id} on {s.baseline.n_gpus} at "
            f"{_number(s.baseline.tokens_per_second)} tokens/s (from throughput_log.csv)",
            f"Speedup: {s.speedup:.2f}x; efficiency: {_percent(s.efficiency)}",
        ],
    )


def _machine(metadata: RunMetadata) -> Section:
    gpus = ", ".join(
        f"{g.index}: {g.name} ({g.memory_total_bytes / 2**30:.0f} GiB)" for g in metadata.gpus
    )
    return Section(
        "Machine",
        [
            f"Host: {metadata.hostname}; CPU: {metadata.cpu_model} × {metadata.cpu_count}",
            f"GPUs: {gpus or 'none'}",
            f"Driver: {metadata.driver_version or 'n/a'}; CUDA driver: "
            f"{metadata.cuda_driver_version or 'n/a'}; torch CUDA: {metadata.cuda or 'n/a'}",
            f"Python {metadata.python}; torch {metadata.torch}",
        ],
    )


TEST_MODELS_NOTE = (
    "Test models: random-init stand-ins for ESM-2 3B, DNABERT-S and the classifier; the "
    "predictions are meaningless and the speed says nothing about the real models."
)
FIGURES = (
    ("throughput", "Throughput over time: tokens/s of each model, all workers together "
     "(dashed: the run's throughput)."),
    ("gpus", "GPU utilisation and memory over time, one line per worker's GPU."),
    ("timeline", "Groups per worker over time: waiting (reading, model loading), "
     "DNABERT-S, ESM-2, then classifying and writing."),
    ("balance", "Load balance: each worker's busy seconds by phase, against the GPU stage."),
)  # fmt: skip
FIGURES_NOTE = "Figures (report.html) cover the GPU stage; times are from its start."


def sections(report: Report) -> list[Section]:
    """The report's parts in order, for every rendering."""
    parts = [
        _result(report),
        _throughput(report),
        Section("Workers", [], tables(report)["workers"]),
        _events(report),
        _projections(report),
        _scaling(report),
        Section("Targets", [], target_rows(report)),
        Section("Figures", [FIGURES_NOTE, *(text for _, text in FIGURES)]),
    ]
    if report.metadata is not None:
        parts.append(_machine(report.metadata))
    return parts


def render_markdown(report: Report) -> str:
    """The run report as Markdown."""
    lines = ["# VirNucPro run report", ""]
    if report.info.test_models:
        lines += [f"**{TEST_MODELS_NOTE}**", ""]
    for section in sections(report):
        lines += [f"## {section.title}", ""]
        lines += [f"- {point}" for point in section.points]
        if section.table is not None:
            lines += [""] if section.points else []
            lines += _markdown_table(section.table)
        lines.append("")
    return "\n".join(lines)
