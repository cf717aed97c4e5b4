"""The whole Prefect flow vs the bare engine loop, on the same frames, in one run.

    python benchmarks/flow_end_to_end.py                    # GPU: 3B-architecture models
    python benchmarks/flow_end_to_end.py --frames 600 --out t.md   # CPU smoke, small models

Input: generated coding reads (random codons without stops, so every read of the chunk
length yields at least one stop-free frame). Competitor: the bare engine loop — the
same three models loaded once in this process, then DNABERT-S, ESM-2 and the classifier
over all frames — timed from the first embedding to the last score. The flow is timed twice:
end to end (local Prefect API, preparation, cluster start, groups, outputs, report)
and its GPU stage alone (the embed-groups subflow, from the run's telemetry). ESM-2
tokens/s for each; the target is flow ≥ 85% of the bare loop on ≥ 50,000 frames.
Models are random-init, generated here in the real formats (speed does not depend on
the weights).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from table_output import publish, target_line

from virnucpro.demo_models.dnabert_snapshot import write_dnabert_snapshot
from virnucpro.demo_models.random_models import (
    write_demo_classifier,
    write_demo_esm_checkpoint,
    write_demo_models,
)
from virnucpro.models.classifier import load_classifier, predict_proba
from virnucpro.models.dnabert import load_dnabert
from virnucpro.models.esm_embedder import EsmEmbedder
from virnucpro.models.features import join_features
from virnucpro.reads.preparation import prepare_reads
from virnucpro.run.config import ModelConfig
from virnucpro.run.planning import read_frames

ROOT = Path(__file__).resolve().parents[1]
_SENSE_CODONS = [
    a + b + c
    for a in "ACGT"
    for b in "ACGT"
    for c in "ACGT"
    if a + b + c not in ("TAA", "TAG", "TGA")
]


def write_coding_reads(path: Path, count: int, length: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codons = np.array(_SENSE_CODONS)
    with open(path, "w") as out:
        for i in range(count):
            seq = "".join(rng.choice(codons, length // 3))
            out.write(f">read_{i}\n{seq}\n")


def write_models(directory: Path, gpu: bool) -> tuple[Path, Path, Path]:
    if not gpu:
        models = write_demo_models(directory)
        return models.esm, models.dnabert, models.classifier
    esm = write_demo_esm_checkpoint(
        directory / "esm2_3B_random.pt",
        num_layers=36,
        embed_dim=2560,
        attention_heads=40,
        dtype=torch.float16,  # half the file, so writing and loading it take half as long
        device="cuda",  # CPU generation is serial: ~1 minute for 3B
    )
    dnabert = write_dnabert_snapshot(
        directory / "dnabert_s_random",
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        vocab_size=4096,
    )
    classifier = write_demo_classifier(directory / "classifier.pth", 768 + 2560)
    return esm, dnabert, classifier


def bare_loop(frames_fasta_dir: Path, reads: Path, models: tuple[Path, Path, Path]) -> dict:
    """Load once, then embed and classify every frame here: no Prefect, no Dask.
    Timed from the first embedding to the last score, like the flow's GPU stage."""
    prepared = prepare_reads(reads, 300, frames_fasta_dir)
    frames = read_frames([prepared])
    esm_path, dnabert_path, classifier_path = models
    dnabert = load_dnabert(
        dnabert_path, max_tokens=ModelConfig.dnabert_tokens_per_batch, trust_remote_code=True
    )
    esm = EsmEmbedder(esm_path)
    classifier = load_classifier(classifier_path, dnabert_dim=dnabert.dim, esm_dim=esm.dim)
    classifier.to(dnabert.device)
    started = time.perf_counter()  # the loop itself; the flow's GPU stage excludes loads too
    nucleotide = dnabert.embed(frames.nucleotides)
    protein = esm.embed(frames.proteins)
    features = join_features(frames.ids, nucleotide, frames.ids, protein)
    predict_proba(classifier, features.matrix)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"frames": len(frames.ids), "tokens": esm.last_stats.tokens, "seconds": seconds}


def flow_run(reads: Path, models: tuple[Path, Path, Path], out_dir: Path, gpu: bool) -> dict:
    esm, dnabert, classifier = models
    command = [
        sys.executable, str(ROOT / "flows" / "predict.py"), str(reads), "--out", str(out_dir),
        "--classifier", str(classifier), "--esm-model", str(esm), "--dnabert-model", str(dnabert),
        "--trust-remote-code",
    ]  # fmt: skip
    if not gpu:
        command += ["--cpu-workers", "1"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    telemetry = json.loads((out_dir / "telemetry.json").read_text())["run"]
    return {
        "frames": telemetry["sequences"],
        "tokens": telemetry["tokens"],
        "seconds": seconds,
        "gpu_stage_seconds": telemetry["elapsed_seconds"],
    }


def main() -> None:
    gpu = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000 if gpu else 600)
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    parser.add_argument(
        "--keep-report",
        type=Path,
        help="copy the flow's report.md and telemetry.json into this directory",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reads = tmp / "coding_reads.fa"
        write_coding_reads(reads, args.frames, 300, seed=3)
        models = write_models(tmp / "models", gpu)
        bare = bare_loop(tmp / "bare", reads, models)
        if gpu:  # hand the GPU memory this process cached back before the flow's worker starts
            torch.cuda.empty_cache()
        flow = flow_run(reads, models, tmp / "flow", gpu)
        if args.keep_report:  # the report's NVML figures go into RESULTS.md
            args.keep_report.mkdir(parents=True, exist_ok=True)
            for name in ("report.md", "telemetry.json"):
                shutil.copy(tmp / "flow" / name, args.keep_report / f"flow_{name}")

    label = "GPU, 3B-architecture models" if gpu else "CPU smoke, small models (not a perf figure)"
    device = torch.cuda.get_device_name() if gpu else "CPU"
    bare_rate = bare["tokens"] / bare["seconds"]
    rows = [
        ("bare engine loop (models loaded once, one process)", bare["frames"], bare["tokens"],
         bare["seconds"], bare_rate),
        ("flow, end to end (API, prepare, cluster, groups, outputs, report)", flow["frames"],
         flow["tokens"], flow["seconds"], flow["tokens"] / flow["seconds"]),
        ("flow, GPU stage (groups on the cluster, from telemetry)", flow["frames"],
         flow["tokens"], flow["gpu_stage_seconds"], flow["tokens"] / flow["gpu_stage_seconds"]),
    ]  # fmt: skip
    lines = [
        f"{label}; {device}; torch {torch.__version__}",
        "",
        "| run | frames | ESM-2 tokens | seconds | tokens/s | vs bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, frames, tokens, seconds, rate in rows:
        lines.append(
            f"| {name} | {frames:,} | {tokens:,} | {seconds:.1f} | {rate:,.0f} | "
            f"{rate / bare_rate:.0%} |"
        )
    if gpu:  # issue 5's target (≥ 50,000 frames, 3B-architecture models)
        lines.append("")
        for name, _, _, _, rate in rows[1:]:
            lines.append(target_line(name.split(" (")[0], rate / bare_rate, 0.85, "{:.0%}"))
    publish(lines, args.out)


if __name__ == "__main__":
    main()
