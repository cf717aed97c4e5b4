"""Where GPU tasks run: one group per GPU at a time, and the cluster choice."""

import importlib.util
import time

import dask
import pytest
from distributed import LocalCluster
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

from tasks.cluster import GPU_RESOURCE, local_gpus, task_runner, worker_gpus
from virnucpro.errors import VirNucProError
from virnucpro.run.config import ClusterConfig


@task
def hold(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


@flow
def two_gpu_tasks() -> list[tuple[float, float]]:
    with dask.annotate(resources={GPU_RESOURCE: 1}):
        futures = [hold.submit(1.0), hold.submit(1.0)]
    return [f.result() for f in futures]


def test_gpu_tasks_take_turns_on_a_worker_with_spare_threads(monkeypatch):
    # One worker with two threads but one GPU: the two tasks must not overlap.
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with (
        prefect_test_harness(),
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            resources={GPU_RESOURCE: 1},
            dashboard_address=":0",
        ) as cluster,
    ):
        runner = task_runner(ClusterConfig(scheduler_address=cluster.scheduler_address))
        (first, second) = sorted(two_gpu_tasks.with_options(task_runner=runner)())
    assert second[0] >= first[1] - 0.05


def test_without_gpus_the_local_cluster_runs_cpu_workers(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    spec = ClusterConfig(cpu_workers=3)
    assert local_gpus(spec) == ()
    assert worker_gpus(spec) == {}
    runner = task_runner(spec)
    assert runner.cluster_kwargs["n_workers"] == 3
    assert runner.cluster_kwargs["resources"] == {GPU_RESOURCE: 1}
    assert runner.cluster_kwargs["threads_per_worker"] == 1


def test_chosen_gpus_get_one_worker_each():
    spec = ClusterConfig(gpus=(0, 2))
    assert worker_gpus(spec) == {"0": 0, "1": 2}
    pytest.importorskip("dask_cuda")  # the `gpu` extra
    runner = task_runner(spec)
    assert runner.cluster_kwargs["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert runner.cluster_kwargs["resources"] == {GPU_RESOURCE: 1}


def test_an_existing_scheduler_is_used_as_given():
    runner = task_runner(ClusterConfig(scheduler_address="tcp://127.0.0.1:8786"))
    assert runner.address == "tcp://127.0.0.1:8786"


def test_gpus_without_dask_cuda_get_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VirNucProError, match=r"1 GPU\(s\) visible but dask-cuda is not installed"):
        task_runner(ClusterConfig(gpus=(0,)))


@pytest.mark.gpu
@pytest.mark.skipif(not local_gpus(ClusterConfig()), reason="needs a GPU seen by NVML")
def test_the_local_cuda_cluster_gives_each_worker_its_own_gpu(monkeypatch):
    """The cluster a GPU machine gets: dask-cuda, one worker per GPU with the resource,
    each seeing its own device first (what the group task's torch and NVML rely on)."""
    pytest.importorskip("dask_cuda")
    from distributed import Client

    from virnucpro.monitoring.gpu_monitor import GpuMonitor

    gpus = local_gpus(ClusterConfig())
    runner = task_runner(ClusterConfig())
    cluster = runner.cluster_class(**{**runner.cluster_kwargs, "dashboard_address": ":0"})
    try:
        with Client(cluster) as client:
            seen = client.run(lambda: [s.uuid for s in GpuMonitor().sample()])
            info = client.scheduler_info(n_workers=-1)["workers"].values()
    finally:
        cluster.close()
    assert len(seen) == len(gpus)
    assert len({uuids[0] for uuids in seen.values()}) == len(gpus)  # each its own first GPU
    assert all(w["resources"] == {GPU_RESOURCE: 1} and w["nthreads"] == 1 for w in info)


def test_local_workers_stop_at_once_when_their_task_is_abandoned(monkeypatch):
    """The local cluster's workers (`tasks.worker_setup`) leave the flow's session, so a
    Ctrl-C reaches only the flow, and closing the cluster under a running task (the run
    was stopped) ends them at once instead of waiting for the task or the nanny's kill."""
    import os

    from distributed import Client

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    runner = task_runner(ClusterConfig(cpu_workers=1))
    cluster = LocalCluster(**{**runner.cluster_kwargs, "dashboard_address": ":0"})
    client = Client(cluster)
    try:
        sessions = client.run(os.getsid, 0)
        assert os.getsid(0) not in sessions.values()
        running = client.submit(time.sleep, 120, resources={GPU_RESOURCE: 1})
        deadline = time.monotonic() + 60
        while not any(client.run(lambda dask_worker: len(dask_worker.active_threads)).values()):
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        (worker_pid,) = client.run(os.getpid).values()
        del running
    finally:
        closing = time.monotonic()
        client.close()
        cluster.close()
    assert time.monotonic() - closing < 3  # the nanny alone would wait 4 s, then kill
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
