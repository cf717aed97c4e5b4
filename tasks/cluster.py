"""Where the GPU tasks run: cluster choice and worker setup in one place.

- a scheduler address given → connect to that existing Dask cluster;
- GPUs visible (counted through NVML, so this process never creates a CUDA context
  before the workers own the GPUs) → `dask_cuda.LocalCUDACluster`, one worker per GPU
  (`--gpus 0,2` picks them);
- no GPU → `distributed.LocalCluster` with CPU workers: the same code path.

Every worker advertises one `GPU` resource and runs one task thread, so a GPU runs one
group at a time. A local cluster's dashboard also serves our page (`tasks.dask_page`).
Workers inherit this process's environment at start, which is how they learn the run's
Prefect API URL (see `ensure_prefect_api`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from prefect_dask import DaskTaskRunner

from tasks import dask_page
from virnucpro.errors import VirNucProError
from virnucpro.gpu_monitor import GpuMonitor

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"


@dataclass(frozen=True)
class ClusterSpec:
    """How to get workers: an address, or which GPUs / how many CPU workers locally."""

    scheduler_address: str | None = None
    gpus: tuple[int, ...] | None = None  # None: every visible GPU
    cpu_workers: int = 1  # used only on a machine without GPUs

    def local_gpus(self) -> tuple[int, ...]:
        if self.gpus is not None:
            return self.gpus
        return tuple(range(len(GpuMonitor().sample())))

    def worker_gpus(self) -> dict[str, int]:
        """Worker name → GPU for a local CUDA cluster (dask-cuda names workers 0, 1, …
        in the order of the GPUs it was given); empty for CPU or remote workers."""
        if self.scheduler_address:
            return {}
        return {str(i): gpu for i, gpu in enumerate(self.local_gpus())}

    def worker_count(self) -> int:
        """Workers the run will have (for planning groups before the cluster starts)."""
        if self.scheduler_address:
            from distributed import Client

            with Client(self.scheduler_address, timeout="30s") as client:
                return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        return len(self.local_gpus()) or self.cpu_workers


def task_runner(spec: ClusterSpec, performance_report: Path | None = None) -> DaskTaskRunner:
    """A DaskTaskRunner for `spec`; it starts (and stops) a local cluster if needed."""
    report = str(performance_report) if performance_report else None
    if spec.scheduler_address:
        return DaskTaskRunner(address=spec.scheduler_address, performance_report_path=report)
    dask_page.register()  # the local scheduler will run in this process
    common = {
        "threads_per_worker": 1,
        "resources": {GPU_RESOURCE: 1},
        "dashboard_address": ":8787",
    }
    gpus = spec.local_gpus()
    if gpus:
        if importlib.util.find_spec("dask_cuda") is None:
            raise VirNucProError(
                f"{len(gpus)} GPU(s) visible but dask-cuda is not installed: "
                "pip install 'virnucpro[gpu]' (or hide the GPUs with CUDA_VISIBLE_DEVICES=)"
            )
        return DaskTaskRunner(
            cluster_class="dask_cuda.LocalCUDACluster",
            cluster_kwargs={**common, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))},
            performance_report_path=report,
        )
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={**common, "n_workers": spec.cpu_workers, "processes": True},
        performance_report_path=report,
    )


def ensure_prefect_api() -> str | None:
    """Give the whole run one Prefect API.

    With no `PREFECT_API_URL` configured, Prefect would start a temporary server in
    this process and another in every Dask worker, each with its own database, so
    task runs would not show up together. Start one here and export its URL so the
    workers (started later, inheriting the environment) report to it. Returns the URL
    started, or None when one was configured already.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    log.info("started a local Prefect API for this run at %s", server.api_url)
    return server.api_url
