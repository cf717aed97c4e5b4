"""The per-read ledger: where every read and chunk went.

One row per chunk (and one row for a read with no sequence), so that no read or chunk
disappears without a line saying why: either the frames it kept, or the reason it has
none. Later stages read it to account for every read in the final verdicts.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, get_type_hints

if TYPE_CHECKING:
    import pandas as pd

# Status of a read with an empty sequence: it has no chunk at all.
STATUS_EMPTY_READ = "empty_read"


class LedgerRow(NamedTuple):
    """One chunk of one read, or a read that produced no chunk (`chunk_id` empty).

    A NamedTuple rather than a dataclass: preparation makes one per chunk, millions of
    them, and tuples are several times cheaper to build and format."""

    read_id: str
    read_length: int
    chunk_id: str
    chunk_start: int
    chunk_length: int
    kept_frames: str  # comma-separated frame ids, e.g. "r1_chunk_1F1,r1_chunk_1R2"
    ambiguous_codons_dropped: int  # codons with non-ACGT bases dropped from kept frames
    status: str  # "ok" or why the chunk has no kept frame


COLUMNS = LedgerRow._fields
_INT_COLUMNS = {name for name, kind in get_type_hints(LedgerRow).items() if kind is int}


def header() -> str:
    return "\t".join(COLUMNS) + "\n"


def format_columns(*columns: list) -> list[str]:
    """Lines for rows given column by column, in COLUMNS order (no tuple per row: this
    runs once per chunk, millions of times)."""
    if len(columns) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {len(columns)}")
    return [
        f"{a}\t{b}\t{c}\t{d}\t{e}\t{f}\t{g}\t{h}\n"
        for a, b, c, d, e, f, g, h in zip(*columns, strict=True)
    ]


def format_row(row: LedgerRow) -> str:
    """One line, formatted exactly as `format_columns` formats many."""
    return format_columns(*([value] for value in row))[0]


def read_ledger_table(path: Path) -> pd.DataFrame:
    """The ledger as a DataFrame: the one parser of the format (millions of rows).
    pandas is imported here, not with the module: preparation writes ledgers without
    it, and a short `virnucpro prepare` would spend a third of its time importing it."""
    import pandas as pd

    table = pd.read_csv(
        path,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype={name: "int64" if name in _INT_COLUMNS else "str" for name in COLUMNS},
    )
    if tuple(table.columns) != COLUMNS:
        raise ValueError(f"{path}: not a VirNucPro ledger (columns {list(table.columns)})")
    return table
