"""The Grafana dashboard in k8s/monitoring and the metrics bread exports stay in step."""
import json
import re

from prometheus_client.metrics import MetricWrapperBase

import agents.breaker
import agents.bulkhead
import agents.runtime.metrics
import agents.runtime.stalls
import api.http
from agents.settings import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "k8s" / "monitoring" / "bread-dashboard.json"
SUFFIXES = re.compile(r"_(bucket|count|sum|total|created)$")


def bread_families() -> set[str]:
    """The metrics bread defines (Faust's own sensors are not installed)."""
    modules = (agents.breaker, agents.bulkhead, agents.runtime.metrics, agents.runtime.stalls, api.http)
    metrics = [m for module in modules for m in vars(module).values() if isinstance(m, MetricWrapperBase)]
    return {m.describe()[0].name for m in metrics}


def dashboard_metrics(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {SUFFIXES.sub("", name) for e in exprs for name in re.findall(r"\bbread_[a-z_]+", e)}


def test_the_dashboard_has_one_panel_per_exported_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    used, exported = dashboard_metrics(dashboard), bread_families()
    assert used - exported == set(), "the dashboard queries metrics no service exports"
    assert exported - used == set(), "a metric without a panel: add one to k8s/monitoring/bread-dashboard.json"


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"]
            assert all(t["refId"] and t["expr"] for t in panel["targets"])
