"""The Grafana dashboard in k8s/monitoring is one Grafana imports. Whether its queries work, and that every
metric bread exports has a panel, a real Prometheus scraping bread shows (tests/e2e/test_observability.py)."""
import json

from agents.settings import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "k8s" / "monitoring" / "bread-dashboard.json"


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
