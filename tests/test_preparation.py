import gzip
import io
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import original_prepare
import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser
from helpers import ledger_rows, run_in_pty
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.reads.fasta import FastaReader, RecordBlock, parse_block
from virnucpro.reads.ledger import COLUMNS, STATUS_EMPTY_READ
from virnucpro.reads.preparation import output_paths, prepare_reads


def _records(path: Path) -> list[tuple[str, str]]:
    with open(path) as handle:
        return list(SimpleFastaParser(handle))


# (input, chunk length, reference prefix for the identified files)
REFERENCE_CASES = [
    ("reads_public", 300, "reads_public_chunked300"),
    ("reads_public", 500, "reads_public_chunked500"),
    ("test_with_orfs", 500, "test_with_orfs"),
    ("test_sequences_small", 500, "test_sequences_small"),
]


@pytest.mark.parametrize(("stem", "chunk_length", "identified"), REFERENCE_CASES)
def test_prepare_reproduces_the_original_files(
    reference_dir, tmp_path, stem, chunk_length, identified
):
    result = prepare_reads(reference_dir / f"{stem}.fa", chunk_length, tmp_path)
    expected = {
        result.chunked: reference_dir / f"{stem}_chunked{chunk_length}.fa",
        result.nucleotide: reference_dir / f"{identified}_identified_nucleotide.fa",
        result.protein: reference_dir / f"{identified}_identified_protein.faa",
    }
    for ours, theirs in expected.items():
        assert _records(ours) == _records(theirs), ours.name
        # Same bytes too: line wrapping of the chunk file, one line per frame elsewhere.
        assert ours.read_bytes() == theirs.read_bytes(), ours.name


def test_worker_processes_give_the_same_files(reference_dir, tmp_path):
    # Small blocks force many blocks through the process pool; pieces must be joined
    # back in input order.
    serial = prepare_reads(reference_dir / "reads_public.fa", 300, tmp_path / "a", workers=1)
    pooled = prepare_reads(
        reference_dir / "reads_public.fa", 300, tmp_path / "b", workers=2, block_bytes=20_000
    )
    for name in ("chunked", "nucleotide", "protein", "ledger"):
        assert getattr(serial, name).read_bytes() == getattr(pooled, name).read_bytes()
    assert serial.counts == pooled.counts
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        p.name for p in (tmp_path / "a").iterdir()
    )


def test_reference_counts_and_ledger(reference_dir, tmp_path):
    result = prepare_reads(reference_dir / "reads_public.fa", 300, tmp_path)
    assert (result.counts.reads, result.counts.chunks, result.counts.frames) == (400, 1486, 902)
    rows = ledger_rows(result.ledger)
    assert len(rows) == 1486
    assert len({r.read_id for r in rows}) == 400
    kept = [f for r in rows if r.kept_frames for f in r.kept_frames.split(",")]
    assert kept == [rid for rid, _ in _records(result.protein)]
    assert sum(r.status != "ok" for r in rows) == result.counts.chunks_without_frames == 665


def test_output_names_follow_the_original(tmp_path):
    paths = output_paths(Path("x/reads.fasta.gz"), 500, tmp_path)
    assert paths.chunked.name == "reads_chunked500.fa"
    assert paths.nucleotide.name == "reads_chunked500_identified_nucleotide.fa"
    assert paths.protein.name == "reads_chunked500_identified_protein.faa"
    assert paths.ledger.name == "reads_chunked500_ledger.tsv"


