"""report.html: the report's sections as HTML with its figures inlined as SVG.

One self-contained file (no scripts, no external resources), so it opens from a
results directory, a mail attachment or an offline machine alike.
"""

from __future__ import annotations

import html
from typing import Any

from virnucpro.monitoring.plots import figures, svg
from virnucpro.monitoring.report import FIGURES, TEST_MODELS_NOTE, Report, sections

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.note { background: #fff3cd; padding: 0.6em; border: 1px solid #e0c36c; }
figure { margin: 1em 0; } figcaption { color: #444; }
"""


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report) -> str:
    """The whole report as one HTML page."""
    parts = ["<h1>VirNucPro run report</h1>"]
    if report.info.test_models:
        parts.append(f'<p class="note">{html.escape(TEST_MODELS_NOTE)}</p>')
    drawn = figures(report.records)
    for section in sections(report):
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.title == "Figures":
            parts.append(f"<p>{html.escape(section.points[0])}</p>")
            parts += [
                f"<figure>{svg(drawn[name])}<figcaption>{html.escape(text)}</figcaption></figure>"
                for name, text in FIGURES
            ]
            continue
        if section.points:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in section.points)
            parts.append(f"<ul>{items}</ul>")
        if section.table is not None:
            parts.append(_table(section.table))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>VirNucPro run report</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
