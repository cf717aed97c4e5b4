"""ESM-2 embedding throughput: the original tool's way vs ours, on random weights.

One process, one command:

    python benchmarks/esm_throughput.py                      # GPU: 3B architecture
    python benchmarks/esm_throughput.py --n 200 --out t.md   # CPU: smoke test only

Variants (all embed the same seeded protein set and mean-pool residues 1..L):
  (a) fair-esm ESM2, FP32, padded batches of 2,048 tokens (the original tool's way);
  (b) fair-esm ESM2 under BF16 autocast, padded batches of 3,072 tokens;
  (c) ours: `EsmEmbedder` end to end (tokenising, transfer, packing, pooling included),
      with a fixed 16,384 tokens per step (`--max-tokens`);
  (d) ours with the `auto` budget, the default: on a GPU the largest step that stays
      under 90% of its memory (a short probe when the embedder is created), on the CPU
      the CPU default.
Cosines are against (a). FLOPs count useful work only (no padding): 2 per weight per
token plus QKᵀ and AV within each sequence. Each variant first runs untimed on a few
sequences (ours, when compiled, on all of them so every step shape is compiled), then
is timed on the whole set. On a GPU the table also gives the measured ceiling (a large
BF16 matrix product, the work ESM-2 is made of) and ours as a share of it;
`--profile FILE` writes where ours spends its time (torch profiler, by operator).
"""

from __future__ import annotations

import argparse
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import esm
import numpy as np
import torch
from table_output import publish, target_line

from virnucpro.demo_models.random_models import random_esm2
from virnucpro.models.batching import token_budget_batches
from virnucpro.models.device import resolve_device
from virnucpro.models.esm_checkpoint import ESM2_MODELS
from virnucpro.models.esm_embedder import EsmEmbedder
from virnucpro.models.esm_model import MAX_RESIDUES, Esm2, EsmConfig, select_attention_backend

AMINO_ACIDS = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
FIXED, AUTO = "(c) ours", "(d) ours, auto budget"


def frame_like_proteins(n: int, seed: int) -> list[str]:
    """Lengths like stop-free frames of 300/500-nt chunks: mostly 99 and 166 aa."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(3, size=n, p=[0.45, 0.45, 0.10])
    lengths = np.where(kind == 0, rng.integers(98, 101, n), rng.integers(165, 167, n))
    lengths = np.where(kind == 2, rng.integers(20, 99, n), lengths)
    return ["".join(rng.choice(AMINO_ACIDS, length)) for length in lengths]


def useful_flops(config: EsmConfig, sequences: list[str]) -> float:
    tokens = np.array([min(len(s), MAX_RESIDUES) + 2 for s in sequences], dtype=np.float64)
    per_token = 2.0 * config.num_layers * 12 * config.embed_dim**2  # q, k, v, out, fc1, fc2
    attention = 4.0 * config.num_layers * config.embed_dim * (tokens**2).sum()
    return per_token * tokens.sum() + attention


@dataclass
class Row:
    variant: str
    batching: str
    precision: str
    seconds: float = float("nan")
    embeddings: np.ndarray | None = None
    error: str | None = None  # a failed variant is reported, and the others still run


def measure(row: Row, run, sequences: list[str], warm_up: int) -> Row:
    """Fill `row` with `run`'s timing and result, or with its error (traceback on stderr):
    one failure on a lent GPU must not cost the other variants' numbers."""
    try:
        row.seconds, row.embeddings = timed(run, sequences, warm_up)
    except Exception as error:  # reported in the table; the benchmark goes on
        failed(row, error)
    return row


def failed(row: Row, error: Exception) -> Row:
    traceback.print_exc()
    row.error = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    return row


def fair_esm_reference(model: Esm2, device: torch.device) -> esm.model.esm2.ESM2:
    config = model.config
    with torch.device(device):  # initialise on the device: fast even for 3B
        reference = esm.model.esm2.ESM2(config.num_layers, config.embed_dim, config.attention_heads)
    reference.load_state_dict(model.state_dict(), strict=False)
    return reference.eval()


