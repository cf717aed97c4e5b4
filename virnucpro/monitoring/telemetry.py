"""What each worker did, group by group and model by model, and what its GPU did.

Each Dask worker owns one `TelemetryRecorder`. When a group ends the task hands it
the group's `GroupSummary`; the recorder turns it into one `GroupRecord` (who, when,
how long, how long waiting for input and models) and one `BatchRecord` per model —
DNABERT-S and ESM-2 apart, each with its real tokens, padding tokens, steps and
seconds — appends one line per group to the throughput log every run shares
(`throughput_log`), and rewrites `telemetry-<worker>.json` with everything so far,
the GPU sampler's readings included.

A batch record is one model's pass over one group, not one step of it: the engines
sync the device once per pass, so a pass's seconds are exact, while a host timer
around each step would only time kernel launches.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from virnucpro.atomic_write import write_text
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.gpu_sampler import GpuReading, GpuSampler

if TYPE_CHECKING:
    from virnucpro.monitoring.throughput_log import ThroughputLog
    from virnucpro.run.group_inference import GroupSummary

ESM = "esm2"
DNABERT = "dnabert"
MODELS = (DNABERT, ESM)  # in the order a group runs them


@dataclass(frozen=True)
class RunEvent:
    """Something that happened during the GPU stage: "group_done", "group_skipped",
    "oom_split", "stolen" (Dask moved a queued group to another worker) or "failed"
    (a group whose retries were spent)."""

    time: float
    kind: str
    worker: str
    detail: str = ""


@dataclass(frozen=True)
class GroupRecord:
    """One group on one worker: from reading its frames to writing its scores.

    `wait_seconds` is the part before embedding (reading the group, loading models on
    the first group); `reused` marks a group whose complete result an earlier run
    wrote, with that run's figures."""

    worker: str
    gpu: int | None  # NVML index of the worker's GPU; None on a CPU worker
    group_id: str
    frames: int
    started_at: float  # unix time
    seconds: float
    wait_seconds: float
    reused: bool = False

    @property
    def ended_at(self) -> float:
        return self.started_at + self.seconds


@dataclass(frozen=True)
class BatchRecord:
    """One model's pass over one group (see the module docstring).

    `tokens` are real tokens (special tokens included); `padding_tokens` were computed
    only to fill a step (DNABERT-S pads to the longest sequence of a step, compiled
    ESM-2 to an aligned size)."""

    worker: str
    gpu: int | None
    group_id: str
    model: str  # ESM or DNABERT
    sequences: int
    tokens: int
    padding_tokens: int
    steps: int
    seconds: float
    started_at: float
    oom_splits: int = 0
    reused: bool = False

    @property
    def ended_at(self) -> float:
        return self.started_at + self.seconds


def records_of(
    summary: GroupSummary, gpu: int | None = None
) -> tuple[GroupRecord, list[BatchRecord]]:
    """A group's summary as telemetry records. A group runs DNABERT-S, then ESM-2,
    after its wait, so each pass starts where the previous one ended."""
    group = GroupRecord(
        worker=summary.worker,
        gpu=gpu,
        group_id=summary.group_id,
        frames=summary.frames,
        started_at=summary.started_at,
        seconds=summary.seconds,
        wait_seconds=summary.wait_seconds,
        reused=summary.skipped,
    )
    batches = []
    started = summary.started_at + summary.wait_seconds
    for model, stats in ((DNABERT, summary.dnabert), (ESM, summary.esm)):
        if stats is None:  # a reused result stored before summaries were kept
            continue
        batches.append(
            BatchRecord(
                worker=summary.worker,
                gpu=gpu,
                group_id=summary.group_id,
                model=model,
                sequences=stats.sequences,
                tokens=stats.tokens,
                padding_tokens=stats.padding_tokens,
                steps=stats.steps,
                seconds=stats.seconds,
                started_at=started,
                oom_splits=stats.oom_splits,
                reused=summary.skipped,
            )
        )
        started += stats.seconds
    return group, batches


@dataclass(frozen=True)
class WorkerTelemetry:
    """Everything one worker recorded in one run (its `telemetry-<worker>.json`)."""

    worker: str
    groups: list[GroupRecord] = field(default_factory=list)
    batches: list[BatchRecord] = field(default_factory=list)
    gpu_readings: list[GpuReading] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerTelemetry:
        return cls(
            worker=data["worker"],
            groups=[GroupRecord(**g) for g in data["groups"]],
            batches=[BatchRecord(**b) for b in data["batches"]],
            gpu_readings=[GpuReading(**r) for r in data["gpu_readings"]],
        )


def load_worker_telemetry(path: Path | str) -> WorkerTelemetry:
    """Read a `telemetry-<worker>.json` written by `TelemetryRecorder.write`."""
    return WorkerTelemetry.from_dict(json.loads(Path(path).read_text()))


class TelemetryRecorder:
    """Collects one worker's records; thread-safe (tasks and Prometheus scrapes overlap)."""

    def __init__(
        self,
        worker: str,
        out_dir: Path | str,
        sampler: GpuSampler | None = None,
        throughput_log: ThroughputLog | None = None,
    ) -> None:
        """`out_dir` holds this run's JSON; `sampler` (if any) reads the worker's GPU;
        `throughput_log` (if any) gets one line per group."""
        self.worker = worker
        self.out_dir = Path(out_dir)
        self.sampler = sampler
        self.throughput_log = throughput_log
        self._groups: list[GroupRecord] = []
        self._batches: list[BatchRecord] = []
        self._lock = threading.Lock()

    @property
    def json_path(self) -> Path:
        return self.out_dir / f"telemetry-{self.worker}.json"

    @property
    def gpu(self) -> int | None:
        """NVML index of the worker's GPU, once the sampler has read it."""
        latest = self.sampler.latest() if self.sampler else None
        return latest.gpu if latest else None

    def record(self, summary: GroupSummary) -> None:
        """Keep a computed group's records and append its line to the throughput log."""
        group, batches = records_of(summary, self.gpu)
        with self._lock:
            self._groups.append(group)
            self._batches.extend(batches)
        if self.throughput_log is not None:
            self.throughput_log.append(group, batches)

    def batches(self) -> list[BatchRecord]:
        with self._lock:
            return list(self._batches)

    def groups(self) -> list[GroupRecord]:
        with self._lock:
            return list(self._groups)

    def telemetry(self) -> WorkerTelemetry:
        readings = self.sampler.readings() if self.sampler else []
        with self._lock:
            return WorkerTelemetry(self.worker, list(self._groups), list(self._batches), readings)

    def write(self) -> Path:
        """Rewrite this worker's JSON atomically, so a reader never sees half a file and
        a killed worker loses nothing already written."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.json_path, json.dumps(self.telemetry().to_dict()))
        return self.json_path


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
