import os
import re
import subprocess
import sys
from pathlib import Path

import original_prepare
import pytest
from Bio.SeqIO.FastaIO import SimpleFastaParser
from helpers import ledger_rows, run_in_pty
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virnucpro.cli import main
from virnucpro.errors import InputError
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
