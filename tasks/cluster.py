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
from pathlib import Path

from prefect_dask import DaskTaskRunner

from tasks import dask_page
from virnucpro.errors import VirNucProError
from virnucpro.models.precision import Precision, resolved_precision
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.run.config import ClusterConfig

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"


def local_gpus(cluster: ClusterConfig) -> tuple[int, ...]:
    """The GPUs a local cluster gets: those chosen, else every visible one."""
    if cluster.gpus is not None:
        return cluster.gpus
    return tuple(range(len(GpuMonitor().sample())))


def worker_gpus(cluster: ClusterConfig) -> dict[str, int]:
    """Worker name → GPU for a local CUDA cluster (dask-cuda names workers 0, 1, … in
    the order of the GPUs it was given); empty for CPU or remote workers."""
    if cluster.scheduler_address:
        return {}
    return {str(i): gpu for i, gpu in enumerate(local_gpus(cluster))}


def run_precision(cluster: ClusterConfig, precision: Precision) -> str:
    """The precision the run's workers will use (`auto` resolved), known before they
    start so results are keyed by it. Local: from NVML; an existing cluster: asked of
    its workers, which must agree."""
    if cluster.scheduler_address:
        from distributed import Client

        with Client(cluster.scheduler_address, timeout="30s") as client:
            capabilities = set(client.run(_gpu_capability).values())
    else:
        chosen = set(local_gpus(cluster))
        samples = [s for s in GpuMonitor().sample() if s.index in chosen]
        capabilities = {s.compute_capability for s in samples} or {None}
    resolved = {resolved_precision(precision, c) for c in capabilities}
    if len(resolved) > 1:
        raise VirNucProError(
            f"--precision {precision} means {' on some workers and '.join(sorted(resolved))} "
            "on others (their GPUs differ); choose one with --precision"
        )
    return resolved.pop()


def _gpu_capability() -> tuple[int, int] | None:
    """On a worker: its first visible GPU's compute capability, None without a GPU."""
    samples = GpuMonitor().sample()
    return tuple(samples[0].compute_capability) if samples else None


def task_runner(cluster: ClusterConfig, performance_report: Path | None = None) -> DaskTaskRunner:
    """A DaskTaskRunner for `cluster`; it starts (and stops) a local cluster if needed."""
    report = str(performance_report) if performance_report else None
    if cluster.scheduler_address:
        return DaskTaskRunner(address=cluster.scheduler_address, performance_report_path=report)
    dask_page.register()  # the local scheduler will run in this process
    common = {
        "threads_per_worker": 1,
        "resources": {GPU_RESOURCE: 1},
        "dashboard_address": ":8787",
    }
    gpus = local_gpus(cluster)
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
        cluster_kwargs={**common, "n_workers": cluster.cpu_workers, "processes": True},
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
