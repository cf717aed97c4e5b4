"""How every benchmark reports: the table on stdout, and in a file when asked."""

from __future__ import annotations

from pathlib import Path


def publish(lines: list[str], out: Path | None) -> None:
    """Print the table; with `--out FILE` also write it (markdown) for RESULTS.md."""
    table = "\n".join(lines)
    print(table)
    if out:
        out.write_text(table + "\n")


def target_line(what: str, measured: float, target: float, fmt: str = "{:,.0f}") -> str:
    """One acceptance target under a table: the figure, its threshold, PASS or FAIL."""
    verdict = "PASS" if measured >= target else "FAIL"
    return f"- {what}: {fmt.format(measured)} (target ≥ {fmt.format(target)}): **{verdict}**"
