"""The command line of the prediction flow: `python flows/predict.py reads.fa ...`.

What a user can get wrong (options, inputs, models) is checked before Prefect or Dask
is imported, so a mistake costs a second or two and prints one line, exit status 2
(`--verbose` adds the traceback). Then the flow runs, with one local Prefect API unless
one is configured, and this module owns the end of the process.

Ctrl-C (SIGINT) or SIGTERM raises `Interrupted` wherever the flow is (inside a flow
Prefect turns SIGTERM into its own `TerminationSignal` first). Prefect records the runs
as crashed, the groups in flight are abandoned and the cluster closes as the flow
unwinds, then the local API stops, and one line says how many groups are finished: a
rerun of the same command skips them. Exit status 128 + the signal number (130, 143).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from virnucpro.cli import MODEL_OPTIONS, ArgumentParser, user_error
from virnucpro.errors import VirNucProError
from virnucpro.reads.fasta import FastaReader, find_fasta_files
from virnucpro.run.arguments import add_options
from virnucpro.run.checks import check_inputs
from virnucpro.run.config import ClusterConfig, ModelConfig, PredictConfig

if TYPE_CHECKING:
    from virnucpro.run.planning import Group

# Each worker owns one GPU, so the flow has no --device.
FLOW_MODEL_OPTIONS = tuple(name for name in MODEL_OPTIONS if name != "device")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options named like the flow's parameters (plus `verbose`)."""
    parser = ArgumentParser(
        prog="flows/predict.py",
        description="VirNucPro prediction flow: reads in, per-read virus verdicts out.",
    )
    parser.add_argument("reads", nargs="+", help="FASTA files (.gz accepted) or directories")
    add_options(parser, PredictConfig, ("out_dir", "chunk_length"))
    add_options(parser, ModelConfig, FLOW_MODEL_OPTIONS, required=("classifier",))
    add_options(parser, ClusterConfig, ("gpus", "cpu_workers", "scheduler_address"))
    add_options(parser, PredictConfig, ("group_tokens", "min_tokens_per_second", "keep_work"))
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="Dask's and Prefect's own logs, tracebacks"
    )
    args = parser.parse_args(argv)
    args.out_dir, args.classifier = str(args.out_dir), str(args.classifier)
    args.model_cache = str(args.model_cache) if args.model_cache else None
    args.gpus = list(args.gpus) if args.gpus else None
    return args


def run_config(parameters: Mapping[str, Any]) -> tuple[PredictConfig, ClusterConfig]:
    """The run's configuration from the flow's parameters, checked before any work:
    the precision, the inputs (readable FASTA) and the models (resolved to local paths,
    downloading once what is missing: `checks.check_inputs`). What a user can get
    wrong fails here, as a `VirNucProError` naming the option or file."""
    p = parameters
    cluster = ClusterConfig(
        p["scheduler_address"], tuple(p["gpus"]) if p["gpus"] else None, p["cpu_workers"]
    )
    models = ModelConfig(
        classifier=Path(p["classifier"]),
        esm_model=p["esm_model"],
        dnabert_model=p["dnabert_model"],
        dnabert_revision=p["dnabert_revision"],
        trust_remote_code=p["trust_remote_code"],
        model_cache=Path(p["model_cache"]) if p["model_cache"] else None,
        precision=p["precision"],
        esm_tokens_per_batch=p["esm_tokens_per_batch"],
        dnabert_tokens_per_batch=p["dnabert_tokens_per_batch"],
    )
    config = PredictConfig(
        reads=tuple(find_fasta_files([Path(r) for r in p["reads"]])),
        models=models,
        out_dir=Path(p["out_dir"]),
        chunk_length=p["chunk_length"],
        group_tokens=p["group_tokens"],
        min_tokens_per_second=p["min_tokens_per_second"],
        keep_work=p["keep_work"],
    )
    for path in config.reads:
        check_fasta(path)
    return check_inputs(config), cluster


def check_fasta(path: Path) -> None:
    """The reader's own refusals that need no full read (missing, not a file, empty,
    binary, not FASTA, broken gzip header), raised now rather than in a task."""
    with closing(FastaReader(path).blocks(block_bytes=1 << 16)) as blocks:
        next(blocks, None)


@dataclass(frozen=True)
class RunPlan:
    """The groups a run computes and where their results go (`predict` records it), so
    an interrupted command can say how much is finished."""

    groups: tuple[Group, ...]
    results: Path

    def finished(self) -> int:
        """Groups whose result is on disk (results are written whole or not at all)."""
        from virnucpro.run.group_inference import result_path

        return sum(result_path(self.results, group).is_file() for group in self.groups)


_plans: list[RunPlan] = []


def record_plan(groups: Sequence[Group], results: Path) -> None:
    _plans.append(RunPlan(tuple(groups), results))


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (SIGINT or SIGTERM). A KeyboardInterrupt, so Prefect
    records the runs as aborted by an interrupt and no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def interrupts(verbose: bool) -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` once; later ones are ignored while the
    run winds down, which is bounded. Unless `verbose`, the terminal gets no more log
    lines after a SIGINT (Prefect's "Crash detected!" for each run): the command's own
    summary says what happened, and the runs' states in the API say it too."""
    received: list[int] = []

    def stop(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            if not verbose:
                logging.disable(logging.CRITICAL)
            raise Interrupted(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    """The command: exit status 0, 2 for a user error, 128 + signal when stopped."""
    args = parse_args(argv)
    verbose = vars(args).pop("verbose")
    config = None
    with interrupts(verbose):  # a second signal while stopping is ignored too
        try:
            try:
                config, _ = run_config(vars(args))
            except VirNucProError as error:
                return user_error(error, verbose)
            return run_flow(args, verbose)
        except Interrupted as stop:
            interrupted(stop.signum, config)


def run_flow(args: argparse.Namespace, verbose: bool) -> int:
    """The flow, with the run's Prefect API (stopped after the flow, and so after its
    cluster)."""
    from prefect.exceptions import TerminationSignal

    from flows import predict as flow_module
    from tasks.library_logs import quiet_console
    from tasks.local_api import prefect_api

    if not verbose:
        quiet_console()
    try:
        with prefect_api():
            result = flow_module.predict(**vars(args))
    except VirNucProError as error:
        return user_error(error, verbose)
    except TerminationSignal as stop:  # Prefect's form of SIGTERM inside a flow
        raise Interrupted(stop.signal) from None
    for path in result["outputs"]:
        print(f"results: {path}")
    print(f"performance report: {result['report']}")
    if result["random_models"]:
        print(f"NOTE: {flow_module.RANDOM_MODELS_WARNING}")
    return 0


def interrupted(signum: int, config: PredictConfig | None) -> NoReturn:
    """One line on what is kept, then exit as a process ended by `signum` would report.

    Everything is stopped by now; what is left is Python's teardown of the loaded
    libraries, seconds of CPU on a busy machine, which a stopping run skips."""
    what = f"virnucpro: interrupted ({signal.Signals(signum).name})"
    if config is None or not _plans:
        print(f"{what} before any group was planned", file=sys.stderr)
    else:
        plan = _plans[-1]
        print(
            f"{what}: {plan.finished()} of {len(plan.groups)} groups finished, kept in "
            f"{config.work_dir}; rerun the same command to resume",
            file=sys.stderr,
        )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)
