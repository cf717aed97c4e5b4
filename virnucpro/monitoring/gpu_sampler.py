"""A worker's own GPU, read once a second for the whole run.

One sample taken when a group ends says nothing about the minutes the group ran, so
each worker runs a `GpuSampler` thread from its start to its shutdown; its readings go
into the worker's telemetry and the report averages them over the GPU stage, each
reading weighted by how long it held (`time_weighted_mean`).

The worker's own GPU is the visible device its models run on: visible index 0 unless
told otherwise, because the flow runs models on `cuda` (the current device, 0) and
dask-cuda puts each worker's own GPU first in its CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from virnucpro.monitoring.gpu_monitor import GpuMonitor

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 1.0  # seconds between readings
STOP_TIMEOUT = 10.0  # an NVML call that hangs longer than this is abandoned at shutdown


@dataclass(frozen=True)
class GpuReading:
    """One reading of one GPU; `gpu` is its NVML index (unique on the machine)."""

    time: float  # unix time
    gpu: int
    utilisation_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    power_watts: float | None
    temperature_celsius: float | None


class GpuSampler:
    """Reads one GPU every `interval` seconds on a daemon thread; thread-safe."""

    def __init__(
        self,
        monitor: GpuMonitor,
        gpu_index: int = 0,
        interval: float = SAMPLE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`gpu_index` is the visible (CUDA) index of the GPU to read; `clock` stamps
        the readings (tests drive `tick` with their own)."""
        self.monitor = monitor
        self.gpu_index = gpu_index
        self.interval = interval
        self._clock = clock
        self._readings: list[GpuReading] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> GpuReading | None:
        """Take one reading now and keep it (None when the GPU cannot be read)."""
        sample = next((s for s in self.monitor.sample() if s.index == self.gpu_index), None)
        if sample is None:
            return None
        reading = GpuReading(
            time=self._clock(),
            gpu=sample.nvml_index,
            utilisation_percent=sample.utilisation_percent,
            memory_used_bytes=sample.memory_used_bytes,
            memory_total_bytes=sample.memory_total_bytes,
            power_watts=sample.power_watts,
            temperature_celsius=sample.temperature_celsius,
        )
        with self._lock:
            self._readings.append(reading)
        return reading

    def readings(self) -> list[GpuReading]:
        with self._lock:
            return list(self._readings)

    def latest(self) -> GpuReading | None:
        with self._lock:
            return self._readings[-1] if self._readings else None

    def start(self) -> bool:
        """Start sampling on a thread, if there is a GPU to read; True if started."""
        if self._thread is not None or not self.monitor.available:
            return self._thread is not None
        self._thread = threading.Thread(target=self._run, name="virnucpro-gpu-sampler", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop the thread and release NVML."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT)
            if self._thread.is_alive():
                log.warning("GPU sampler did not stop within %.0f s; abandoned", STOP_TIMEOUT)
            self._thread = None
        self.monitor.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as error:  # a watcher must never take the worker down
                log.debug("GPU sampling failed: %s", error)
            self._stop.wait(self.interval)


def time_weighted_mean(readings: Sequence[GpuReading], start: float, end: float) -> float | None:
    """Mean utilisation over [start, end], each reading holding until the next one (the
    last until `end`); time before the first reading is not counted. None when no
    reading covers any of the window."""
    ordered = sorted(readings, key=lambda r: r.time)
    ends = [r.time for r in ordered[1:]] + [end] if ordered else []
    total = weighted = 0.0
    for reading, until in zip(ordered, ends, strict=True):
        held = min(until, end) - max(reading.time, start)
        if held > 0:
            total += held
            weighted += held * reading.utilisation_percent
    return weighted / total if total > 0 else None
