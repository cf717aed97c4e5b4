"""Read preparation throughput: ours vs the original tool's per-codon approach.

One command, one run, same generated reads for both:

    python benchmarks/prepare_throughput.py [--reads 100000] [--million] [--out FILE]
    python benchmarks/prepare_throughput.py --whole-process [--reads 40000] [--out FILE]

(1) ≥100k reads of 150–3,000 nt (uniform lengths, ACGT with 0.5% N, seeded): file in
→ the four output files, for `virnucpro.reads.preparation.prepare_reads` and for the per-codon
pure-Python implementation in `original_prepare.py` (parsing and writing included for
both). (2) With --million, 1,000,000 reads of 500 nt through ours alone (the acceptance
target is < 60 s on 2 cores). (3) With --whole-process, what a user waits for: each side
as its own process, timed from its start (interpreter, imports, worker processes
included): the `virnucpro prepare` command against this script's per-codon mode
(`--per-codon-process`, which imports only what that implementation needs); target
≥ 20×. Prints a markdown table; --out also writes it to a file.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import original_prepare
from Bio.SeqIO.FastaIO import SimpleFastaParser
from table_output import publish, target_line

# numpy and virnucpro are imported where used: the per-codon process imports neither.
WHOLE_PROCESS_TARGET = 20.0


def write_reads(path: Path, count: int, min_len: int, max_len: int, seed: int) -> int:
    """Random reads, 70 nt per line like typical FASTA; returns total nucleotides."""
    import numpy as np

    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=count)
    total = int(lengths.sum())
    codes = rng.choice(5, size=total, p=[0.24875] * 4 + [0.005])
    text = letters[codes].tobytes().decode()
    with open(path, "w") as out:
        pos = 0
        for i, n in enumerate(lengths.tolist()):
            seq = text[pos : pos + n]
            pos += n
            out.write(f">read_{i} len={n}\n")
            out.write("".join(seq[j : j + 70] + "\n" for j in range(0, n, 70)))
    return total


def naive_prepare_file(path: Path, chunk_length: int, out_dir: Path) -> int:
    """The competitor: parse, per-codon prepare, write the same three FASTA files."""
    with open(path) as handle:
        reads = [(title.split(None, 1)[0], seq) for title, seq in SimpleFastaParser(handle)]
    chunks, frames = original_prepare.prepare(reads, chunk_length)
    with open(out_dir / "naive_chunked.fa", "w") as out:
        for chunk_id, chunk in chunks:
            lines = "".join(chunk[i : i + 60] + "\n" for i in range(0, len(chunk), 60))
            out.write(f">{chunk_id}\n{lines}")
    with (
        open(out_dir / "naive_nucleotide.fa", "w") as nuc,
        open(out_dir / "naive_protein.faa", "w") as prot,
    ):
        for frame_id, protein, nucleotide in frames:
            nuc.write(f">{frame_id}\n{nucleotide}\n")
            prot.write(f">{frame_id}\n{protein}\n")
    return len(reads)


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def in_process_rows(args: argparse.Namespace, tmp: Path) -> list[tuple]:
    """(1) and (2): both implementations called in this process."""
    from virnucpro.reads.preparation import prepare_reads

    rows = []
    fasta = tmp / "reads.fa"
    nt = write_reads(fasta, args.reads, 150, 3000, seed=1)
    ours, t_ours = _timed(lambda: prepare_reads(fasta, args.chunk_length, tmp / "ours"))
    naive_dir = tmp / "naive"
    naive_dir.mkdir()
    n_naive, t_naive = _timed(lambda: naive_prepare_file(fasta, args.chunk_length, naive_dir))
    # Same work done: the protein files must agree record for record.
    assert (tmp / "naive" / "naive_protein.faa").read_bytes() == ours.protein.read_bytes()
    label = f"{args.reads:,} reads 150–3,000 nt ({nt / 1e6:.0f} Mnt), C={args.chunk_length}"
    rows.append((label, "original (per-codon Python)", n_naive, t_naive, 1.0))
    rows.append((label, "virnucpro", ours.counts.reads, t_ours, t_naive / t_ours))
    if args.million:
        big = tmp / "million.fa"
        write_reads(big, 1_000_000, 500, 500, seed=2)
        million, t_million = _timed(lambda: prepare_reads(big, 500, tmp / "million"))
        label = "1,000,000 reads of 500 nt, C=500"
        rows.append((label, "virnucpro", million.counts.reads, t_million, float("nan")))
    return rows


def whole_process_rows(args: argparse.Namespace, tmp: Path) -> list[tuple]:
    """(3): each implementation as the command a user runs, timed from process start."""
    fasta = tmp / "reads.fa"
    nt = write_reads(fasta, args.reads, 150, 3000, seed=1)
    c = str(args.chunk_length)
    virnucpro = shutil.which("virnucpro", path=str(Path(sys.executable).parent))
    ours = [virnucpro, "prepare", str(fasta), "--chunk-length", c, "--out", str(tmp / "ours")]
    naive = [sys.executable, __file__, "--per-codon-process", str(fasta), c, str(tmp / "naive")]
    _, t_ours = _timed(lambda: subprocess.run(ours, check=True, stdout=subprocess.DEVNULL))
    _, t_naive = _timed(lambda: subprocess.run(naive, check=True))
    ours_protein = tmp / "ours" / f"reads_chunked{c}_identified_protein.faa"
    assert (tmp / "naive" / "naive_protein.faa").read_bytes() == ours_protein.read_bytes()
    label = f"{args.reads:,} reads 150–3,000 nt ({nt / 1e6:.0f} Mnt), C={c}, whole process"
    return [
        (label, "original (per-codon Python), `python` + parse + write", args.reads, t_naive, 1.0),
        (label, "`virnucpro prepare`", args.reads, t_ours, t_naive / t_ours),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, help="default 100,000 (40,000 whole-process)")
    parser.add_argument("--chunk-length", type=int, default=300, choices=(300, 500))
    parser.add_argument("--million", action="store_true", help="also 1M reads of 500 nt")
    parser.add_argument("--whole-process", action="store_true", help="time both as commands")
    parser.add_argument(
        "--per-codon-process", nargs=3, metavar=("FASTA", "C", "OUT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    if args.per_codon_process:  # the competitor's side of --whole-process
        fasta, c, out = args.per_codon_process
        Path(out).mkdir(parents=True)
        naive_prepare_file(Path(fasta), int(c), Path(out))
        return
    if args.reads is None:
        args.reads = 40_000 if args.whole_process else 100_000

    with tempfile.TemporaryDirectory() as tmp:
        rows = (whole_process_rows if args.whole_process else in_process_rows)(args, Path(tmp))

    lines = [
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}",
        "",
        "| input | implementation | reads | seconds | reads/s | speedup |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, impl, n, seconds, speedup in rows:
        shown = "" if speedup != speedup else f"{speedup:.1f}×"
        lines.append(f"| {label} | {impl} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {shown} |")
    if args.whole_process:
        speedup = rows[-1][-1]
        lines += ["", target_line("speedup", speedup, WHOLE_PROCESS_TARGET, "{:.1f}×")]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
