"""What each GPU worker did, batch by batch, and what the whole run adds up to.

Each Dask worker owns one `TelemetryRecorder`. After every embedding batch the task
hands it a `BatchRecord`; the recorder keeps the records in memory (the Prometheus
collector reads recent throughput from them), rewrites `telemetry-<worker>.json`
atomically when asked, and appends one line per batch to the persistent throughput
log `throughput.csv`. One line per batch rather than per group because batches are
the unit whose speed we tune (token budget, packing), and a batch takes seconds, so
the log stays small; per-group numbers are easy to sum from it afterwards.

After the run `aggregate()` turns the per-worker records into one `RunTelemetry`.
Elapsed time is the slowest worker's wall span (first batch start to last batch end),
because the run is only as fast as its last GPU.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import socket
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from virnucpro.monitoring.gpu_monitor import GpuMonitor

if TYPE_CHECKING:
    from virnucpro.monitoring.gpu_monitor import GpuSample
    from virnucpro.run.group_inference import GroupSummary

THROUGHPUT_COLUMNS = (
    "time",
    "worker",
    "gpu",
    "sequences_per_s",
    "tokens_per_s",
    "utilisation",
    "memory_used",
)


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to a group: "stolen", "failed", "retried", "oom_split"."""

    time: float
    kind: str
    worker: str
    detail: str = ""


@dataclass(frozen=True)
class BatchRecord:
    """One embedding batch on one worker.

    `tokens` are real tokens; `token_budget` is what the batch was allowed to hold and
    `padded_tokens` what it actually occupied on the GPU, padding included.
    `started_at` is unix time when the forward pass began; `wait_seconds` is the time
    spent before that waiting for input (I/O, translation), not part of `seconds`.
    """

    worker: str
    gpu: int | None
    group_id: str
    model: str
    sequences: int
    tokens: int
    token_budget: int
    padded_tokens: int
    seconds: float
    wait_seconds: float
    started_at: float
    gpu_utilisation: float | None = None
    gpu_memory_used: int | None = None
    oom_splits: int = 0

    @property
    def ended_at(self) -> float:
        return self.started_at + self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def sequences_per_second(self) -> float:
        return self.sequences / self.seconds if self.seconds > 0 else 0.0

    @property
    def packing_efficiency(self) -> float:
        """Real tokens over the token budget: how full the batch was."""
        return self.tokens / self.token_budget if self.token_budget > 0 else 0.0


