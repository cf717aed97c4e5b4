"""The report's pictures, drawn with matplotlib from a run's records.

matplotlib because one library gives both forms the report needs: SVG, inlined in
report.html so it opens anywhere without a server or JavaScript, and PNG, which the
Prefect UI shows inside a markdown artifact (as a data URI). Figures are built on
`matplotlib.figure.Figure` directly, not pyplot, so no global state is shared with
whatever else runs in the process.

Time runs along x in seconds (minutes for long runs) from the start of the GPU stage;
only groups computed in this run are drawn.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from virnucpro.monitoring.run_telemetry import RunRecords, stage_window, tokens_per_second
from virnucpro.monitoring.telemetry import DNABERT, ESM, MODELS, BatchRecord

COLOURS = {"wait": "#bbbbbb", DNABERT: "#4c72b0", ESM: "#dd8452", "rest": "#55a868"}
PHASE_NAMES = {"wait": "waiting", DNABERT: "DNABERT-S", ESM: "ESM-2", "rest": "classify, write"}
LONG_RUN = 1800.0  # seconds: beyond this the time axis is in minutes


def time_axis(stage_seconds: float) -> tuple[float, str]:
    """Divisor and label of the time axis for a stage this long."""
    if stage_seconds > LONG_RUN:
        return 60.0, "minutes since the GPU stage began"
    return 1.0, "seconds since the GPU stage began"


def rate_steps(batches: Iterable[BatchRecord]) -> tuple[list[float], list[float]]:
    """Tokens/s of all `batches` together as a step function: each pass adds its
    tokens ÷ seconds while it runs. Returns the change times and the rate from each."""
    changes: dict[float, float] = {}
    for b in batches:
        if b.seconds > 0:
            rate = b.tokens / b.seconds
            changes[b.started_at] = changes.get(b.started_at, 0.0) + rate
            changes[b.ended_at] = changes.get(b.ended_at, 0.0) - rate
    times, rates, current = [], [], 0.0
    for when in sorted(changes):
        current += changes[when]
        times.append(when)
        rates.append(max(current, 0.0))  # float sums may undershoot zero
    return times, rates


def _per_worker_axes(title: str, workers: int) -> tuple[Figure, Axes]:
    """A figure with one bar row per worker, and its axes."""
    figure = Figure(figsize=(9, 1.8 + 0.6 * max(workers, 1)), layout="constrained")
    ax = figure.add_subplot()
    ax.set_title(title)
    return figure, ax


def _nothing_computed(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no group computed in this run", ha="center", transform=ax.transAxes)


def throughput_figure(records: RunRecords) -> Figure:
    computed = records.computed()
    window = stage_window(computed.groups)
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    ax = figure.add_subplot()
    ax.set_title("Throughput over time, all workers")
    ax.set_ylabel("tokens/s")
    if window is None:
        _nothing_computed(ax)
        return figure
    scale, label = time_axis(window[1] - window[0])
    for model in MODELS:
        times, rates = rate_steps(b for b in computed.batches if b.model == model)
        ax.step(
            [(t - window[0]) / scale for t in times],
            rates,
            where="post",
            color=COLOURS[model],
            label=f"{PHASE_NAMES[model]} (while it runs)",
        )
    mean = tokens_per_second(computed.batches, window)
    ax.axhline(mean or 0.0, color=COLOURS[ESM], linestyle="--", label="run throughput (ESM-2)")
    ax.set_xlabel(label)
    figure.legend(loc="outside lower center", fontsize="small", ncols=3)
    return figure


def gpu_figure(records: RunRecords) -> Figure:
    window = stage_window(records.computed().groups)
    figure = Figure(figsize=(9, 5), layout="constrained")
    utilisation, memory = figure.subplots(2, 1, sharex=True)
    utilisation.set_title("GPU utilisation and memory, one line per worker's GPU")
    utilisation.set_ylabel("utilisation %")
    utilisation.set_ylim(0, 105)
    memory.set_ylabel("memory used (GiB)")
    if window is None or not records.gpu_readings:
        utilisation.text(0.5, 0.5, "no GPU readings", ha="center", transform=utilisation.transAxes)
        return figure
    scale, label = time_axis(window[1] - window[0])
    for worker, readings in sorted(records.gpu_readings.items()):
        # The last reading holds to the end of the stage, as in the utilisation mean.
        held = [*readings, readings[-1]] if readings[-1].time < window[1] else readings
        times = [(r.time - window[0]) / scale for r in readings]
        times += [(window[1] - window[0]) / scale] * (len(held) - len(readings))
        name = f"{worker} (GPU {readings[0].gpu})"
        utilisation.step(times, [r.utilisation_percent for r in held], where="post", label=name)
        memory.step(times, [r.memory_used_bytes / 2**30 for r in held], where="post")
    for ax in (utilisation, memory):
        ax.set_xlim(0, (window[1] - window[0]) / scale)
    memory.set_xlabel(label)
    figure.legend(loc="outside lower center", fontsize="small", ncols=4)
    return figure


def phases(records: RunRecords) -> dict[str, list[tuple[str, str, float, float]]]:
    """Per worker, its groups' phases as (group id, phase, start, seconds) in time order:
    waiting, DNABERT-S, ESM-2, then the rest of the group (classifying, writing)."""
    computed = records.computed()
    passes = {(b.group_id, b.model): b for b in computed.batches}
    result: dict[str, list[tuple[str, str, float, float]]] = {}
    for group in sorted(computed.groups, key=lambda g: g.started_at):
        rows = result.setdefault(group.worker, [])
        rows.append((group.group_id, "wait", group.started_at, group.wait_seconds))
        end = group.started_at + group.wait_seconds
        for model in MODELS:
            if (batch := passes.get((group.group_id, model))) is not None:
                rows.append((group.group_id, model, batch.started_at, batch.seconds))
                end = batch.ended_at
        rows.append((group.group_id, "rest", end, max(group.ended_at - end, 0.0)))
    return result


def timeline_figure(records: RunRecords) -> Figure:
    window = stage_window(records.computed().groups)
    by_worker = phases(records)
    figure, ax = _per_worker_axes("Groups per worker over time", len(by_worker))
    if window is None:
        _nothing_computed(ax)
        return figure
    scale, label = time_axis(window[1] - window[0])
    workers = sorted(by_worker)
    shown: set[str] = set()
    for row, worker in enumerate(workers):
        for _, phase, start, seconds in by_worker[worker]:
            ax.barh(
                row,
                seconds / scale,
                left=(start - window[0]) / scale,
                height=0.6,
                color=COLOURS[phase],
                edgecolor="white",
                linewidth=0.5,
                label=None if phase in shown else PHASE_NAMES[phase],
            )
            shown.add(phase)
    ax.set_yticks(range(len(workers)), workers)
    ax.set_xlabel(label)
    figure.legend(loc="outside lower center", fontsize="small", ncols=4)
    return figure


def busy_seconds(records: RunRecords) -> dict[str, dict[str, float]]:
    """Per worker, seconds spent in each phase over its computed groups."""
    totals: dict[str, dict[str, float]] = {}
    for worker, rows in phases(records).items():
        mine = totals.setdefault(worker, dict.fromkeys(COLOURS, 0.0))
        for _, phase, _, seconds in rows:
            mine[phase] += seconds
    return totals


def balance_figure(records: RunRecords) -> Figure:
    window = stage_window(records.computed().groups)
    totals = busy_seconds(records)
    figure, ax = _per_worker_axes("Load balance: busy seconds per worker", len(totals))
    if window is None:
        _nothing_computed(ax)
        return figure
    workers = sorted(totals)
    left = [0.0] * len(workers)
    for phase in COLOURS:
        widths = [totals[w][phase] for w in workers]
        ax.barh(workers, widths, left=left, color=COLOURS[phase], label=PHASE_NAMES[phase])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.axvline(window[1] - window[0], color="black", linestyle="--", label="GPU stage")
    ax.set_xlabel("seconds")
    figure.legend(loc="outside lower center", fontsize="small", ncols=5)
    return figure


def figures(records: RunRecords) -> dict[str, Figure]:
    """Every figure of the report, by the names `report.FIGURES` describes."""
    return {
        "throughput": throughput_figure(records),
        "gpus": gpu_figure(records),
        "timeline": timeline_figure(records),
        "balance": balance_figure(records),
    }


def svg(figure: Figure) -> str:
    """The figure as an inline SVG element (no XML prologue)."""
    out = io.StringIO()
    figure.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]


def png_data_uri(figure: Figure, dpi: int = 80) -> str:
    """The figure as a PNG data URI, small enough for a Prefect artifact."""
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
