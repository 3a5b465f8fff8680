"""What someone running bread sees of it: a real Prometheus scraping it answers every query of the dashboard and
runs every alert rule without error, and the queries about orders return data; every service's log is one JSON
object per line (the shared system runs with BREAD_LOG_FORMAT=json, as Kubernetes does); one order is one trace
across every service (the shared system sends its spans to the tests' collector)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import aiohttp
import pytest
import yaml

from agents.catalog import catalog
from agents.settings import PROJECT_ROOT
from ops.cli import FAUST_SERVICES, SERVICES
from ops.localsystem import free_port
from tests.e2e.conftest import CAKE, System, confirm, eventually, log_records, mypage_row, place, produce, until_status

DASHBOARD = PROJECT_ROOT / "k8s" / "monitoring" / "bread-dashboard.json"
ALERTS = PROJECT_ROOT / "k8s" / "overlays" / "prod" / "alerts.yaml"
FAMILY = re.compile(r"\b(bread_[a-z_]+?)(?:_bucket|_count|_sum|_total|_created)?\b")
# What orders and a poison message move: a query on these alone returns data once a few orders went through.
# The others count what these orders never do (breaker transitions, refusals, saga deadlines passed, ...), or are
# kube-state-metrics' own, and may rightly answer nothing here.
MOVED_BY_ORDERS = {
    "bread_http_requests", "bread_http_request_seconds", "bread_saga_seconds", "bread_events_consumed",
    "bread_events_emitted", "bread_consumer_lag", "bread_poison_events", "bread_breaker_state",
    "bread_breaker_calls", "bread_event_delay_seconds", "bread_bulkhead_limit", "bread_bulkhead_in_flight",
    "bread_bulkhead_waiting", "bread_event_loop_late_seconds",
}

RECORD = {"time", "level", "logger", "message", "service"}


async def test_every_line_of_every_service_is_one_json_record_naming_the_service(system):
    status, order, headers = await system.request("POST", f"{system.url('gateway')}/orders", json=CAKE)
    assert status == 201, order
    await until_status(system, order["id"], "Confirming")
    for service in SERVICES:
        records = log_records(system, service)
        assert records, f"{service} logged nothing"
        assert all(RECORD <= set(r) and r["service"] == service for r in records), service
    for worker in FAUST_SERVICES:  # Faust's and aiokafka's own records too, not only bread's
        loggers = {r["logger"].split(".")[0] for r in log_records(system, worker)}
        assert {"faust", "aiokafka"} <= loggers, (worker, loggers)

    async def access_record() -> dict | None:
        return next((r for r in log_records(system, "gateway") if r["logger"] == "gateway.access"
                     and r["path"] == "/orders" and r["correlationId"] == headers["X-Correlation-ID"]), None)
    record = await eventually(access_record, timeout=5, what="the gateway's access record of the order")
    assert record["method"] == "POST" and record["status"] == 201 and record["durationMs"] > 0
    assert record["message"].startswith("POST /orders 201 ")


class Prometheus:
    """Debian's Prometheus, scraping every service of the test system every second and evaluating bread's alert
    rules, on a free port with its data in the test's folder."""

    def __init__(self, system: System, folder) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("this test needs Prometheus: apt-get install prometheus (.ci/run installs it)")
        (folder / "rules.yaml").write_text(yaml.safe_dump(yaml.safe_load(ALERTS.read_text())["spec"]))
        targets = [{"targets": [f"127.0.0.1:{system.ports[service]}"],
                    "labels": {"namespace": "bread", "pod": service}} for service in SERVICES]
        (folder / "prometheus.yaml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": "bread", "static_configs": targets}],
        }))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(folder / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yaml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"], stdout=self.log, stderr=subprocess.STDOUT)

    async def get(self, http: aiohttp.ClientSession, path: str, **params: str) -> dict:
        async with http.get(f"{self.url}{path}", params=params) as answer:
            return await answer.json(content_type=None)

    async def query(self, http: aiohttp.ClientSession, expr: str) -> dict:
        return await self.get(http, "/api/v1/query", query=expr)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
async def prometheus(system, tmp_path):
    server = Prometheus(system, tmp_path)
    try:
        async def scraping_all() -> bool:
            if server.process.poll() is not None:
                pytest.fail(f"Prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            try:
                async with system.http.get(f"{server.url}/-/ready") as ready:
                    if ready.status != 200:
                        return False
            except aiohttp.ClientError:
                return False
            targets = (await server.get(system.http, "/api/v1/targets"))["data"]["activeTargets"]
            return len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets)
        await eventually(scraping_all, timeout=60, what="Prometheus scraping every service")
        yield server
    finally:
        server.stop()


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every query of every panel."""
    return [(panel["title"], target["expr"]) for panel in json.loads(DASHBOARD.read_text())["panels"]
            for target in panel.get("targets", [])]


def families(expr: str) -> set[str]:
    return set(FAMILY.findall(expr))


async def test_prometheus_answers_every_dashboard_query_and_runs_every_alert_rule(system, kafka, prometheus):
    await produce(kafka, catalog().topics["orders"].name, None, b"not an event")  # the dead-letter panel's data
    queries = dashboard_queries()
    about_orders = [(title, expr) for title, expr in queries if families(expr) <= MOVED_BY_ORDERS]
    assert about_orders, "no dashboard query is about orders"

    async def answers() -> dict[str, dict]:
        order = await place(system, via="gateway", body=CAKE)
        await until_status(system, order["id"], "Confirming")
        await confirm(system, order["id"])
        await mypage_row(system, order["id"], "Confirmed")
        return {expr: await prometheus.query(system.http, expr) for _, expr in queries}

    async def every_order_query_has_data() -> dict[str, dict] | None:
        answered = await answers()
        refused = {title: answered[expr].get("error") for title, expr in queries
                   if answered[expr]["status"] != "success"}
        assert refused == {}, "dashboard queries Prometheus refused"
        empty = [title for title, expr in about_orders if not answered[expr]["data"]["result"]]
        print(f"dashboard queries about orders without data yet: {empty}")  # shown if the wait fails
        return answered if not empty else None
    await eventually(every_order_query_has_data, timeout=90, what="every dashboard query about orders answering data")

    async def every_rule_evaluated() -> list[dict] | None:
        groups = (await prometheus.get(system.http, "/api/v1/rules"))["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else None
    rules = await eventually(every_rule_evaluated, what="Prometheus evaluating every alert rule")
    assert {rule["name"] for rule in rules} == {rule["alert"] for group in yaml.safe_load(ALERTS.read_text())[
        "spec"]["groups"] for rule in group["rules"]}
    assert {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"} == {}

    scraped = (await prometheus.get(system.http, "/api/v1/label/__name__/values"))["data"]
    exported = {family for name in scraped for family in families(name)}
    charted = {family for _, expr in queries for family in families(expr)}
    assert exported - charted == set(), "a metric bread exports without a panel: add one to bread-dashboard.json"


async def test_one_order_is_one_trace_across_the_gateway_order_pay_and_every_context(system, traces):
    status, order, headers = await system.request("POST", f"{system.url('gateway')}/orders", json=CAKE)
    assert status == 201, order
    await mypage_row(system, order["id"], "Confirming")

    async def access_record() -> dict | None:  # the log line of the request names its trace
        return next((r for r in log_records(system, "gateway") if r["logger"] == "gateway.access"
                     and r.get("correlationId") == headers["X-Correlation-ID"] and r["path"] == "/orders"), None)
    trace_id = (await eventually(access_record, timeout=5, what="the order's access record"))["traceId"]

    wanted = {"bread-gateway": "POST /orders", "bread-order": "charge at pay", "bread-pay": "ledger write",
              "bread-order-worker": "order handles OrderPlaced", "bread-bakery": "bakery handles PayApproved",
              "bread-mypage": "mypage handles bread-order-orders-changelog"}

    async def whole_trace() -> list | None:
        """The trace once every service's span is there, and the parent of each (they are exported in batches)."""
        spans = [span for span in traces.spans() if span.trace_id == trace_id]
        named = {(span.service, span.name) for span in spans}
        ids = {span.span_id for span in spans}
        print(f"spans of the trace so far: {sorted(named)}")  # shown if the wait fails
        every_service = all(any(s == service and n.startswith(name) for s, n in named)
                            for service, name in wanted.items())
        return spans if every_service and all(span.parent_id in ids or not span.parent_id for span in spans) \
            else None
    spans = await eventually(whole_trace, timeout=30, what=f"the spans of trace {trace_id} from every service")
    roots = [span for span in spans if not span.parent_id]
    assert [(root.service, root.name) for root in roots] == [("bread-gateway", "POST /orders")]
    by_id = {span.span_id: span for span in spans}
    ledger_write = next(span for span in spans if span.name == "ledger write")
    assert by_id[ledger_write.parent_id].service == "bread-pay"  # pay's server span, the order edge's call's child
    assert by_id[by_id[ledger_write.parent_id].parent_id].name == "charge at pay"
    assert ledger_write.attributes["order.id"] == order["id"]
