"""Write-then-rename, so a file that exists is always complete.

A killed worker or an interrupted run can leave a temporary file behind, never a
truncated result that a resumed run would mistake for a finished one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_parquet(table: pa.Table, path: Path) -> None:
    partial = _partial(path)
    pq.write_table(table, partial)
    os.replace(partial, path)


def write_text(path: Path, text: str) -> None:
    partial = _partial(path)
    partial.write_text(text)
    os.replace(partial, path)
