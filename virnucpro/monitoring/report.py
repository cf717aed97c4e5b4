"""The end-of-run report: what ran, how fast, what went wrong, and whether it met targets.

`render_markdown` is for people (report.md, a Prefect markdown artifact); `tables` gives
the same numbers as rows for Prefect table artifacts; `write_report` writes report.md
and the machine-readable telemetry.json side by side.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from virnucpro.monitoring.projections import Baseline, project, scaling
from virnucpro.monitoring.telemetry import RunEvent, RunMetadata, RunTelemetry


@dataclass(frozen=True)
class Target:
    """A pass/fail goal on one run metric (a key of `run_metrics`).

    `value` is empty until `evaluate_targets` fills it from a run; a metric the run
    could not measure (utilisation without NVML) stays None and neither passes nor fails.
    """

    name: str
    threshold: float
    higher_is_better: bool = True
    value: float | None = None

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
)


def run_metrics(run: RunTelemetry) -> dict[str, float | None]:
    """The run figures a `Target` can name."""
    return {
        "gpu_utilisation_percent": run.mean_utilisation,
        "packing_efficiency": run.packing_efficiency,
        "tokens_per_second": run.tokens_per_second,
        "sequences_per_second": run.sequences_per_second,
        "elapsed_seconds": run.elapsed_seconds,
        "oom_splits": float(run.oom_splits),
    }


def evaluate_targets(run: RunTelemetry, targets: list[Target] | None = None) -> list[Target]:
    """Default targets plus the user's (a user target replaces a default of that name)."""
    metrics = run_metrics(run)
    chosen = {t.name: t for t in DEFAULT_TARGETS}
    for target in targets or []:
        if target.name not in metrics:
            raise ValueError(f"unknown target metric {target.name!r}; use one of {list(metrics)}")
        chosen[target.name] = target
    return [replace(t, value=metrics[t.name]) for t in chosen.values()]


def _number(value: float | None, digits: int = 1, unit: str = "") -> str:
    """`value` with its unit, or "n/a" alone when it was not measured."""
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "∞" + unit
    return f"{value:,.{digits}f}{unit}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    return lines


def tables(run: RunTelemetry) -> dict[str, list[dict[str, Any]]]:
    """Rows for Prefect table artifacts: run summary, per-worker figures, projections."""
    summary = [
        {"metric": "sequences", "value": run.sequences},
        {"metric": "tokens", "value": run.tokens},
        {"metric": "batches", "value": run.batches},
        {"metric": "groups done", "value": run.groups_done},
        {"metric": "elapsed (s)", "value": round(run.elapsed_seconds, 1)},
        {"metric": "tokens/s", "value": round(run.tokens_per_second, 1)},
        {"metric": "sequences/s", "value": round(run.sequences_per_second, 2)},
        {"metric": "packing efficiency", "value": round(run.packing_efficiency, 4)},
        {"metric": "OOM splits", "value": run.oom_splits},
    ]
    workers = [
        {
            "worker": w.worker,
            "gpu": "cpu" if w.gpu is None else w.gpu,
            "sequences": w.sequences,
            "tokens": w.tokens,
            "busy (s)": round(w.busy_seconds, 1),
            "tokens/s": round(w.tokens_per_second, 1),
            "utilisation %": "n/a" if w.mean_utilisation is None else round(w.mean_utilisation, 1),
            "packing": round(w.packing_efficiency, 4),
            "groups": w.groups_done,
            "OOM splits": w.oom_splits,
        }
        for w in run.workers
    ]
    projections = [
        {
            "sequences": p.sequences,
            "tokens/sequence": round(p.mean_tokens_per_sequence, 1),
            "hours": round(p.hours, 2),
        }
        for p in project(run)
    ]
    return {"summary": summary, "workers": workers, "projections": projections}


