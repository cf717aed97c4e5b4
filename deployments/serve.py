"""Serve the prediction flow from this process: one GPU box, no work pool, no worker.

    cd /path/to/virnucpro   # the repository root, where runs load flows/predict.py
    python deployments/serve.py --reads /data/reads --classifier /data/models/300_model.pth

The schedule, default parameters and concurrency limit are those of the `nightly`
deployment in deployments/prefect.yaml (their one home); options given here override
them. The process stays up, starts each scheduled or manually triggered run as a
subprocess, and runs one at a time: a run uses every GPU of the machine. It needs a
Prefect server (`prefect server start`, then PREFECT_API_URL pointing at it) so runs
can be triggered and watched in the UI; deployments/README.md has the steps.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from argparse import SUPPRESS
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `flows` and `virnucpro` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL

from flows.predict import predict
from virnucpro.run.arguments import add_options
from virnucpro.run.config import ClusterConfig, ModelConfig, PredictConfig

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILE = ROOT / "deployments" / "prefect.yaml"
DEPLOYMENT = "nightly"
FLOW_PARAMETERS = set(inspect.signature(predict.fn).parameters)


def project_deployment(name: str = DEPLOYMENT, project_file: Path = PROJECT_FILE) -> dict:
    """The deployment called `name` in the Prefect project file, as written there."""
    project = yaml.safe_load(project_file.read_text())
    for deployment in project.get("deployments") or []:
        if deployment.get("name") == name:
            return deployment
    raise KeyError(f"{project_file}: no deployment named {name!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = project_deployment()
    schedule = defaults["schedules"][0]
    parser = argparse.ArgumentParser(
        prog="deployments/serve.py",
        description=__doc__.split("\n\n")[0],
        epilog="Parameters not given here keep their values from deployments/prefect.yaml.",
    )
    parser.add_argument("--name", default=DEPLOYMENT, help="deployment name (default: %(default)s)")
    parser.add_argument("--cron", default=schedule["cron"], help="schedule (default: %(default)s)")
    parser.add_argument(
        "--timezone",
        default=schedule.get("timezone"),
        help="of the schedule (default: %(default)s)",
    )
    parser.add_argument("--no-schedule", action="store_true", help="run only when triggered")
    parser.add_argument("--reads", nargs="+", default=SUPPRESS, help="FASTA files or directories")
    add_options(parser, PredictConfig, ("out_dir", "chunk_length"), overrides_only=True)
    add_options(parser, ModelConfig, ("classifier",), overrides_only=True)
    add_options(parser, ClusterConfig, ("gpus",), overrides_only=True)
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="any other flow parameter as JSON, e.g. --param group_tokens=500000 (repeatable)",
    )
    return parser.parse_args(argv)


def flow_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The project file's parameters with the command line's overrides applied."""
    parameters = dict(project_deployment()["parameters"])
    given = {k: v for k, v in vars(args).items() if k in FLOW_PARAMETERS}
    for name in ("out_dir", "classifier"):  # JSON-ready, as in the project file
        if name in given:
            given[name] = str(given[name])
    if "gpus" in given:
        given["gpus"] = list(given["gpus"])
    parameters.update(given)
    for item in args.param:
        key, separator, value = item.partition("=")
        if not separator:
            raise SystemExit(f"serve.py: --param {item!r}: expected NAME=JSON")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError as error:
            raise SystemExit(f"serve.py: --param {key}: {value!r} is not JSON ({error})") from None
    return parameters


def build_deployment(args: argparse.Namespace, parameters: dict[str, Any]) -> RunnerDeployment:
    """The flow as a deployment this process serves, configured like the project file's."""
    defaults = project_deployment()
    limit = defaults["concurrency_limit"]
    return predict.to_deployment(
        name=args.name,
        description=defaults.get("description"),
        tags=defaults.get("tags"),
        schedules=[] if args.no_schedule else [Cron(args.cron, timezone=args.timezone)],
        parameters=parameters,
        concurrency_limit=ConcurrencyLimitConfig(
            limit=limit["limit"],
            collision_strategy=ConcurrencyLimitStrategy(limit["collision_strategy"]),
        ),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not PREFECT_API_URL.value():
        print(
            "serve.py: error: no Prefect server configured. Start one with "
            "`prefect server start` and run "
            "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api` first.",
            file=sys.stderr,
        )
        return 2
    # Runs load `flows/predict.py` relative to the working directory, as a worker does
    # after prefect.yaml's pull step; from elsewhere `tasks` does not import.
    if Path.cwd().resolve() != ROOT:
        print(f"serve.py: error: run this from the repository root: cd {ROOT}", file=sys.stderr)
        return 2
    parameters = flow_parameters(args)
    # limit=1: this process also starts at most one run at a time, whatever the server
    # says, since every run takes all of this machine's GPUs.
    serve(build_deployment(args, parameters), limit=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
