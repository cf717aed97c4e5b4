import csv

import pytest
from helpers import ledger_rows

from virnucpro.reads.ledger import (
    COLUMNS,
    LedgerRow,
    format_row,
    header,
    read_ledger_table,
)
from virnucpro.reads.preparation import prepare_reads


def test_the_parser_reads_what_a_plain_tsv_reader_reads(reference_dir, tmp_path):
    prepared = prepare_reads(reference_dir / "reads_public.fa", 500, tmp_path)
    table = read_ledger_table(prepared.ledger)
    with prepared.ledger.open(newline="") as handle:
        plain = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(plain) == len(table) == prepared.counts.chunks
    assert tuple(table.columns) == COLUMNS
    as_text = [{k: str(v) for k, v in row.items()} for row in table.to_dict("records")]
    assert as_text == plain


def test_rows_round_trip_including_an_empty_read(tmp_path):
    rows = [
        LedgerRow("r1", 5, "r1_chunk_1", 0, 5, "r1_chunk_1F1", 0, "ok"),
        LedgerRow("r2", 0, "", 0, 0, "", 0, "empty_read"),
    ]
    path = tmp_path / "ledger.tsv"
    path.write_text(header() + "".join(map(format_row, rows)))
    assert ledger_rows(path) == rows
    assert read_ledger_table(path)["chunk_id"].tolist() == ["r1_chunk_1", ""]


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path):
    path = tmp_path / "other.tsv"
    path.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="not a VirNucPro ledger"):
        read_ledger_table(path)
