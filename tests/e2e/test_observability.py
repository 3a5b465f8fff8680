"""What someone running bread sees of it: every service's log as one JSON object per line (the shared system
runs with BREAD_LOG_FORMAT=json, as Kubernetes does)."""
from __future__ import annotations

from ops.cli import FAUST_SERVICES, SERVICES
from tests.e2e.conftest import CAKE, eventually, log_records, until_status

RECORD = {"time", "level", "logger", "message", "service"}


async def test_every_line_of_every_service_is_one_json_record_naming_the_service(system):
    status, order, headers = await system.request("POST", f"{system.url('gateway')}/orders", json=CAKE)
    assert status == 201, order
    await until_status(system, order["id"], "Paid")
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
