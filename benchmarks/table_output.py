"""How every benchmark reports: the table on stdout, and in a file when asked."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out: Path | None) -> None:
    """Print the table; with `--out FILE` also write it (markdown) for RESULTS.md."""
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")
