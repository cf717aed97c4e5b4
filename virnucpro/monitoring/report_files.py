"""Writing a run's report next to its results: report.md, report.html, telemetry.json.

telemetry.json holds the report's inputs (every record, the GPU readings, events,
run facts) beside its figures, so the report can be re-rendered or re-analysed later.
All three are written atomically: a file that exists is complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from virnucpro.atomic_write import write_text
from virnucpro.monitoring.report import Report, render_markdown
from virnucpro.monitoring.report_html import render_html


@dataclass(frozen=True)
class WrittenReport:
    markdown: Path
    html: Path
    telemetry: Path


def telemetry_payload(report: Report) -> dict:
    return {
        "written_at": time.time(),
        "info": asdict(report.info),
        "run": report.run.to_dict(),
        "records": report.records.to_dict(),
        "metadata": report.metadata.to_dict() if report.metadata else None,
        "events": [asdict(e) for e in report.events],
        "targets": [{**asdict(t), "passed": t.passed} for t in report.targets],
        "projections": [asdict(p) for p in report.projections],
        "scaling": asdict(report.scaling) if report.scaling else None,
    }


def write_report(out_dir: Path | str, report: Report) -> WrittenReport:
    """Write report.md, report.html and telemetry.json into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = WrittenReport(out / "report.md", out / "report.html", out / "telemetry.json")
    write_text(written.markdown, render_markdown(report))
    write_text(written.html, render_html(report))
    write_text(written.telemetry, json.dumps(telemetry_payload(report), indent=1))
    return written