def render_markdown(
    run: RunTelemetry,
    metadata: RunMetadata | None = None,
    events: list[RunEvent] | None = None,
    targets: list[Target] | None = None,
    baseline: Baseline | None = None,
) -> str:
    """The run report as Markdown; `targets` are added to the default ones."""
    events = events or []
    lines = [
        "# VirNucPro run report",
        "",
        "## Summary",
        "",
        f"- Sequences: {run.sequences:,}",
        f"- Tokens: {run.tokens:,}",
        f"- Elapsed: {_number(run.elapsed_seconds)} s (slowest worker)",
        f"- Throughput: {_number(run.tokens_per_second)} tokens/s, "
        f"{_number(run.sequences_per_second, 2)} sequences/s",
        f"- Batches: {run.batches:,}; groups: {run.groups_done:,}; OOM splits: {run.oom_splits}",
        f"- Mean GPU utilisation: {_number(run.mean_utilisation, unit='%')}; "
        f"packing efficiency: {_percent(run.packing_efficiency)}",
        "",
        "## Workers",
        "",
        *_markdown_table(tables(run)["workers"]),
        "",
        "## Events",
        "",
    ]
    counts: dict[str, int] = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    if counts:
        lines.append(", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items())))
        lines.append("")
    lines += _markdown_table(
        [
            {
                "time (UTC)": datetime.fromtimestamp(e.time, UTC).strftime("%H:%M:%S"),
                "kind": e.kind,
                "worker": e.worker,
                "detail": e.detail,
            }
            for e in events
        ]
    )
    lines += ["", "## Projections", ""]
    lines += [
        f"- {p.sequences:,} sequences: {_number(p.hours, 2)} h "
        f"(at {_number(p.tokens_per_second)} tokens/s, "
        f"{_number(p.mean_tokens_per_sequence)} tokens/sequence)"
        for p in project(run)
    ]
    if baseline is not None:
        s = scaling(run.tokens_per_second, run.n_gpus, baseline)
        lines += [
            "",
            "## Scaling",
            "",
            f"- {s.n_gpus} GPUs vs baseline {baseline.n_gpus} GPUs "
            f"at {_number(baseline.tokens_per_second)} tokens/s",
            f"- Speedup: {s.speedup:.2f}x; efficiency: {_percent(s.efficiency)}",
        ]
    lines += ["", "## Targets", ""]
    lines += _markdown_table(
        [
            {
                "target": t.name,
                "value": _number(t.value, 3),
                "threshold": ("≥ " if t.higher_is_better else "≤ ") + _number(t.threshold, 3),
                "result": {True: "PASS", False: "FAIL", None: "n/a"}[t.passed],
            }
            for t in evaluate_targets(run, targets)
        ]
    )
    if metadata is not None:
        gpus = ", ".join(
            f"{g.index}: {g.name} ({g.memory_total_bytes / 2**30:.0f} GiB)" for g in metadata.gpus
        )
        lines += [
            "",
            "## Machine",
            "",
            f"- Host: {metadata.hostname}; CPU: {metadata.cpu_model} × {metadata.cpu_count}",
            f"- GPUs: {gpus or 'none'}",
            f"- Driver: {metadata.driver_version or 'n/a'}; CUDA driver: "
            f"{metadata.cuda_driver_version or 'n/a'}; torch CUDA: {metadata.cuda or 'n/a'}",
            f"- Python {metadata.python}; torch {metadata.torch}",
        ]
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: Path | str,
    run: RunTelemetry,
    metadata: RunMetadata | None = None,
    events: list[RunEvent] | None = None,
    targets: list[Target] | None = None,
    baseline: Baseline | None = None,
) -> tuple[Path, Path]:
    """Write report.md and telemetry.json into `out_dir`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "run": run.to_dict(),
        "metadata": metadata.to_dict() if metadata else None,
        "events": [asdict(e) for e in events or []],
        "targets": [{**asdict(t), "passed": t.passed} for t in evaluate_targets(run, targets)],
        "projections": [asdict(p) for p in project(run)],
        "scaling": asdict(scaling(run.tokens_per_second, run.n_gpus, baseline))
        if baseline
        else None,
    }
    report = out / "report.md"
    report.write_text(render_markdown(run, metadata, events, targets, baseline))
    telemetry = out / "telemetry.json"
    # An empty run projects infinite hours; json writes that as Infinity, which Python's
    # json reads back, and the rest of an empty run's telemetry is still worth keeping.
    telemetry.write_text(json.dumps(payload, indent=1))
    return report, telemetry