read_sets = st.lists(
    st.text(alphabet="ACGTACGTACGTnN", min_size=0, max_size=1400), min_size=1, max_size=25
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(read_sets, st.sampled_from([300, 500]), st.integers(1, 5000))
def test_ledger_accounts_for_every_read_and_chunk(tmp_path, sequences, chunk_length, block):
    reads = [(f"r{i}", s) for i, s in enumerate(sequences)]
    fasta = tmp_path / "reads.fa"
    fasta.write_text("".join(f">{rid} some description\n{s}\n" for rid, s in reads))
    result = prepare_reads(fasta, chunk_length, tmp_path / "out", block_bytes=block, workers=1)
    chunks, frames = original_prepare.prepare(reads, chunk_length)

    assert _records(result.chunked) == chunks
    assert _records(result.protein) == [(fid, p) for fid, p, _ in frames]
    assert _records(result.nucleotide) == [(fid, n) for fid, _, n in frames]
    rows = ledger_rows(result.ledger)
    assert [r.read_id for r in rows if r.chunk_id] == [c.rsplit("_chunk_", 1)[0] for c, _ in chunks]
    assert [r.chunk_id for r in rows if r.chunk_id] == [c for c, _ in chunks]
    assert {r.read_id for r in rows} == {rid for rid, _ in reads}
    empty = {rid for rid, s in reads if not s}
    assert {r.read_id for r in rows if r.status == STATUS_EMPTY_READ} == empty
    assert result.counts.empty_reads == len(empty)
    assert result.counts.reads == len(reads)
    for r in rows:
        assert (r.status == "ok") == bool(r.kept_frames)


def test_hundred_kb_contig(tmp_path):
    import random

    rng = random.Random(7)
    contig = "".join(rng.choice("ACGT") for _ in range(100_000))
    fasta = tmp_path / "contig.fa"
    fasta.write_text(f">contig\n{contig}\n")
    result = prepare_reads(fasta, 500, tmp_path)
    chunks, frames = original_prepare.prepare([("contig", contig)], 500)
    assert result.counts.chunks == len(chunks) == 200
    assert _records(result.protein) == [(fid, p) for fid, p, _ in frames]


def test_unsupported_chunk_length_is_refused(reference_dir, tmp_path):
    with pytest.raises(InputError, match="chunk length 400 is not supported"):
        prepare_reads(reference_dir / "test_with_orfs.fa", 400, tmp_path)


def test_failed_input_leaves_no_outputs(tmp_path):
    fasta = tmp_path / "reads.fa"
    fasta.write_text(">a\nACGT\n>b\nACGT\n>a\nAC\n")
    with pytest.raises(InputError):
        prepare_reads(fasta, 300, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_cli_prepare_writes_files_and_reports_counts(reference_dir, tmp_path, capsys):
    assert (
        main(
            [
                "prepare",
                str(reference_dir / "test_with_orfs.fa"),
                "--chunk-length",
                "500",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2 reads (0 empty) → 2 chunks → 4 stop-free frames" in out
    ledger = tmp_path / "test_with_orfs_chunked500_ledger.tsv"
    assert ledger.read_text().splitlines()[0].split("\t") == list(COLUMNS)


def test_cli_error_is_one_line_without_traceback(tmp_path):
    missing = tmp_path / "missing.fa"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "virnucpro.cli",
            "prepare",
            str(missing),
            "--chunk-length",
            "300",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"virnucpro: error: {missing}: no such file"


def test_cli_shows_a_progress_bar_on_a_terminal(reference_dir, tmp_path):
    returncode, output = run_in_pty(
        [sys.executable, "-m", "virnucpro.cli", "prepare", str(reference_dir / "reads_public.fa"),
         "--chunk-length", "300", "--out", str(tmp_path)],
        {**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert returncode == 0, output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output)
    assert "preparing reads_public.fa" in text
    assert re.search(r"(\d+\.\d) ?/ ?\1 kB", text)  # the bar reaches the file's size
    assert "400 reads (0 empty)" in text


HEAVY_MODULES = ("torch", "prefect", "distributed", "pandas", "transformers", "rich")


def imported_modules(argv: list[str]) -> set[str]:
    """Top-level packages a Python command imports (from `-X importtime`)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}


def best_of_three(argv: list[str]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - started)
    return min(times)


def test_cli_help_is_instant():
    """`virnucpro --help` under 0.5 s: the heavy libraries are imported where used."""
    assert not imported_modules(["-m", "virnucpro.cli", "--help"]) & set(HEAVY_MODULES)
    virnucpro = str(Path(sys.executable).parent / "virnucpro")
    assert best_of_three([virnucpro, "--help"]) < 0.5


def test_cli_prepare_imports_only_what_it_uses(reference_dir, tmp_path):
    reads = str(reference_dir / "reads_public.fa")
    argv = ["-m", "virnucpro.cli", "prepare", reads, "--chunk-length", "300", "--out"]
    assert not imported_modules([*argv, str(tmp_path)]) & {*HEAVY_MODULES, "Bio"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ACGTNx> \n\t\xa0\r", max_size=60))
def test_blocks_parse_as_the_original_parser_reads(text):
    """Preparation splits records itself (fast); Biopython's parser, which the original
    tool uses, is the oracle: same records, and a refusal exactly when it would refuse."""
    block = RecordBlock(Path("x.fa"), 0, text.encode("latin-1"))
    try:
        got = [(read.id, read.sequence) for read in parse_block(block)]
    except InputError:
        got = None
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    records = list(SimpleFastaParser(io.StringIO(normalised)))
    ids = [title.split(None, 1)[0] if title.strip() else "" for title, _ in records]
    valid = all(ids) and all(re.fullmatch("[ACGTN]*", seq) for _, seq in records)
    assert got == ([(i, seq) for i, (_, seq) in zip(ids, records, strict=True)] if valid else None)


def test_blocks_of_a_plain_file_travel_as_their_place(reference_dir, tmp_path):
    """A block sent to a worker pickles as (file, offset, length) for a plain file, as
    bytes for gzip, and arrives the same either way."""
    plain = reference_dir / "reads_public.fa"
    packed = tmp_path / "reads.fa.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path, small in ((plain, True), (packed, False)):
        blocks = list(FastaReader(path).blocks(block_bytes=20_000))
        assert len(blocks) > 3
        for block in blocks:
            sent = pickle.dumps(block)
            assert (len(sent) < 500) == small
            assert pickle.loads(sent) == block
