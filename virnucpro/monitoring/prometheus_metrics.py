"""Our GPU and throughput figures on the Dask workers' own Prometheus endpoint.

Each Dask worker already serves `/metrics` on its dashboard port, rendering
prometheus_client's process-wide default REGISTRY. Registering one extra collector in
that registry puts `virnucpro_*` metrics next to Dask's own, so one Prometheus scrape
config (dashboards/README.md) covers both and no extra port is opened.

The collector reads live values when scraped (pull, not push): GPU gauges from the
process's `GpuMonitor` (cached, so frequent scrapes cost nothing), throughput and
counters from the worker's `TelemetryRecorder`.

The Dask worker plugin that installs it on every worker lives in
`tasks/worker_telemetry.py`: the library does not know Dask.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.telemetry import BatchRecord, TelemetryRecorder

logger = logging.getLogger(__name__)

# Throughput gauges average over each model's latest batches: one batch is too noisy,
# the whole run too slow to show a slowdown.
RECENT_BATCHES = 10


def _recent_by_model(records: list[BatchRecord]) -> dict[str, list[BatchRecord]]:
    by_model: dict[str, list[BatchRecord]] = defaultdict(list)
    for record in records:
        by_model[record.model].append(record)
    return {model: rs[-RECENT_BATCHES:] for model, rs in by_model.items()}


class VirnucproCollector:
    """A prometheus_client custom collector; its sources can be swapped while registered."""

    def __init__(
        self, monitor: GpuMonitor | None = None, recorder: TelemetryRecorder | None = None
    ) -> None:
        self.monitor = monitor
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        yield from self._gpu_metrics()
        yield from self._throughput_metrics()

    def _gpu_metrics(self) -> Iterator[Metric]:
        gauges = {
            "utilisation_percent": ("GPU compute utilisation (%)", "utilisation_percent"),
            "memory_used_bytes": ("GPU memory in use (bytes)", "memory_used_bytes"),
            "memory_total_bytes": ("GPU memory size (bytes)", "memory_total_bytes"),
            "temperature_celsius": ("GPU temperature (°C)", "temperature_celsius"),
            "power_watts": ("GPU power draw (W)", "power_watts"),
        }
        samples = self.monitor.sample() if self.monitor else []
        for suffix, (documentation, attribute) in gauges.items():
            family = GaugeMetricFamily(f"virnucpro_gpu_{suffix}", documentation, labels=["gpu"])
            for sample in samples:
                value = getattr(sample, attribute)
                if value is not None:
                    family.add_metric([str(sample.index)], value)
            yield family

    def _throughput_metrics(self) -> Iterator[Metric]:
        records = self.recorder.records() if self.recorder else []
        recent = _recent_by_model(records)
        tokens_per_second = GaugeMetricFamily(
            "virnucpro_tokens_per_second",
            f"Real tokens per forward-pass second over the last {RECENT_BATCHES} batches",
            labels=["model"],
        )
        for model, batches in sorted(recent.items()):
            seconds = sum(r.seconds for r in batches)
            rate = sum(r.tokens for r in batches) / seconds if seconds > 0 else 0.0
            tokens_per_second.add_metric([model], rate)
        yield tokens_per_second

        packing = GaugeMetricFamily(
            "virnucpro_packing_efficiency",
            f"Real tokens over token budget, last {RECENT_BATCHES} batches of all models",
        )
        latest = [r for batches in recent.values() for r in batches]
        budget = sum(r.token_budget for r in latest)
        if budget > 0:
            packing.add_metric([], sum(r.tokens for r in latest) / budget)
        yield packing

        yield CounterMetricFamily(
            "virnucpro_sequences_processed",
            "Sequences embedded on this worker",
            value=sum(r.sequences for r in records),
        )
        yield CounterMetricFamily(
            "virnucpro_groups_done",
            "Groups this worker has embedded batches for",
            value=len({r.group_id for r in records}),
        )
        yield CounterMetricFamily(
            "virnucpro_oom_splits",
            "Batches split in two after a CUDA out-of-memory error",
            value=sum(r.oom_splits for r in records),
        )


_collector: VirnucproCollector | None = None
_lock = threading.Lock()


def register_collector(
    monitor: GpuMonitor | None = None,
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
            _collector = VirnucproCollector(monitor, recorder)
            (registry or REGISTRY).register(_collector)
        else:
            if monitor is not None:
                _collector.monitor = monitor
            if recorder is not None:
                _collector.recorder = recorder
        return _collector
