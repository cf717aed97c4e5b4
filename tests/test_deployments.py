"""deployments/: the Prefect project file deploys, and its deployment runs the flow.

Everything goes through the commands deployments/README.md gives users: a Prefect server
started with `prefect server start`, `prefect work-pool create`, `prefect deploy` and a
process worker (`prefect worker start`), each a subprocess with its own PREFECT_HOME.
The run uses the small random-weight models on a 2-read FASTA file.
"""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from inspect import signature
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments import serve
from flows.predict import predict
from virnucpro.demo_models.random_models import write_demo_models

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILE = ROOT / "deployments" / "prefect.yaml"
POOL = "virnucpro-gpu"
SET_WORKING_DIRECTORY = "prefect.deployments.steps.set_working_directory"
RUN_TIMEOUT_S = 240
PREFECT = (sys.executable, "-m", "prefect")  # the CLI of this venv, on PATH or not


def project() -> dict:
    return yaml.safe_load(PROJECT_FILE.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prefect_cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> str:
    """Run `prefect ARGS` as a user would; fail the test with its output if it fails."""
    result = subprocess.run(
        [*PREFECT, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, (
        f"prefect {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A `prefect server start` of our own and the environment that points at it.

    Other test modules may have a Prefect API configured in this process; PREFECT_*
    variables are dropped so the subprocesses see only this server and home."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
    )
    log = home / "server.log"  # a file, not a pipe nobody reads, which could fill and block
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env={key: value for key, value in env.items() if key != "PREFECT_API_URL"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                pytest.fail(f"prefect server did not start:\n{log.read_text()}")
            time.sleep(0.5)
        prefect_cli(env, "work-pool", "create", POOL, "--type", "process")
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def read_deployment(env: dict[str, str], name: str) -> DeploymentResponse:
    with (
        temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        return client.read_deployment_by_name(name)


def test_project_file_deploys_with_schedule_parameters_pool_and_limit(prefect_env) -> None:
    prefect_cli(
        prefect_env, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all"
    )
    spec = project()["deployments"][0]
    deployment = read_deployment(prefect_env, f"virnucpro-predict/{spec['name']}")

    assert deployment.entrypoint == "flows/predict.py:predict"
    assert deployment.work_pool_name == POOL
    # one run at a time, the next one waiting (the GPUs are not shared)
    assert deployment.global_concurrency_limit is not None
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    [schedule] = deployment.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert schedule.active
    assert schedule.schedule.cron == spec["schedules"][0]["cron"]
    assert schedule.schedule.timezone == spec["schedules"][0]["timezone"]
    assert deployment.parameters == spec["parameters"]
    assert deployment.parameters["chunk_length"] == 300
    assert deployment.parameters["trust_remote_code"] is True
    # every parameter is one the flow takes (the others keep the flow's defaults)
    assert set(deployment.parameters) <= set(signature(predict.fn).parameters)
    assert deployment.pull_steps == project()["pull"]


def test_a_run_of_the_deployment_executes_the_flow(
    prefect_env, reference_dir: Path, tmp_path: Path
) -> None:
    # The project file as a user would edit it for this checkout: the pull step points
    # at the repository. Unscheduled, and on its own queue, so the worker below picks
    # only the run this test creates.
    edited = project()
    edited["pull"][0][SET_WORKING_DIRECTORY]["directory"] = str(ROOT)
    spec = edited["deployments"][0]
    spec.update(name="checkout", schedules=[])
    spec["work_pool"]["work_queue_name"] = "test-run"
    project_file = tmp_path / "prefect.yaml"
    project_file.write_text(yaml.safe_dump(edited))
    prefect_cli(prefect_env, "--no-prompt", "deploy", "--prefect-file", str(project_file), "--all")

    models = write_demo_models(tmp_path / "models")
    out_dir = tmp_path / "out"
    with (
        temporary_settings(updates={PREFECT_API_URL: prefect_env["PREFECT_API_URL"]}),
        get_client(sync_client=True) as client,
    ):
        deployment = client.read_deployment_by_name("virnucpro-predict/checkout")
        flow_run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={
                "reads": [str(reference_dir / "test_with_orfs.fa")],
                "classifier": str(models.classifier),
                "esm_model": str(models.esm),
                "dnabert_model": str(models.dnabert),
                "out_dir": str(out_dir),
                "chunk_length": 500,
                "cpu_workers": 1,
            },
        )
        # The worker starts elsewhere: only the pull step brings the run to the code.
        worker = subprocess.run(
            [*PREFECT, "worker", "start", "--pool", POOL, "--work-queue", "test-run", "--run-once"],
            cwd=tmp_path,
            env=prefect_env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        state = client.read_flow_run(flow_run.id).state

    assert state is not None and state.is_completed(), (
        f"flow run ended {state}; worker output:\n{worker.stdout[-6000:]}\n{worker.stderr[-6000:]}"
    )
    assert (out_dir / "test_with_orfs" / "prediction_results.txt").is_file()
    assert (out_dir / "test_with_orfs" / "read_verdicts.tsv").is_file()


def test_serve_uses_the_project_files_schedule_limit_and_parameters() -> None:
    spec = serve.project_deployment()
    argv = "--reads a.fa b/ --chunk-length 500 --gpus 0,2 --param group_tokens=500000"
    args = serve.parse_args(argv.split())
    deployment = serve.build_deployment(args, serve.flow_parameters(args))

    assert deployment.name == "nightly"
    [schedule] = deployment.schedules
    assert schedule.schedule.cron == spec["schedules"][0]["cron"]
    assert schedule.schedule.timezone == spec["schedules"][0]["timezone"]
    assert deployment.concurrency_limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert deployment.parameters == {
        **spec["parameters"],
        "reads": ["a.fa", "b/"],
        "chunk_length": 500,
        "gpus": [0, 2],
        "group_tokens": 500000,
    }


def test_the_project_files_parameters_are_the_flows_defaults() -> None:
    """prefect.yaml restates the flow's defaults so users see them; they must not drift.
    Only the site paths (EDIT) and trust_remote_code (the real DNABERT-S needs it,
    the flow must not assume it) differ."""
    parameters = serve.project_deployment()["parameters"]
    flow_defaults = {
        name: p.default
        for name, p in inspect.signature(predict.fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    site_specific = {"reads", "classifier", "out_dir", "trust_remote_code"}
    assert set(parameters) == set(inspect.signature(predict.fn).parameters)
    assert parameters["trust_remote_code"] is True
    assert {k: v for k, v in parameters.items() if k not in site_specific} == {
        k: v for k, v in flow_defaults.items() if k not in site_specific
    }


def test_serve_script_prints_help() -> None:
    result = subprocess.run(
        [sys.executable, "deployments/serve.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--classifier" in result.stdout and "prefect.yaml" in result.stdout