def fair_esm_embed(
    reference: esm.model.esm2.ESM2,
    sequences: list[str],
    max_tokens: int,
    autocast: bool,
    device: torch.device,
) -> np.ndarray:
    """The original pattern: BatchConverter, padded batches, per-sequence mean."""
    converter = reference.alphabet.get_batch_converter(truncation_seq_length=MAX_RESIDUES)
    last = reference.num_layers
    out = np.empty((len(sequences), reference.embed_dim), dtype=np.float32)
    lengths = [min(len(s), MAX_RESIDUES) + 2 for s in sequences]
    for batch in token_budget_batches(lengths, max_tokens, padded=True):
        _, _, tokens = converter([(str(i), sequences[i]) for i in batch])
        with (
            torch.no_grad(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast),
        ):
            layer = reference(tokens.to(device), repr_layers=[last])["representations"][last]
            pooled = [layer[row, 1 : lengths[i] - 1].float().mean(0) for row, i in enumerate(batch)]
        out[batch] = torch.stack(pooled).cpu().numpy()
    return out


def run_fair_esm(
    model: Esm2, sequences: list[str], device: torch.device, warm_up: int
) -> list[Row]:
    """Variants (a) and (b); the reference model is freed on return."""
    reference = fair_esm_reference(model, device)
    return [
        measure(
            Row(variant, f"padded, {max_tokens:,} tokens", precision),
            lambda seqs, m=max_tokens, a=autocast: fair_esm_embed(reference, seqs, m, a, device),
            sequences,
            warm_up,
        )
        for variant, max_tokens, autocast, precision in [
            ("(a) fair-esm", 2048, False, "FP32"),
            ("(b) fair-esm", 3072, True, "BF16 autocast"),
        ]
    ]


def timed(run, sequences: list[str], warm_up: int) -> tuple[float, np.ndarray]:
    """Run once on the first `warm_up` sequences untimed, then time the whole set."""
    run(sequences[:warm_up])
    synchronize()
    started = time.perf_counter()
    result = run(sequences)
    synchronize()
    return time.perf_counter() - started, result


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def matmul_ceiling_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """Median rate of a size³ BF16 matrix product on random data, timed with CUDA events."""
    generator = torch.Generator(device).manual_seed(0)
    a, b = (
        torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=generator)
        for _ in range(2)
    )
    times = []
    for _ in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * size**3 / float(np.median(times[3:])) / 1e12


