"""Our GPU and throughput figures on the Dask workers' own Prometheus endpoint.

Each Dask worker already serves `/metrics` on its dashboard port, rendering
prometheus_client's process-wide default REGISTRY. Registering one extra collector in
that registry puts `virnucpro_*` metrics next to Dask's own, so one Prometheus scrape
config (dashboards/README.md) covers both and no extra port is opened.

The collector reads live values when scraped (pull, not push): the worker's own GPU
from its `GpuSampler`'s latest reading (labelled with the GPU's NVML index, unique on
the machine), and counters from its `TelemetryRecorder`. Throughput is not a gauge
here: Grafana takes `rate()` of the token counters, i.e. tokens per wall-clock
second, the report's definition (`run_telemetry`) over a sliding window.

The Dask worker plugin that installs it on every worker lives in
`tasks/worker_telemetry.py`: the library does not know Dask.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from virnucpro.monitoring.gpu_sampler import GpuSampler
from virnucpro.monitoring.run_telemetry import packing_efficiency
from virnucpro.monitoring.telemetry import MODELS, TelemetryRecorder

GPU_GAUGES = {
    "utilisation_percent": "GPU compute utilisation (%)",
    "memory_used_bytes": "GPU memory in use (bytes)",
    "memory_total_bytes": "GPU memory size (bytes)",
    "temperature_celsius": "GPU temperature (°C)",
    "power_watts": "GPU power draw (W)",
}
MODEL_COUNTERS = {  # metric name: (BatchRecord attribute, documentation)
    "tokens": ("tokens", "Real tokens computed, by model"),
    "padding_tokens": ("padding_tokens", "Padding tokens computed to fill steps, by model"),
    "compute_seconds": ("seconds", "Seconds of compute, by model"),
}


class VirnucproCollector:
    """A prometheus_client custom collector; its sources can be swapped while registered."""

    def __init__(
        self, sampler: GpuSampler | None = None, recorder: TelemetryRecorder | None = None
    ) -> None:
        self.sampler = sampler
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        yield from self._gpu_metrics()
        yield from self._work_metrics()

    def _gpu_metrics(self) -> Iterator[Metric]:
        reading = self.sampler.latest() if self.sampler else None
        for attribute, documentation in GPU_GAUGES.items():
            family = GaugeMetricFamily(f"virnucpro_gpu_{attribute}", documentation, labels=["gpu"])
            value = getattr(reading, attribute) if reading else None
            if value is not None:
                family.add_metric([str(reading.gpu)], value)
            yield family

    def _work_metrics(self) -> Iterator[Metric]:
        batches = self.recorder.batches() if self.recorder else []
        for name, (attribute, documentation) in MODEL_COUNTERS.items():
            family = CounterMetricFamily(f"virnucpro_{name}", documentation, labels=["model"])
            for model in MODELS:
                total = sum(getattr(b, attribute) for b in batches if b.model == model)
                family.add_metric([model], total)
            yield family
        packing = GaugeMetricFamily(
            "virnucpro_packing_efficiency",
            "Real tokens over all tokens computed (padding included), this worker's run so far",
        )
        if (efficiency := packing_efficiency(batches)) is not None:
            packing.add_metric([], efficiency)
        yield packing
        groups = self.recorder.groups() if self.recorder else []
        yield CounterMetricFamily(
            "virnucpro_sequences_processed",
            "Frames embedded and classified on this worker",
            value=sum(g.frames for g in groups),
        )
        yield CounterMetricFamily(
            "virnucpro_groups_done", "Groups this worker computed", value=len(groups)
        )
        yield CounterMetricFamily(
            "virnucpro_oom_splits",
            "Batches split in two after a CUDA out-of-memory error",
            value=sum(b.oom_splits for b in batches),
        )


_collector: VirnucproCollector | None = None
_lock = threading.Lock()


def register_collector(
    sampler: GpuSampler | None = None,
    recorder: TelemetryRecorder | None = None,
    registry: Any = None,
) -> VirnucproCollector:
    """Register the collector once per process; later calls only swap in new sources.

    Idempotent because a worker process may be set up more than once (plugin re-runs,
    several in-process workers in tests) and prometheus_client rejects duplicate names.
    `registry` defaults to the global REGISTRY that Dask's /metrics renders.
    """
    global _collector
    with _lock:
        if _collector is None:
            _collector = VirnucproCollector(sampler, recorder)
            (registry or REGISTRY).register(_collector)
        else:
            if sampler is not None:
                _collector.sampler = sampler
            if recorder is not None:
                _collector.recorder = recorder
        return _collector
