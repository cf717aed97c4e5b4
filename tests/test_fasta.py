"""Bad input: every case gets a clear message (file, record, problem) or is handled
and reported; nothing is lost silently."""

import gzip
import logging
import re

import pytest
from helpers import ledger_rows

from virnucpro.errors import InputError
from virnucpro.reads.fasta import FastaReader, fasta_stem
from virnucpro.reads.preparation import prepare_reads


def _write(tmp_path, content: bytes, name="reads.fa"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _reads(path):
    return [(r.number, r.id, r.sequence) for r in FastaReader(path)]


def test_plain_and_gzip_read_the_same(tmp_path):
    content = b">r1 desc here\nACGT\nAC\n>r2\nGGG\n"
    plain = _write(tmp_path, content)
    packed = _write(tmp_path, gzip.compress(content), "reads.fa.gz")
    assert _reads(plain) == _reads(packed) == [(1, "r1", "ACGTAC"), (2, "r2", "GGG")]


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"missing\.fa: no such file"):
        FastaReader(tmp_path / "missing.fa")


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = _write(tmp_path, content)
    with pytest.raises(InputError, match=r"reads\.fa: the file is empty"):
        _reads(path)


def test_not_fasta(tmp_path):
    path = _write(tmp_path, b"ACGTACGT\n>r1\nACGT\n")
    with pytest.raises(InputError, match=r"reads\.fa: not FASTA: the first line 'ACGTACGT'"):
        _reads(path)


def test_binary_junk(tmp_path):
    path = _write(tmp_path, bytes(range(256)) * 4)
    with pytest.raises(InputError, match=r"reads\.fa: the file contains binary data"):
        _reads(path)


def test_truncated_gzip_names_the_last_good_record(tmp_path):
    content = "".join(f">r{i}\n{'ACGT' * 50}\n" for i in range(2000)).encode()
    packed = gzip.compress(content)
    path = _write(tmp_path, packed[: len(packed) // 2], "reads.fa.gz")
    with pytest.raises(InputError, match=r"reads\.fa\.gz: the gzip data is truncated or corrupt"):
        _reads(path)
    # Read in small blocks, the message names the last record read intact.
    with pytest.raises(InputError) as error:
        for _ in FastaReader(path).blocks(block_bytes=10_000):
            pass
    read_id = re.search(r"corrupt after read r(\d+):", str(error.value)).group(1)
    assert int(read_id) > 10


def test_crlf_line_endings_are_read_and_reported(tmp_path, caplog):
    path = _write(tmp_path, b">r1 x\r\nACGT\r\nAC\r\n>r2\r\nGG\r\n")
    with caplog.at_level(logging.INFO, logger="virnucpro.reads.fasta"):
        assert _reads(path) == [(1, "r1", "ACGTAC"), (2, "r2", "GG")]
    assert "CRLF line endings" in caplog.text


def test_empty_record_is_kept_and_reported_in_the_ledger(tmp_path):
    path = _write(tmp_path, b">r1\nACGTAC\n>empty\n>r3\nATGGCC\n")
    assert _reads(path)[1] == (2, "empty", "")
    result = prepare_reads(path, 300, tmp_path / "out")
    rows = ledger_rows(result.ledger)
    assert [(r.read_id, r.status) for r in rows] == [
        ("r1", "ok"),
        ("empty", "empty_read"),
        ("r3", "ok"),
    ]
    assert result.counts.empty_reads == 1


def test_empty_header(tmp_path):
    path = _write(tmp_path, b">r1\nACGT\n>\nACGT\n")
    with pytest.raises(InputError, match=r"reads\.fa: record 2: empty header \(no id\)"):
        _reads(path)


def test_duplicate_ids_are_refused_with_the_full_list(tmp_path):
    path = _write(tmp_path, b">a\nAC\n>b\nAC\n>a x\nAC\n>c\nA\n>b\nA\n>a\nA\n")
    with pytest.raises(InputError) as error:
        _reads(path)
    assert str(error.value) == (
        f"{path}: 2 read ids occur more than once: a (records 1, 3, 6); b (records 2, 5). "
        "Read ids must be unique: outputs are keyed by them."
    )


def test_lowercase_and_iupac_are_accepted(tmp_path):
    path = _write(tmp_path, b">r1\nacgtNRYSWKMBDHVu\n")
    assert _reads(path) == [(1, "r1", "acgtNRYSWKMBDHVu")]


@pytest.mark.parametrize(("bad", "shown"), [("-", "'-'"), ("*", "'*'"), ("1", "'1'"), ("é", "'Ã'")])
def test_non_nucleotide_character_is_refused_with_record_and_position(tmp_path, bad, shown):
    path = _write(tmp_path, f">ok\nACGT\n>r2 d\nACG{bad}T\n".encode())
    with pytest.raises(InputError) as error:
        _reads(path)
    assert str(error.value) == (
        f"{path}: record 2 (r2): character {shown} at position 4 is not a nucleotide code"
    )


def test_reads_of_one_and_two_nt_are_too_short_chunks(tmp_path):
    path = _write(tmp_path, b">one\nA\n>two\nAC\n")
    result = prepare_reads(path, 300, tmp_path / "out")
    rows = ledger_rows(result.ledger)
    assert [(r.chunk_id, r.chunk_length, r.status) for r in rows] == [
        ("one_chunk_1", 1, "too_short"),
        ("two_chunk_1", 2, "too_short"),
    ]
    assert result.chunked.read_text() == ">one_chunk_1\nA\n>two_chunk_1\nAC\n"


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        FastaReader(tmp_path)


@pytest.mark.parametrize(
    ("name", "stem"),
    [("a.fa", "a"), ("a.fasta.gz", "a"), ("a.FNA", "a"), ("a.b.fa", "a.b"), ("reads", "reads")],
)
def test_fasta_stem(tmp_path, name, stem):
    assert fasta_stem(tmp_path / name) == stem


@pytest.mark.parametrize("workers", [1, 2])
def test_record_numbers_count_across_blocks(tmp_path, workers):
    # Blocks are numbered where they are consumed in order: an error in a late block
    # still names the record's number in the whole file.
    records = [f">r{i}\n{'ACGT' * 40}\n" for i in range(1, 800)]
    records[612] = ">r613\nACGTXACGT\n"
    path = _write(tmp_path, "".join(records).encode())
    expected = f"{path}: record 613 (r613): character 'X' at position 5 is not a nucleotide code"
    with pytest.raises(InputError) as error:
        prepare_reads(path, 300, tmp_path / "out", workers=workers, block_bytes=5_000)
    assert str(error.value) == expected


@pytest.mark.parametrize("compress", [False, True])
def test_blocks_hold_whole_records_and_a_small_file_is_one_block(tmp_path, compress):
    records = [f">r{i}\n{'ACGT' * (10 + i % 7)}\n".encode() for i in range(300)]
    records[150] = b">long\n" + b"ACGT" * 3000 + b"\n"  # longer than a block
    data = b"".join(records)
    path = _write(tmp_path, gzip.compress(data) if compress else data)
    blocks = [block.data for block in FastaReader(path).blocks(5_000)]
    assert b"".join(blocks) == data
    assert all(block.startswith(b">") and block.endswith(b"\n") for block in blocks)
    assert len(blocks) > 3 and max(map(len, blocks)) > 12_000
    assert [block.data for block in FastaReader(path).blocks(len(data))] == [data]
