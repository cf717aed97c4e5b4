"""Loading ESM-2 weights: fair-esm's way (the original tool's) vs ours, on one file.

    python benchmarks/esm_load.py                                # 3B architecture
    python benchmarks/esm_load.py --model esm2_t12_35M_UR50D     # quick smoke

Every Dask worker loads ESM-2 once, so this is each GPU's start-up cost and, times the
workers of a machine, its peak host memory. The file is a random-init checkpoint in
fair-esm's hub format (readable by fair-esm's own loader), stored in FP16. Each loader
runs in a fresh process, so each peak resident memory is its own; imports are not
timed; the file was just written, so the page cache is warm for all of them, as it is
for every worker after the first.

  (a) fair-esm: `torch.load` of the whole file, `ESM2` built in FP32 with its default
      initialisation, `load_state_dict` (`load_model_and_alphabet_local` minus the
      contact-regression file); on a GPU then `.cuda()`, as the original does;
  (b) ours: `load_esm2` to FP32 on the CPU (memory-mapped file, model built on the
      meta device, weights assigned);
  (c) ours straight to the GPU in BF16, what a GPU worker does (GPU machines only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch
from table_output import publish

from virnucpro.demo_models.random_models import write_demo_esm_checkpoint
from virnucpro.models.esm_checkpoint import ESM2_MODELS

_MEASURE = textwrap.dedent(
    """
    import argparse, json, resource, sys, time
    import esm
    import torch
    from virnucpro.models.esm_checkpoint import load_esm2
    path, loader = sys.argv[1], sys.argv[2]
    if torch.cuda.is_available():
        torch.cuda.init()  # CUDA's start-up is not loading
    torch.serialization.add_safe_globals([argparse.Namespace])  # fair-esm predates 2.6
    started = time.perf_counter()
    if loader == "fair-esm":
        model, _ = esm.pretrained.load_model_and_alphabet_core(
            "esm2", torch.load(path, map_location="cpu")
        )
        if torch.cuda.is_available():
            model = model.cuda()
    else:
        device, dtype = ("cuda", torch.bfloat16) if loader == "ours-gpu" else ("cpu", torch.float32)
        _, model = load_esm2(path, device=device, dtype=dtype)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_gb": peak_kib / 2**20}))
    """
)


def measure(path: Path, loader: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), loader],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(ESM2_MODELS), default="esm2_t36_3B_UR50D")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available()

    loaders = [
        ("(a) fair-esm", "fair-esm", "FP32" + (", then .cuda()" if on_gpu else ", CPU")),
        ("(b) ours", "ours-cpu", "FP32, CPU"),
    ]
    if on_gpu:
        loaders.append(("(c) ours", "ours-gpu", "BF16, straight to the GPU"))
    with tempfile.TemporaryDirectory() as tmp:
        config = ESM2_MODELS[args.model]
        path = write_demo_esm_checkpoint(
            Path(tmp) / f"{args.model}.pt",
            config.num_layers,
            config.embed_dim,
            config.attention_heads,
            dtype=torch.float16,
            device="cuda" if on_gpu else "cpu",
        )
        size_gb = path.stat().st_size / 2**30
        rows = [(label, target, measure(path, loader)) for label, loader, target in loaders]

    device = torch.cuda.get_device_name() if on_gpu else "CPU only"
    lines = [
        f"Loading {args.model} (random weights, FP16 hub file of {size_gb:.1f} GiB), "
        f"{device}, torch {torch.__version__}; each loader in a fresh process, warm page cache.",
        "",
        "| loader | result | seconds | peak host RSS (GiB) |",
        "|---|---|---:|---:|",
    ]
    for label, target, numbers in rows:
        lines.append(
            f"| {label} | {target} | {numbers['seconds']:.1f} | {numbers['peak_rss_gb']:.1f} |"
        )
    lines += [
        "",
        "Peak RSS counts the memory-mapped file's resident pages, which are page cache "
        "shared by every worker that maps it, not memory of its own.",
    ]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
