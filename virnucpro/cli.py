"""The `virnucpro` command. Each subcommand is a thin layer over a library function.

Errors a user can act on (VirNucProError) are printed as one line naming the file,
record and problem, with exit status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from virnucpro.chunking import CHUNK_LENGTHS
from virnucpro.errors import VirNucProError
from virnucpro.preparation import prepare_reads

_stderr = Console(stderr=True)


def _progress_bar(label: str) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal; nothing when output is piped or logged."""
    if not _stderr.is_terminal:
        return None, None
    bar = Progress(
        f"[bold]{label}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=_stderr,
        transient=True,
    )
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


def _prepare(args: argparse.Namespace) -> None:
    bar, update = _progress_bar(f"preparing {args.reads.name}")
    if bar is None:
        result = prepare_reads(args.reads, args.chunk_length, args.out)
    else:
        with bar:
            result = prepare_reads(args.reads, args.chunk_length, args.out, progress=update)
    c = result.counts
    print(
        f"{c.reads} reads ({c.empty_reads} empty) → {c.chunks} chunks → {c.frames} stop-free "
        f"frames; {c.chunks_without_frames} chunks have no kept frame (see the ledger)"
    )
    for path in (result.chunked, result.nucleotide, result.protein, result.ledger):
        print(f"  {path}")


def _make_test_models(args: argparse.Namespace) -> None:
    from virnucpro.test_models import write_test_models

    models = write_test_models(args.directory, seed=args.seed)
    print("random-init models (their predictions are meaningless; for tests and demos):")
    print(f"  ESM-2 checkpoint (fair-esm hub format): {models.esm}")
    print(f"  DNABERT-S stand-in (save_pretrained dir): {models.dnabert}")
    print(f"  classifier (original whole-module pickle): {models.classifier}")


def _predict(args: argparse.Namespace) -> None:
    from virnucpro.config import ModelConfig, PredictConfig
    from virnucpro.fasta import find_fasta_files
    from virnucpro.pipeline import predict
    from virnucpro.test_models import is_generated

    config = PredictConfig(
        reads=tuple(find_fasta_files(args.reads)),
        out_dir=args.out,
        models=ModelConfig(
            **{name: getattr(args, name) for name in MODEL_ARGUMENTS}, device=args.device
        ),
        chunk_length=args.chunk_length,
    )
    result = predict(config)
    for item in result.inputs:
        print(f"{item.frames_scored} frames scored → {item.outputs.read_verdicts.text.parent}")
    if is_generated(Path(args.classifier)):
        print("NOTE: random-init test models: these predictions are meaningless")


# argparse destinations equal ModelConfig fields (and the flow's parameters).
MODEL_ARGUMENTS = (
    "classifier",
    "esm_model",
    "dnabert_model",
    "trust_remote_code",
    "precision",
    "esm_tokens_per_batch",
    "dnabert_tokens_per_batch",
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options, shared by `virnucpro predict` and `flows/predict.py`."""
    from virnucpro.config import ESM2_3B
    from virnucpro.dnabert import DNABERT_S

    parser.add_argument("--classifier", required=True, help="300_model.pth / 500_model.pth")
    parser.add_argument("--esm-model", default=ESM2_3B, help="fair-esm name or checkpoint")
    parser.add_argument("--dnabert-model", default=DNABERT_S, help="hub name or directory")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow DNABERT-S's own model code to run (required for the real model)",
    )
    parser.add_argument("--precision", choices=("auto", "bf16", "fp16", "fp32"), default="auto")
    parser.add_argument("--esm-tokens-per-batch", type=int, help="packed tokens per step")
    parser.add_argument("--dnabert-tokens-per-batch", type=int, default=32768)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="virnucpro", description="Find viral sequences in sequencing reads."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    prepare = commands.add_parser(
        "prepare",
        help="chunk reads and select stop-free frames (the original tool's files + a ledger)",
    )
    prepare.add_argument("reads", type=Path, help="FASTA of nucleotide reads (.gz accepted)")
    prepare.add_argument(
        "--chunk-length", type=int, choices=CHUNK_LENGTHS, required=True, help="nt per chunk"
    )
    prepare.add_argument("--out", type=Path, required=True, help="output directory")
    prepare.set_defaults(run=_prepare)

    predict = commands.add_parser(
        "predict",
        help="the whole pipeline in this process (the Prefect flow is flows/predict.py)",
    )
    predict.add_argument("reads", type=Path, nargs="+", help="FASTA files or directories")
    predict.add_argument("--chunk-length", type=int, choices=CHUNK_LENGTHS, default=300)
    predict.add_argument("--out", type=Path, required=True, help="output directory")
    add_model_arguments(predict)
    predict.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default: auto)")
    predict.set_defaults(run=_predict)

    models = commands.add_parser(
        "make-test-models", help="write small random-init models in the real formats"
    )
    models.add_argument("directory", type=Path)
    models.add_argument("--seed", type=int, default=0)
    models.set_defaults(run=_make_test_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        args.run(args)
    except VirNucProError as error:
        print(f"virnucpro: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