def write_profile(embedder: EsmEmbedder, sequences: list[str], path: Path) -> None:
    """One embed call of ours under the torch profiler, operators by self time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort_by = "self_cpu_time_total"
    if embedder.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort_by = "self_device_time_total"
    with torch.profiler.profile(activities=activities) as profile:
        embedder.embed(sequences)
        synchronize()
    path.write_text(profile.key_averages().table(sort_by=sort_by, row_limit=30) + "\n")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        choices=[*ESM2_MODELS, "small"],
        help="architecture (random weights); default: 3B on GPU, small (t6_8M) on CPU",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n", type=int, default=None, help="protein sequences")
    parser.add_argument("--max-tokens", type=int, default=16384, help="(c): fixed tokens per step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    parser.add_argument("--profile", type=Path, default=None, help="write ours' profile here")
    args = parser.parse_args()

    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    name = args.model or ("esm2_t36_3B_UR50D" if on_gpu else "small")
    if name == "small":
        name = "esm2_t6_8M_UR50D"
    config = ESM2_MODELS[name]
    n = args.n or (5000 if on_gpu else 200)
    sequences = frame_like_proteins(n, args.seed)
    flops = useful_flops(config, sequences)
    tokens = sum(min(len(s), MAX_RESIDUES) + 2 for s in sequences)

    model = random_esm2(config, seed=args.seed, device=device)
    params = model.parameter_count()
    rows = run_fair_esm(model, sequences, device, warm_up=min(n, 64))
    if on_gpu:
        torch.cuda.empty_cache()

    # On a GPU ours also runs uncompiled, to show what compile buys (or, should compile
    # fail on this torch, still give a figure). None: the `auto` budget.
    variants = [(FIXED, None, args.max_tokens), (AUTO, None, None)]
    if on_gpu:
        variants.insert(0, ("(c′) ours, eager", False, args.max_tokens))
    embedders = {}
    for variant, compile, max_tokens in variants:
        try:  # creating (d) runs its budget probe: a failure there is a row too
            # The embedders share `model` (each casts it to the same device and dtype).
            embedder = EsmEmbedder(model, str(device), max_tokens=max_tokens, compile=compile)
        except Exception as error:
            rows.append(failed(Row(variant, "packed", ""), error))
            continue
        embedders[variant] = embedder
        backend = select_attention_backend(device, embedder.dtype)
        precision = {torch.bfloat16: "BF16", torch.float16: "FP16"}.get(embedder.dtype, "FP32")
        auto = " (auto)" if max_tokens is None else ""
        batching = f"packed, {embedder.max_tokens:,} tokens{auto}, {backend} attention"
        # Compiled: warm up on everything so every step shape is compiled before timing.
        warm_up = n if embedder.compile else min(n, 64)
        row = Row(variant, batching + (", compiled" if embedder.compile else ""), precision)
        rows.append(measure(row, embedder.embed, sequences, warm_up))
    if args.profile and not by_variant(rows, FIXED).error:
        write_profile(embedders[FIXED], sequences, args.profile)
    ceiling = matmul_ceiling_tflops(device) if on_gpu else None

    lines = render(rows, config, name, params, device, n, tokens, flops, ceiling)
    if AUTO in embedders:
        lines.append(f"Auto budget of (d): {embedders[AUTO].budget.describe()}.")
    publish(lines, args.out)


def by_variant(rows: list[Row], variant: str) -> Row:
    return next(row for row in rows if row.variant == variant)


def render(rows, config, name, params, device, n, tokens, flops, ceiling) -> list[str]:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = []
    if device.type != "cuda":
        lines += ["**CPU smoke, not a performance figure.**", ""]
    lines += [
        f"ESM-2 throughput: {name} architecture ({config.num_layers} layers, "
        f"{config.embed_dim} dims, {config.attention_heads} heads, {params / 1e6:,.1f} M "
        f"parameters, random weights) on {where}, torch {torch.__version__}; "
        f"{n:,} proteins, {tokens:,} useful tokens (BOS + residues + EOS).",
        "",
        "| variant | batching | precision | seconds | tokens/s | TFLOP/s | cos mean | cos min |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    baseline = rows[0].embeddings
    for row in rows:
        if row.error:
            lines.append(f"| {row.variant} | {row.batching} | {row.precision} | "
                         f"failed: {row.error} | | | | |")  # fmt: skip
            continue
        cos = cosines(row.embeddings, baseline) if baseline is not None else np.full(1, np.nan)
        lines.append(
            f"| {row.variant} | {row.batching} | {row.precision} | {row.seconds:.2f} | "
            f"{tokens / row.seconds:,.0f} | {flops / row.seconds / 1e12:.3f} | "
            f"{cos.mean():.6f} | {cos.min():.6f} |"
        )
    lines.append("")
    ours, auto = by_variant(rows, FIXED), by_variant(rows, AUTO)
    if not (rows[0].error or ours.error):
        speedup = rows[0].seconds / ours.seconds
        lines.append(f"Speed-up of (c) over (a), end to end: {speedup:.1f}×.")
    if not (ours.error or auto.error):
        lines.append(
            f"(d), auto budget, vs (c), fixed: {ours.seconds / auto.seconds:.2f}× tokens/s."
        )
    on_3b_gpu = device.type == "cuda" and name == "esm2_t36_3B_UR50D"
    if on_3b_gpu and not ours.error and baseline is not None:
        cos = cosines(ours.embeddings, baseline)  # issue 3's targets
        lines += [
            target_line("(c) tokens/s, end to end", tokens / ours.seconds, 100_000),
            target_line("(c) cosine vs (a), mean", cos.mean(), 0.999, "{:.4f}"),
            target_line("(c) cosine vs (a), min", cos.min(), 0.995, "{:.4f}"),
        ]
    if ceiling and not ours.error:
        rate = flops / ours.seconds / 1e12
        lines.append(
            f"Measured ceiling (8192³ BF16 matrix product): {ceiling:.0f} TFLOP/s, i.e. "
            f"{ceiling * 1e12 * tokens / flops:,.0f} tokens/s for this set; (c) runs at "
            f"{rate / ceiling:.0%} of it."
        )
    return lines


if __name__ == "__main__":
    main()
