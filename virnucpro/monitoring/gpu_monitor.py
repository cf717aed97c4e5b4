"""What the GPUs are doing right now, read through NVML.

Each worker's GPU sampler (`gpu_sampler`), the flow's terminal view and the cluster
set-up ask for GPU state, sometimes from different threads; a `GpuMonitor` answers
from a short-lived cache so NVML is queried at most once per `max_age` seconds.

On a machine without NVML (CPU-only laptops, CI) the monitor is simply unavailable:
`sample()` returns an empty list and one debug line is logged, nothing more, so
CPU runs stay quiet.

GPU indices are the *visible* indices CUDA and torch use inside this process. When
CUDA_VISIBLE_DEVICES is set (dask-cuda sets it per worker) visible index i is mapped to
the NVML device its i-th entry names (an integer NVML index or a UUID prefix). Like
dask-cuda we assume CUDA enumerates devices in PCI bus order, as NVML does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pynvml

from virnucpro.models.precision import bf16_capable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuSample:
    """One reading of one GPU; `index` is the visible (CUDA/torch) index."""

    index: int
    nvml_index: int
    name: str
    uuid: str
    utilisation_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    temperature_celsius: float | None
    power_watts: float | None
    energy_millijoules: int | None
    compute_capability: tuple[int, int]
    supports_bf16: bool
    sampled_at: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (the capability tuple becomes a list)."""
        return asdict(self)


@dataclass(frozen=True)
class DriverInfo:
    """Driver versions as NVML reports them, e.g. ("550.54.15", "12.4")."""

    driver_version: str
    cuda_driver_version: str


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Split CUDA_VISIBLE_DEVICES into entries; None means "all devices visible".

    CUDA ignores everything from the first invalid entry on, so an entry that is
    neither an integer nor a GPU UUID ends the list here too. MIG instance UUIDs
    ("MIG-...") are not mapped: NVML reports MIG slices through other calls.
    """
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not (entry.isdigit() or entry.startswith("GPU-")):
            break
        entries.append(entry)
    return entries


def _decode(value: str | bytes) -> str:
    # Older nvidia-ml-py releases return bytes, newer ones str.
    return value.decode() if isinstance(value, bytes) else value


def _optional(query: Callable[[], Any]) -> Any:
    """Run an NVML query that some GPUs do not support (power, energy on old boards)."""
    try:
        return query()
    except pynvml.NVMLError:
        return None


class GpuMonitor:
    """Thread-safe, cached NVML sampling for the GPUs visible to this process."""

    def __init__(
        self,
        max_age: float = 1.0,
        visible_devices: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`visible_devices` defaults to this process's CUDA_VISIBLE_DEVICES."""
        self.max_age = max_age
        self._visible = parse_visible_devices(
            visible_devices
            if visible_devices is not None
            else os.environ.get("CUDA_VISIBLE_DEVICES")
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._initialised: bool | None = None  # None: not tried yet
        self._nvml_indices: list[int] = []
        self._cache: list[GpuSample] = []
        self._cached_at: float | None = None

    @property
    def available(self) -> bool:
        """True when NVML works here and at least one GPU is visible."""
        with self._lock:
            self._ensure_initialised()
            return bool(self._initialised and self._nvml_indices)

    def sample(self) -> list[GpuSample]:
        """Current readings of every visible GPU, at most `max_age` seconds old."""
        with self._lock:
            self._ensure_initialised()
            if not self._initialised or not self._nvml_indices:
                return []
            now = self._clock()
            if self._cached_at is None or now - self._cached_at >= self.max_age:
                try:
                    self._cache = [
                        self._read(visible, nvml_index)
                        for visible, nvml_index in enumerate(self._nvml_indices)
                    ]
                except pynvml.NVMLError as error:
                    # A GPU that falls off the bus mid-run should not kill the run that
                    # is only being watched; keep the last good readings.
                    logger.debug("NVML sampling failed, keeping last readings: %s", error)
                self._cached_at = now
            return list(self._cache)

    def driver_info(self) -> DriverInfo | None:
        """Driver and CUDA driver versions, or None without NVML."""
        with self._lock:
            self._ensure_initialised()
            if not self._initialised:
                return None
            try:
                cuda = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12040
                driver = _decode(pynvml.nvmlSystemGetDriverVersion())
            except pynvml.NVMLError as error:
                logger.debug("NVML driver query failed: %s", error)
                return None
            return DriverInfo(driver, f"{cuda // 1000}.{cuda % 1000 // 10}")

    def close(self) -> None:
        """Release NVML (reference-counted by NVML, so other users are unaffected); the
        sampler does when its worker shuts down."""
        with self._lock:
            if self._initialised:
                pynvml.nvmlShutdown()
            self._initialised = None
            self._cached_at = None

    def _ensure_initialised(self) -> None:
        if self._initialised is not None:
            return
        try:
            pynvml.nvmlInit()
            self._nvml_indices = self._map_visible(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError as error:
            logger.debug("NVML unavailable, GPU monitoring is off: %s", error)
            self._initialised = False
            return
        self._initialised = True

    def _map_visible(self, count: int) -> list[int]:
        """NVML index of each visible device, in visible order."""
        if self._visible is None:
            return list(range(count))
        uuids = [
            _decode(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
            for i in range(count)
        ]
        indices: list[int] = []
        for entry in self._visible:
            if entry.isdigit():
                match = int(entry) if int(entry) < count else None
            else:
                match = next((i for i, uuid in enumerate(uuids) if uuid.startswith(entry)), None)
            if match is None:
                break  # CUDA stops at the first device it cannot find, so do we
            indices.append(match)
        return indices

    def _read(self, visible: int, nvml_index: int) -> GpuSample:
        handle = pynvml.nvmlDeviceGetHandleByIndex(nvml_index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        capability = tuple(pynvml.nvmlDeviceGetCudaComputeCapability(handle))
        power_mw = _optional(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
        return GpuSample(
            index=visible,
            nvml_index=nvml_index,
            name=_decode(pynvml.nvmlDeviceGetName(handle)),
            uuid=_decode(pynvml.nvmlDeviceGetUUID(handle)),
            utilisation_percent=float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            memory_used_bytes=int(memory.used),
            memory_total_bytes=int(memory.total),
            temperature_celsius=_optional(
                lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
            ),
            power_watts=None if power_mw is None else power_mw / 1000.0,
            energy_millijoules=_optional(
                lambda: int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            ),
            compute_capability=(int(capability[0]), int(capability[1])),
            supports_bf16=bf16_capable(capability),
            sampled_at=time.time(),
        )
