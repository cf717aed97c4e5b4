"""DNABERT-S throughput: padded token-budget batches vs one sequence at a time.

One sequence per forward pass is how the original embedded frames. Both ways run in
the same process on the same generated frames (nucleotide slices of ~298 and ~499 nt,
like kept frames of 300- and 500-nt chunks), with a random-init model of DNABERT-S's
shape on a GPU, or a small one on the CPU (labelled "CPU smoke": it checks the
machinery, its speedup says little about GPUs). Batches run twice: with a fixed
budget (`--max-tokens`, 32,768 padded tokens) and with the `auto` budget, the default
(on a GPU a short probe picks the largest step under 90% of its memory; on the CPU it
is the CPU default).

    python benchmarks/dnabert_throughput.py [--n 2000] [--out results.md]

(from the repository root, or as a script once the package is installed).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from table_output import publish, target_line

from virnucpro.demo_models.dnabert_snapshot import write_dnabert_snapshot
from virnucpro.models.dnabert import DnabertEmbedder, load_dnabert


def frames(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lengths = [rng.choice((298, 499)) - rng.randint(0, 6) for _ in range(n)]
    return ["".join(rng.choice("ACGT") for _ in range(length)) for length in lengths]


def timed(fn, *args) -> tuple[np.ndarray, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def one_at_a_time(embedder: DnabertEmbedder, sequences: list[str]) -> np.ndarray:
    return np.stack([embedder.embed([s])[0] for s in sequences])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="frames to embed (default 2000 GPU, 48 CPU)")
    parser.add_argument("--max-tokens", type=int, default=32768)
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()

    gpu = torch.cuda.is_available()
    n = args.n or (2000 if gpu else 48)
    shape = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "vocab_size": 4096}
    shape = shape if gpu else {}
    with tempfile.TemporaryDirectory() as folder:
        model_dir = write_dnabert_snapshot(Path(folder), **shape)
        embedder = load_dnabert(model_dir, max_tokens=args.max_tokens, trust_remote_code=True)
        auto = load_dnabert(model_dir, max_tokens=None, trust_remote_code=True)  # probes
    sequences = frames(n)
    tokens = sum(len(t) for t in embedder.tokenize(sequences))

    embedder.embed(sequences[:8])  # warm-up: kernels, allocator
    batched, batched_s = timed(embedder.embed, sequences)
    auto.embed(sequences[:8])
    auto_rows, auto_s = timed(auto.embed, sequences)
    single, single_s = timed(one_at_a_time, embedder, sequences)

    label = torch.cuda.get_device_name() if gpu else "CPU smoke"
    size = "12 layers, 768 hidden" if gpu else "2 layers, 64 hidden"
    lines = [
        f"DNABERT-S throughput — {label} ({size}, random init, {embedder.dtype}), "
        f"{n} frames, {tokens} tokens",
        "",
        "| mode | seconds | sequences/s | tokens/s | speedup | min cosine vs one-at-a-time |",
        "|---|---|---|---|---|---|",
        f"| one at a time (original) | {single_s:.2f} | {n / single_s:.1f} | "
        f"{tokens / single_s:.0f} | 1.0× | 1 |",
        f"| padded batches (≤{args.max_tokens} tokens) | {batched_s:.2f} | "
        f"{n / batched_s:.1f} | {tokens / batched_s:.0f} | {single_s / batched_s:.1f}× | "
        f"{cosine(batched, single).min():.6f} |",
        f"| padded batches (auto: ≤{auto.max_tokens} tokens) | {auto_s:.2f} | "
        f"{n / auto_s:.1f} | {tokens / auto_s:.0f} | {single_s / auto_s:.1f}× | "
        f"{cosine(auto_rows, single).min():.6f} |",
        "",
        f"Auto budget: {auto.budget.describe()}.",
    ]
    if gpu:  # issue 4's target, on a DNABERT-S-sized model
        lines += ["", target_line("batched vs one at a time", single_s / batched_s, 20, "{:.1f}×")]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
