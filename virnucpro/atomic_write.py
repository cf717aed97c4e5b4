"""Write-then-rename, so a file that exists is always complete.

A killed worker or an interrupted run can leave a temporary file behind, never a
truncated result that a resumed run would mistake for a finished one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


@contextmanager
def partial_file(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to: renamed to `path` when the block
    ends, removed if it raises."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq  # here: the command line imports this module early

    with partial_file(path) as partial:
        pq.write_table(table, partial)


def write_text(path: Path, text: str) -> None:
    with partial_file(path) as partial:
        partial.write_text(text)
