"""`throughput_log.csv`: one line per computed group, appended by every run.

It outlives the runs in an output directory, so a run can be compared with earlier
ones: each line names its run, the run's settings key (models, precision, chunk
length, batching) and its number of workers, and holds the group's raw figures per
model. A run's throughput is recomputed from its lines with the report's definition
(`run_telemetry.tokens_per_second`), which is how scaling finds its baseline: the
latest run with the same settings on fewer workers.

Workers append whole lines with one write each (POSIX keeps such appends whole on a
local filesystem); the flow writes the header before any worker starts, and moves a
log of an older layout aside rather than mixing layouts in one file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from virnucpro.monitoring.run_telemetry import stage_window, tokens_per_second
from virnucpro.monitoring.telemetry import MODELS, BatchRecord, GroupRecord

if TYPE_CHECKING:
    from virnucpro.run.config import PredictConfig

log = logging.getLogger(__name__)

_MODEL_FIELDS = ("sequences", "tokens", "padding_tokens", "steps", "seconds", "oom_splits")
COLUMNS = (
    "time",
    "worker",
    "gpu",
    "run_id",
    "settings",
    "workers",
    "group_id",
    "frames",
    "started_at",
    "seconds",
    "wait_seconds",
    *(f"{model}_{name}" for model in MODELS for name in _MODEL_FIELDS),
)


def settings_key(config: PredictConfig, fingerprint: str) -> str:
    """Runs with equal keys did the same work the same way (models by content,
    precision, chunk length, group and step sizes); only their workers may differ."""
    settings = {
        "fingerprint": fingerprint,
        "chunk_length": config.chunk_length,
        "group_tokens": config.group_tokens,
        "esm_tokens_per_batch": config.models.esm_tokens_per_batch,
        "dnabert_tokens_per_batch": config.models.dnabert_tokens_per_batch,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunLabel:
    """Which run a line belongs to; `workers` is the cluster's size when it started."""

    run_id: str
    settings: str
    workers: int


def _line(values: list[object]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(values)
    return text.getvalue()


class ThroughputLog:
    """The shared log at `path`, written for the run `label`."""

    def __init__(self, path: Path | str, label: RunLabel) -> None:
        self.path = Path(path)
        self.label = label

    def prepare(self) -> None:
        """In the flow, before workers append: start the file with its header, after
        moving a log of another layout aside (named after its first line's time)."""
        header = _line(list(COLUMNS))
        if self.path.exists():
            with self.path.open() as handle:
                first = handle.readline()
            if first == header:
                return
            aside = self.path.with_name(f"{self.path.stem}-{int(self.path.stat().st_mtime)}.csv")
            os.replace(self.path, aside)
            log.warning("%s had another layout; moved to %s", self.path, aside)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            if handle.tell() == 0:
                handle.write(header)

    def append(self, group: GroupRecord, batches: list[BatchRecord]) -> None:
        """One line for one computed group, in one write."""
        per_model = {b.model: b for b in batches}
        values: list[object] = [
            f"{group.ended_at:.3f}",
            group.worker,
            "" if group.gpu is None else group.gpu,
            self.label.run_id,
            self.label.settings,
            self.label.workers,
            group.group_id,
            group.frames,
            f"{group.started_at:.3f}",
            f"{group.seconds:.3f}",
            f"{group.wait_seconds:.3f}",
        ]
        for model in MODELS:
            batch = per_model.get(model)
            values += [getattr(batch, name) if batch else 0 for name in _MODEL_FIELDS]
        with self.path.open("a") as handle:
            handle.write(_line(values))


@dataclass(frozen=True)
class LoggedRun:
    """One run's lines, read back."""

    run_id: str
    settings: str
    workers: int
    groups: list[GroupRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)

    @property
    def finished_at(self) -> float:
        return max(g.ended_at for g in self.groups)

    @property
    def tokens_per_second(self) -> float | None:
        return tokens_per_second(self.batches, stage_window(self.groups))


def _records(row: dict[str, str]) -> tuple[GroupRecord, list[BatchRecord]]:
    gpu = int(row["gpu"]) if row["gpu"] else None
    started = float(row["started_at"])
    group = GroupRecord(
        worker=row["worker"],
        gpu=gpu,
        group_id=row["group_id"],
        frames=int(row["frames"]),
        started_at=started,
        seconds=float(row["seconds"]),
        wait_seconds=float(row["wait_seconds"]),
    )
    batches, begins = [], started + group.wait_seconds
    for model in MODELS:
        values = {name: row[f"{model}_{name}"] for name in _MODEL_FIELDS}
        seconds = float(values["seconds"])
        batches.append(
            BatchRecord(
                worker=group.worker,
                gpu=gpu,
                group_id=group.group_id,
                model=model,
                sequences=int(values["sequences"]),
                tokens=int(values["tokens"]),
                padding_tokens=int(values["padding_tokens"]),
                steps=int(values["steps"]),
                seconds=seconds,
                started_at=begins,
                oom_splits=int(values["oom_splits"]),
            )
        )
        begins += seconds
    return group, batches


def read_runs(path: Path | str) -> list[LoggedRun]:
    """Every run in the log, in the order they finished; [] without a log."""
    path = Path(path)
    if not path.exists():
        return []
    rows_of: dict[str, list[dict[str, str]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            rows_of.setdefault(row["run_id"], []).append(row)
    runs = []
    for run_id, rows in rows_of.items():
        groups, batches = [], []
        for row in rows:
            group, passes = _records(row)
            groups.append(group)
            batches += passes
        runs.append(
            LoggedRun(run_id, rows[0]["settings"], int(rows[0]["workers"]), groups, batches)
        )
    return sorted(runs, key=lambda r: r.finished_at)
