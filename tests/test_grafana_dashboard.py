import json
import re
from pathlib import Path

import pytest
from helpers import scrape, telemetry_cluster

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboards" / "grafana_virnucpro.json"
METRIC = re.compile(r"\b((?:virnucpro|dask)_[A-Za-z0-9_]+)")
# The exposition format names a counter's samples with suffixes its TYPE line may lack.
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_importable(dashboard: dict) -> None:
    assert dashboard["schemaVersion"] == 39
    assert dashboard["uid"] and dashboard["title"] == "VirNucPro"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert panel["targets"], panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"GPU utilisation", "GPU memory", "Tokens/s per model", "Packing efficiency"} <= titles
    # Every expression names at least one metric the name check below can see.
    assert all(METRIC.search(expr) for expr in _exprs(dashboard))


def _exposed_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names | {n.removesuffix(s) for n in names for s in SUFFIXES if n.endswith(s)}


def test_every_metric_in_the_dashboard_is_exposed(dashboard: dict, tmp_path) -> None:
    with telemetry_cluster(tmp_path) as (cluster, client):
        held = client.submit(sum, [1, 2])  # so the worker reports dask_worker_tasks
        assert held.result() == 3
        (worker,) = client.scheduler_info()["workers"].values()
        exposed = _exposed_names(
            scrape(f"http://{worker['host']}:{worker['services']['dashboard']}/metrics")
        ) | _exposed_names(scrape(cluster.dashboard_link.replace("/status", "/metrics")))
    used = {name for expr in _exprs(dashboard) for name in METRIC.findall(expr)}
    assert "virnucpro_gpu_utilisation_percent" in used and "dask_scheduler_tasks" in used
    assert sorted(used - exposed) == []
