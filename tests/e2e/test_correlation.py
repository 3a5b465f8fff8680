"""One correlation id follows an order from the HTTP call through every event of its saga."""
from __future__ import annotations

import uuid

from agents.correlation import KAFKA_HEADER
from tests.e2e.conftest import confirm, events_of, eventually, log_records, until_status

SAGA = {"OrderPlaced", "PayApproved", "BakeryTicketOpened", "BakeryConfirmed"}


async def test_the_callers_correlation_id_is_on_every_event_of_the_saga(system, kafka):
    trace = f"trace-{uuid.uuid4().hex}"
    status, order, headers = await system.request(
        "POST", f"{system.url('gateway')}/orders", json={"item": "croissant", "qty": 2},
        headers={"X-Correlation-ID": trace})
    assert status == 201 and headers["X-Correlation-ID"] == trace
    await until_status(system, order["id"], "Confirming")
    await confirm(system, order["id"])  # the baker's own request carries no id: the saga's is kept
    await until_status(system, order["id"], "Confirmed")

    async def whole_saga():
        found = await events_of(kafka, order["id"])
        return found if {event["type"] for event, _ in found} >= SAGA else None

    found = await eventually(whole_saga, what="every event of the saga on Kafka")
    for event, kafka_headers in found:
        assert event["correlationId"] == trace, event
        assert kafka_headers[KAFKA_HEADER] == trace.encode(), event["type"]
    _, shown, _ = await system.request("GET", f"{system.url('gateway')}/orders/{order['id']}")
    assert shown["correlationId"] == trace


async def test_a_caller_without_a_correlation_id_gets_a_new_one(system):
    system.stop("pay")
    try:
        status, body, headers = await system.request("POST", f"{system.url('gateway')}/orders",
                                                     json={"item": "cake", "qty": 1})
        assert status == 503
        assigned = headers["X-Correlation-ID"]
        assert assigned
        record = await eventually(lambda: _logged(system, assigned), what="the edge's log record with the id")
        assert f"order {body['orderId']} rejected" in record["message"]
    finally:
        system.start("pay")
        await system.wait_ready("pay")


async def _logged(system, correlation_id):
    records = [r for r in log_records(system, "order") if r.get("correlationId") == correlation_id]
    return records[-1] if records else None
