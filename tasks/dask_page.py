"""A VirNucPro page in the Dask dashboard, beside Dask's own pages.

It shows what the terminal view shows (one row per worker: GPU, utilisation, memory,
tokens/s, groups queued and done, work stolen; progress; recent events), refreshed
every second, at `/individual-virnucpro` on the scheduler's dashboard (Dask's "More"
menu lists it as "Virnucpro"). The whole page is one HTML `Div` whose text is replaced
on each refresh: a Bokeh `DataTable` given new column data did not redraw in the
browser. Dask reads its pages when a scheduler starts, so `register` runs before the
local cluster does; the page shows the state `RunMonitor` last published in this
process, which is where a local cluster's scheduler runs. A cluster given by address
serves only its own pages.
"""

from __future__ import annotations

import html
from typing import Any

from bokeh.models import Div

from virnucpro.monitoring.live_dashboard import COLUMNS, DashboardState, event_lines, worker_cells

PAGE = "/individual-virnucpro"
REFRESH_MS = 1000

_latest = DashboardState()


def publish(state: DashboardState) -> None:
    """Make `state` what the page shows from its next refresh on."""
    global _latest
    _latest = state


def table_html(state: DashboardState) -> str:
    """The worker table, cells as the terminal shows them."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in worker_cells(w)) + "</tr>"
        for w in state.workers
    )
    return f'<table class="virnucpro-workers"><tr>{head}</tr>{rows}</table>'


def page_html(state: DashboardState) -> str:
    """Progress, the worker table and recent events."""
    events = "\n".join(map(html.escape, event_lines(state))) or "no events yet"
    return (
        f"<h3>VirNucPro: groups {state.done}/{state.total}</h3>"
        f"{table_html(state)}<pre>{events}</pre>"
    )


def _document(scheduler: Any, extra: dict, doc: Any) -> None:
    """Build one browser session's page (Dask calls this per session)."""
    page = Div(
        text=page_html(_latest),
        sizing_mode="stretch_width",
        styles={"font-family": "sans-serif"},
        stylesheets=["table.virnucpro-workers td, table.virnucpro-workers th "
                     "{ padding: 2px 10px; text-align: right; border-bottom: 1px solid #ddd; }"],
    )  # fmt: skip

    def refresh() -> None:
        page.text = page_html(_latest)

    doc.add_periodic_callback(refresh, REFRESH_MS)
    doc.add_root(page)
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
