"""A VirNucPro page in the Dask dashboard, beside Dask's own pages.

It shows what the terminal view shows (one row per worker: GPU, utilisation, memory,
tokens/s, groups queued and done, work stolen; progress; recent events), refreshed
every second, at `/individual-virnucpro` on the scheduler's dashboard (Dask's "More"
menu lists it as "Virnucpro"). Dask reads its pages when a scheduler starts, so
`register` runs before the local cluster does; the page shows the state `RunMonitor`
last published in this process, which is where a local cluster's scheduler runs. A
cluster given by address serves only its own pages.
"""

from __future__ import annotations

import html
from typing import Any

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, DataTable, Div, TableColumn

from virnucpro.monitoring.live_dashboard import COLUMNS, DashboardState, event_lines, worker_cells

PAGE = "/individual-virnucpro"

_latest = DashboardState()


def publish(state: DashboardState) -> None:
    """Make `state` what the page shows from its next refresh on."""
    global _latest
    _latest = state


def table_data(state: DashboardState) -> dict[str, list[str]]:
    """The worker table as bokeh column data, cells as the terminal shows them."""
    rows = [worker_cells(w) for w in state.workers]
    return {name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)}


def summary_html(state: DashboardState) -> str:
    events = "\n".join(map(html.escape, event_lines(state))) or "no events yet"
    return f"<h3>VirNucPro: groups {state.done}/{state.total}</h3><pre>{events}</pre>"


def _document(scheduler: Any, extra: dict, doc: Any) -> None:
    """Build one browser session's page (Dask calls this per session)."""
    source = ColumnDataSource(table_data(_latest))
    table = DataTable(
        source=source,
        columns=[TableColumn(field=name, title=name) for name in COLUMNS],
        sizing_mode="stretch_width",
        index_position=None,
    )
    summary = Div(text=summary_html(_latest), sizing_mode="stretch_width")

    def refresh() -> None:
        source.data = table_data(_latest)
        summary.text = summary_html(_latest)

    doc.add_periodic_callback(refresh, 1000)
    doc.add_root(column(summary, table, sizing_mode="stretch_width"))
    doc.title = "VirNucPro"


def register() -> None:
    """Add the page to the dashboards of schedulers started from now on, in this process."""
    from distributed.dashboard.scheduler import applications

    applications.setdefault(PAGE, _document)


def page_link(dashboard_link: str) -> str | None:
    """The page's URL given Dask's dashboard link (…/status), if this process's
    schedulers serve it (a remote scheduler does not)."""
    from distributed.dashboard.scheduler import applications

    if applications.get(PAGE) is not _document:
        return None
    return dashboard_link.rsplit("/", 1)[0] + PAGE