class TelemetryRecorder:
    """Collects one worker's batch records; thread-safe (tasks and scrapes overlap)."""

    def __init__(
        self, worker: str, out_dir: Path | str, throughput_log: Path | str | None = None
    ) -> None:
        """`out_dir` holds this run's JSON; `throughput_log` (default: in `out_dir`) may
        be a CSV shared by many runs, so throughput can be compared over time."""
        self.worker = worker
        self.out_dir = Path(out_dir)
        self.throughput_log = Path(throughput_log or self.out_dir / "throughput.csv")
        self._records: list[BatchRecord] = []
        self._lock = threading.Lock()

    @property
    def json_path(self) -> Path:
        return self.out_dir / f"telemetry-{self.worker}.json"

    def record(self, batch: BatchRecord) -> None:
        """Keep the record and append its line to the throughput log."""
        with self._lock:
            self._records.append(batch)
            self._append_throughput(batch)

    def records(self) -> list[BatchRecord]:
        with self._lock:
            return list(self._records)

    def write(self) -> Path:
        """Rewrite this worker's JSON atomically, so a reader never sees half a file."""
        with self._lock:
            payload = {"worker": self.worker, "records": [asdict(r) for r in self._records]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.json_path.with_suffix(f".json.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(self.json_path)
        return self.json_path

    def _append_throughput(self, batch: BatchRecord) -> None:
        # Workers share one log; each line is a single small write in append mode,
        # which POSIX keeps whole across processes on a local filesystem.
        self.throughput_log.parent.mkdir(parents=True, exist_ok=True)
        with self.throughput_log.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if handle.tell() == 0:  # first line of a new log
                writer.writerow(THROUGHPUT_COLUMNS)
            writer.writerow(
                [
                    f"{batch.ended_at:.3f}",
                    batch.worker,
                    "" if batch.gpu is None else batch.gpu,
                    f"{batch.sequences_per_second:.3f}",
                    f"{batch.tokens_per_second:.1f}",
                    "" if batch.gpu_utilisation is None else batch.gpu_utilisation,
                    "" if batch.gpu_memory_used is None else batch.gpu_memory_used,
                ]
            )


def load_records(path: Path | str) -> list[BatchRecord]:
    """Read a `telemetry-<worker>.json` written by `TelemetryRecorder.write`."""
    payload = json.loads(Path(path).read_text())
    return [BatchRecord(**r) for r in payload["records"]]


@dataclass(frozen=True)
class WorkerSummary:
    """One worker's totals. Rates are over busy (forward-pass) seconds, not wall time."""

    worker: str
    gpu: int | None
    sequences: int
    tokens: int
    batches: int
    busy_seconds: float
    wait_seconds: float
    span_seconds: float
    tokens_per_second: float
    mean_utilisation: float | None
    packing_efficiency: float
    groups_done: int
    oom_splits: int


@dataclass(frozen=True)
class RunTelemetry:
    """The whole run. `tokens_per_second` is total tokens over the slowest worker's span."""

    sequences: int
    tokens: int
    batches: int
    oom_splits: int
    groups_done: int
    elapsed_seconds: float
    tokens_per_second: float
    sequences_per_second: float
    mean_tokens_per_sequence: float
    mean_utilisation: float | None
    packing_efficiency: float
    workers: list[WorkerSummary] = field(default_factory=list)

    @property
    def n_gpus(self) -> int:
        return len(self.workers)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunTelemetry:
        values = {f.name: data[f.name] for f in fields(cls) if f.name != "workers"}
        return cls(**values, workers=[WorkerSummary(**w) for w in data["workers"]])


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _summarise_worker(worker: str, records: list[BatchRecord]) -> WorkerSummary:
    busy = sum(r.seconds for r in records)
    tokens = sum(r.tokens for r in records)
    budget = sum(r.token_budget for r in records)
    return WorkerSummary(
        worker=worker,
        gpu=records[0].gpu,
        sequences=sum(r.sequences for r in records),
        tokens=tokens,
        batches=len(records),
        busy_seconds=busy,
        wait_seconds=sum(r.wait_seconds for r in records),
        span_seconds=max(r.ended_at for r in records) - min(r.started_at for r in records),
        tokens_per_second=tokens / busy if busy > 0 else 0.0,
        mean_utilisation=_mean(
            [r.gpu_utilisation for r in records if r.gpu_utilisation is not None]
        ),
        packing_efficiency=tokens / budget if budget > 0 else 0.0,
        groups_done=len({r.group_id for r in records}),
        oom_splits=sum(r.oom_splits for r in records),
    )


def aggregate(sources: Iterable[BatchRecord | Path | str]) -> RunTelemetry:
    """Combine batch records, or telemetry JSON files holding them, into run totals.

    Packing efficiency is token-weighted (all real tokens over all budgets), so a few
    small tail batches do not drag the figure down out of proportion.
    """
    records: list[BatchRecord] = []
    for source in sources:
        if isinstance(source, BatchRecord):
            records.append(source)
        else:
            records.extend(load_records(source))
    by_worker: dict[str, list[BatchRecord]] = defaultdict(list)
    for r in records:
        by_worker[r.worker].append(r)
    workers = [_summarise_worker(name, rs) for name, rs in sorted(by_worker.items())]

    sequences = sum(w.sequences for w in workers)
    tokens = sum(w.tokens for w in workers)
    budget = sum(r.token_budget for r in records)
    elapsed = max((w.span_seconds for w in workers), default=0.0)
    return RunTelemetry(
        sequences=sequences,
        tokens=tokens,
        batches=len(records),
        oom_splits=sum(w.oom_splits for w in workers),
        groups_done=len({r.group_id for r in records}),
        elapsed_seconds=elapsed,
        tokens_per_second=tokens / elapsed if elapsed > 0 else 0.0,
        sequences_per_second=sequences / elapsed if elapsed > 0 else 0.0,
        mean_tokens_per_sequence=tokens / sequences if sequences else 0.0,
        mean_utilisation=_mean(
            [r.gpu_utilisation for r in records if r.gpu_utilisation is not None]
        ),
        packing_efficiency=tokens / budget if budget > 0 else 0.0,
        workers=workers,
    )


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_bytes: int
    supports_bf16: bool


@dataclass(frozen=True)
class RunMetadata:
    """The hardware and software a run's numbers were measured on."""

    hostname: str
    python: str
    torch: str
    cuda: str | None
    driver_version: str | None
    cuda_driver_version: str | None
    cpu_model: str
    cpu_count: int
    gpus: list[GpuInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMetadata:
        values = {f.name: data[f.name] for f in fields(cls) if f.name != "gpus"}
        return cls(**values, gpus=[GpuInfo(**g) for g in data["gpus"]])


def _cpu_model() -> str:
    # platform.processor() is empty on most Linux systems; /proc/cpuinfo has the name.
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def collect_metadata(monitor: GpuMonitor | None = None) -> RunMetadata:
    """Describe this machine; works without GPUs (empty GPU list, driver None)."""
    monitor = monitor or GpuMonitor()
    driver = monitor.driver_info()
    return RunMetadata(
        hostname=socket.gethostname(),
        python=sys.version.split()[0],
        torch=torch.__version__,
        cuda=torch.version.cuda,
        driver_version=driver.driver_version if driver else None,
        cuda_driver_version=driver.cuda_driver_version if driver else None,
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        gpus=[
            GpuInfo(s.index, s.name, s.memory_total_bytes, s.supports_bf16)
            for s in monitor.sample()
        ],
    )


def group_record(summary: GroupSummary, gpu: GpuSample | None = None) -> BatchRecord | None:
    """The telemetry of one finished group (None if it was skipped), as one record.

    Sequences are the group's frames and tokens its ESM-2 tokens — ESM-2 3B is ~80% of
    the compute, and ESM tokens/s is the figure embedders are compared by — while the
    seconds cover both engines. One record per group, not per step: the engines sync
    the device once per call, so these seconds are exact (a per-step host timer would
    only time kernel launches). Packing efficiency is ESM-2's real tokens over its
    budget of steps × tokens per step.
    """
    if summary.skipped or summary.esm is None or summary.dnabert is None:
        return None
    esm = summary.esm
    return BatchRecord(
        worker=summary.worker,
        gpu=gpu.nvml_index if gpu else None,
        group_id=summary.group_id,
        model="esm2+dnabert",
        sequences=esm.sequences,
        tokens=esm.tokens,
        token_budget=max(esm.steps * summary.esm_budget, esm.tokens),
        padded_tokens=esm.tokens + esm.padding_tokens,
        seconds=summary.dnabert.seconds + esm.seconds,
        wait_seconds=summary.wait_seconds,
        started_at=summary.started_at + summary.wait_seconds,
        gpu_utilisation=gpu.utilisation_percent if gpu else None,
        gpu_memory_used=gpu.memory_used_bytes if gpu else None,
        oom_splits=summary.oom_splits,
    )
