import pytest

from virnucpro.reads.ledger import (
    COLUMNS,
    LedgerRow,
    format_row,
    header,
    read_ledger,
    read_ledger_table,
)
from virnucpro.reads.preparation import prepare_reads


def test_table_and_rows_read_the_same_ledger(reference_dir, tmp_path):
    prepared = prepare_reads(reference_dir / "reads_public.fa", 500, tmp_path)
    rows = list(read_ledger(prepared.ledger))
    table = read_ledger_table(prepared.ledger)
    assert len(rows) == len(table) == prepared.counts.chunks
    assert tuple(table.columns) == COLUMNS
    assert table.to_dict("records") == [row._asdict() for row in rows]


def test_rows_round_trip_including_an_empty_read(tmp_path):
    rows = [
        LedgerRow("r1", 5, "r1_chunk_1", 0, 5, "r1_chunk_1F1", 0, "ok"),
        LedgerRow("r2", 0, "", 0, 0, "", 0, "empty_read"),
    ]
    path = tmp_path / "ledger.tsv"
    path.write_text(header() + "".join(map(format_row, rows)))
    assert list(read_ledger(path)) == rows
    assert read_ledger_table(path)["chunk_id"].tolist() == ["r1_chunk_1", ""]


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a VirNucPro ledger"):
        list(read_ledger(path))
    with pytest.raises(ValueError, match="not a VirNucPro ledger"):
        read_ledger_table(path)
