"""The VirNucPro page in the Dask dashboard: the terminal view's cells, served live."""

import time
import urllib.request

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
    data = dask_page.table_data(STATE)
    assert tuple(data) == COLUMNS
    rows = list(zip(*data.values(), strict=True))
    assert rows == [worker_cells(w) for w in STATE.workers]
    assert rows[0][2:5] == ("91", "40.0/80 GiB", "98,765")
    assert dask_page.table_data(DashboardState()) == {name: [] for name in data}


def test_summary_shows_progress_and_escapes_event_text():
    text = dask_page.summary_html(STATE)
    assert "groups 5/16" in text
    assert "g7: &lt;corrupt&gt; &amp; gone" in text and "<corrupt>" not in text


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
