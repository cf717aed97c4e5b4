"""Where the GPU tasks run: cluster choice and worker setup in one place.

- a scheduler address given → connect to that existing Dask cluster;
- GPUs visible (counted through NVML, so this process never creates a CUDA context
  before the workers own the GPUs) → `dask_cuda.LocalCUDACluster`, one worker per GPU
  (`--gpus 0,2` picks them);
- no GPU → `distributed.LocalCluster` with CPU workers: the same code path.

Every worker advertises one `GPU` resource and runs one task thread, so a GPU runs one
group at a time. A local cluster's dashboard also serves our page (`tasks.dask_page`).
Workers inherit this process's environment at start, which is how they learn the run's
Prefect API URL (see `tasks.local_api`).
"""

from __future__ import annotations

import importlib.util
import logging
import uuid
from pathlib import Path

from prefect_dask import DaskTaskRunner

from tasks import dask_page
from virnucpro.deadline import call_with_deadline
from virnucpro.errors import VirNucProError
from virnucpro.models.precision import Precision, resolved_precision
from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.run.config import ClusterConfig

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"
# Seconds an existing cluster has to answer the checks before submitting.
CLUSTER_DEADLINE = 30


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


def run_precision(cluster: ClusterConfig, precision: Precision, work_dir: Path) -> str:
    """The precision the run's workers will use (`auto` resolved), known before they
    start so results are keyed by it. Local: from NVML; an existing cluster: asked of
    its GPU workers (checked first, `check_existing_cluster`), which must agree."""
    if cluster.scheduler_address:
        capabilities = set(check_existing_cluster(cluster.scheduler_address, work_dir).values())
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


def check_existing_cluster(address: str, work_dir: Path) -> dict[str, tuple[int, int] | None]:
    """Before submitting to a cluster the user runs: some workers must advertise the
    `GPU` resource (else tasks would wait for ever) and all of those must read the
    run's work directory at the same path. Answers within CLUSTER_DEADLINE seconds or
    says why not. Returns each GPU worker's compute capability (None: no GPU)."""
    from distributed import Client

    def inspect() -> dict[str, tuple[int, int] | None]:
        with Client(address, timeout=f"{CLUSTER_DEADLINE}s") as client:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            gpu_workers = [
                a for a, w in workers.items() if w.get("resources", {}).get(GPU_RESOURCE)
            ]
            if not gpu_workers:
                raise VirNucProError(
                    f"none of the {len(workers)} worker(s) of the Dask cluster at {address} "
                    f"advertises the {GPU_RESOURCE} resource, so no group would ever start: "
                    f"start one worker per GPU with `dask cuda worker {address} "
                    f"--resources {GPU_RESOURCE}=1` (CPU only: `dask worker {address} "
                    f"--nthreads 1 --resources {GPU_RESOURCE}=1`)"
                )
            token = _visibility_token(work_dir)
            seen = client.run(_reads_token, str(token), token.read_text(), workers=gpu_workers)
            token.unlink()
            blind = sorted(a for a, ok in seen.items() if not ok)
            if blind:
                raise VirNucProError(
                    f"worker(s) {', '.join(blind)} cannot read the run's work directory "
                    f"{work_dir.resolve()}: the output directory must be on a filesystem "
                    "every worker shares (e.g. NFS), at the same path"
                )
            return client.run(_gpu_capability, workers=gpu_workers)

    try:
        return call_with_deadline(inspect, CLUSTER_DEADLINE, f"the Dask cluster at {address}")
    except (TimeoutError, OSError) as error:
        raise VirNucProError(
            f"cannot use the Dask cluster at {address}: {error} (is `dask scheduler` "
            "running there, and reachable from here?)"
        ) from None


def _visibility_token(work_dir: Path) -> Path:
    """A file with unique content in the work directory, for workers to read back."""
    work_dir.mkdir(parents=True, exist_ok=True)
    token = work_dir / f".cluster-check-{uuid.uuid4().hex}"
    token.write_text(token.name)
    return token


def _reads_token(path: str, content: str) -> bool:
    """On a worker: whether it sees the flow's file, with the same content."""
    try:
        return Path(path).read_text() == content
    except OSError:
        return False


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
        "preload": ["tasks.worker_setup"],  # interrupts stop workers fast and quietly
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
