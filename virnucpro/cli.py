"""The `virnucpro` command. Each subcommand is a thin layer over a library function.

Errors a user can act on (VirNucProError) are printed as one line naming the file,
record and problem, with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from virnucpro.errors import VirNucProError
from virnucpro.run.arguments import add_options
from virnucpro.run.config import ModelConfig, PredictConfig


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: `prog: error: problem (--help for usage)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help for usage)\n")


def _progress_bar(label: str) -> tuple[Any, Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when output is piped or logged (rich,
    20 ms of imports, is then not imported at all)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    stderr = Console(stderr=True)
    bar = Progress(
        f"[bold]{label}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _prepare(args: argparse.Namespace) -> None:
    from virnucpro.reads.preparation import prepare_reads

    bar, update = _progress_bar(f"preparing {args.reads.name}")
    if bar is None:
        result = prepare_reads(args.reads, args.chunk_length, args.out_dir)
    else:
        with bar:
            result = prepare_reads(args.reads, args.chunk_length, args.out_dir, progress=update)
    c = result.counts
    print(
        f"{c.reads} reads ({c.empty_reads} empty) → {c.chunks} chunks → {c.frames} stop-free "
        f"frames; {c.chunks_without_frames} chunks have no kept frame (see the ledger)"
    )
    for path in (result.chunked, result.nucleotide, result.protein, result.ledger):
        print(f"  {path}")


def _make_demo_models(args: argparse.Namespace) -> None:
    from virnucpro.demo_models.random_models import write_demo_models

    models = write_demo_models(args.directory, seed=args.seed)
    print("random-init models (their predictions are meaningless; for tests and demos):")
    print(f"  ESM-2 checkpoint (fair-esm hub format): {models.esm}")
    print(f"  DNABERT-S stand-in (save_pretrained dir): {models.dnabert}")
    print(f"  classifier (original whole-module pickle): {models.classifier}")


def _predict(args: argparse.Namespace) -> None:
    from virnucpro.demo_models.random_models import is_generated
    from virnucpro.reads.fasta import find_fasta_files
    from virnucpro.run.pipeline import predict

    models = ModelConfig(**{name: getattr(args, name) for name in MODEL_OPTIONS})
    config = PredictConfig(
        reads=tuple(find_fasta_files(args.reads)),
        models=models,
        out_dir=args.out_dir,
        chunk_length=args.chunk_length,
        group_tokens=args.group_tokens,
        keep_work=args.keep_work,
    )
    result = predict(config)
    for item in result.inputs:
        print(f"{item.frames_scored} frames scored → {item.outputs.read_verdicts.text.parent}")
    if is_generated(models.classifier):
        print("NOTE: random-init demo models: these predictions are meaningless")


# The model options every front end offers (the flow adds none and drops `device`:
# its workers each own one GPU).
MODEL_OPTIONS = (
    "classifier",
    "esm_model",
    "dnabert_model",
    "dnabert_revision",
    "trust_remote_code",
    "model_cache",
    "precision",
    "device",
    "esm_tokens_per_batch",
    "dnabert_tokens_per_batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="virnucpro", description="Find viral sequences in sequencing reads."
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details; tracebacks"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare",
        help="chunk reads and select stop-free frames (the original tool's files + a ledger)",
    )
    prepare.add_argument("reads", type=Path, help="FASTA of nucleotide reads (.gz accepted)")
    add_options(
        prepare, PredictConfig, ("chunk_length", "out_dir"), required=("chunk_length", "out_dir")
    )
    prepare.set_defaults(run=_prepare)

    predict = commands.add_parser(
        "predict",
        help="the whole pipeline in this process (the Prefect flow is flows/predict.py)",
    )
    predict.add_argument("reads", type=Path, nargs="+", help="FASTA files or directories")
    add_options(predict, PredictConfig, ("out_dir", "chunk_length", "group_tokens", "keep_work"))
    add_options(predict, ModelConfig, MODEL_OPTIONS, required=("classifier",))
    predict.set_defaults(run=_predict)

    models = commands.add_parser(
        "make-demo-models", help="write small random-init models in the real formats"
    )
    models.add_argument("directory", type=Path)
    models.add_argument("--seed", type=int, default=0)
    models.set_defaults(run=_make_demo_models)
    return parser


def user_error(error: BaseException, verbose: bool) -> int:
    """Report an error the user can act on: one line (after its traceback if
    `verbose`); the exit status of a usage error."""
    if verbose:
        traceback.print_exception(error)
    print(f"virnucpro: error: {error}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # model loading and saving draw bars nobody acts on
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        args.run(args)
    except VirNucProError as error:
        return user_error(error, args.verbose)
    except KeyboardInterrupt:
        print(
            "virnucpro: interrupted; finished groups are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    return 0


if __name__ == "__main__":
    sys.exit(main())
