"""The VirNucPro page in the Dask dashboard: the terminal view's cells, served live."""

import dataclasses
import time
import urllib.request

from bokeh.document import Document
from distributed import LocalCluster

from tasks import dask_page
from virnucpro.monitoring.live_dashboard import COLUMNS, DashboardState, WorkerStatus, worker_cells
from virnucpro.monitoring.telemetry import RunEvent

STATE = DashboardState(
    workers=[
        WorkerStatus("0", 0, 91.0, 40 * 2**30, 80 * 2**30, 98_765.0, 2, 5, 1),
        WorkerStatus("1", None, None, None, None, 0.0, 0, 0, 0),
    ],
    events=[RunEvent(time.time(), "failed", "", "g7: <corrupt> & gone")],
    done=5,
    total=16,
)


def test_table_holds_the_terminal_views_cells():
    text = dask_page.table_html(STATE)
    for name in COLUMNS:
        assert f"<th>{name}</th>" in text
    for worker in STATE.workers:
        assert "<tr><td>" + "</td><td>".join(worker_cells(worker)) + "</td></tr>" in text
    assert "<td>40.0/80 GiB</td><td>98,765</td>" in text


def test_page_shows_progress_and_escapes_event_text():
    text = dask_page.page_html(STATE)
    assert "groups 5/16" in text
    assert "g7: &lt;corrupt&gt; &amp; gone" in text and "<corrupt>" not in text


def test_the_served_document_shows_each_refresh():
    """What a browser session is served, refreshed twice: the Div's HTML follows the
    published state (a DataTable given new data did not redraw in a real browser)."""
    dask_page.publish(DashboardState(total=16))
    doc = Document()
    dask_page._document(None, {}, doc)
    (callback,) = doc.session_callbacks
    (page,) = doc.roots
    assert "groups 0/16" in page.text and "<td>" not in page.text
    later = dataclasses.replace(STATE, done=8)
    for state in (STATE, later):
        dask_page.publish(state)
        callback.callback()
        assert f"groups {state.done}/16" in page.text
        assert dask_page.table_html(state) in page.text
    assert callback.period == dask_page.REFRESH_MS


def test_a_local_schedulers_dashboard_serves_the_page():
    dask_page.register()
    dask_page.publish(STATE)
    with LocalCluster(
        n_workers=1, processes=False, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        link = dask_page.page_link(cluster.dashboard_link)
        assert link is not None and link.endswith("/individual-virnucpro")
        with urllib.request.urlopen(link, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200 and "<title>VirNucPro</title>" in page
        with urllib.request.urlopen(cluster.dashboard_link, timeout=30) as response:
            assert "individual-virnucpro" in response.read().decode()  # in the "More" menu
