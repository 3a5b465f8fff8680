"""The running system for end-to-end tests: a real Kafka broker and every bread service as its own process.

The broker is the project's own local Kafka, started here (never one the tests did not start), with its data in
a fresh temporary folder; it and the services listen on free ports the OS picks (`ops/localsystem.py`, which the
benchmarks use too), so a `bread up` or another test run on the same machine is not disturbed. Tests wait on
conditions with deadlines, never for a fixed time.
"""
from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.catalog import InvalidEvent, catalog
from agents.events import decode
from agents.settings import PROJECT_ROOT
from ops.cli import FAUST_SERVICES, SERVICES
from ops.localkafka import LocalKafka
from ops.localsystem import LocalSystem, NotReady, start_broker
from ops.trace_sink import TraceSink

PAY_TIMEOUT_S = 1.0
# Short enough for a test to watch an abandoned order be cancelled; long enough for every other test's saga.
SAGA_DEADLINE_S = 12
SAGA_REPAIR_S = 10
PAY_LIMIT = 1_000_000


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 30, what: str = "condition") -> Any:
    """Return probe()'s first truthy result, polling until `timeout`; fail naming `what` and the last result."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)  # ok-sleep: the poll interval of a condition wait, bounded by the deadline
    pytest.fail(f"{what} not reached within {timeout}s; last seen: {last!r}")


async def read_all(kafka: str, names: list[str]) -> list:
    """Every message now on the named topics, from the beginning."""
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n)]
        ends = await consumer.end_offsets(partitions)
        messages = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                messages.extend(batch)
        return messages
    finally:
        await consumer.stop()


async def produce(kafka: str, topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
    """(partition, offset) of one message sent with a plain producer, as any other system would."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=key, value=value)
        return sent.partition, sent.offset
    finally:
        await producer.stop()


@dataclass
class Broker:
    bootstrap: str
    local: LocalKafka
    log: Path


@dataclass(kw_only=True)
class System(LocalSystem):
    """The shared system as the tests see it: its broker, an HTTP session, and failures as test failures."""
    broker: Broker
    http: aiohttp.ClientSession | None = None

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop a service for good (the supervisor does not start it again)."""
        try:
            return super().stop(name, sig, timeout)
        except TimeoutError as exc:
            pytest.fail(str(exc))

    async def wait_ready(self, name: str, timeout: float = 90) -> None:
        try:
            await self.until_ready(name, self.http, timeout)
        except NotReady as exc:
            pytest.fail(str(exc))

    def token(self, tokens_file: Path, name: str, role: str = "customer") -> str:
        """A new bearer token for `name` in `role`, made as a user makes one (`bread token`)."""
        done = subprocess.run([sys.executable, "-m", "ops.cli", "token", name, "--role", role],
                              cwd=PROJECT_ROOT, env={**self.env, "GATEWAY_TOKENS_FILE": str(tokens_file)},
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """(status, JSON body, headers) of one request; bread answers JSON even for errors."""
        async with self.http.request(method, url, timeout=aiohttp.ClientTimeout(total=15), **kwargs) as response:
            return response.status, await response.json(content_type=None), response.headers


# What the tests do with the running system, shared by every module.

OPEN = 1  # bread_breaker_state: 0 closed, 1 open, 2 half-open
CAUGHT_UP_S = 1.0  # a context whose events wait less than this has caught up (ORDER_SHED_FROM_S's default)


async def breaker_state(system: System, edge: str) -> int | None:
    """The state of the breaker in front of pay of an order edge or worker, from its metrics; None while it has
    none (the order worker makes its pay client at its first request for an order)."""
    async with system.http.get(f"{system.url(edge)}/metrics") as response:
        text = await response.text()
    state = re.search(r'^bread_breaker_state\{breaker="pay"\} (\S+)$', text, re.M)
    return int(float(state.group(1))) if state else None


async def caught_up(system: System) -> bool:
    """Whether every context handles its events as they come, nothing waiting long on its topics."""
    for worker in FAUST_SERVICES:
        status, pipeline, _ = await system.request("GET", f"{system.url(worker)}/pipeline")
        if status != 200 or pipeline["delayS"] >= CAUGHT_UP_S:
            return False
        requests = pipeline.get("requests")  # the order worker's log of orders requested over Kafka
        if requests and (requests["waiting"] or requests["underWay"] or requests["behindS"] >= CAUGHT_UP_S):
            return False
    return True


CAKE = {"item": "cake", "qty": 1}


async def place(system: System, via: str = "order", body: dict = CAKE) -> dict:
    status, order, headers = await system.request("POST", f"{system.url(via)}/orders", json=body)
    assert status == 201, order
    assert headers["Location"] == f"/orders/{order['id']}"
    return order


async def order_status(system: System, order_id: int, via: str = "order") -> str | None:
    status, body, _ = await system.request("GET", f"{system.url(via)}/orders/{order_id}")
    return body.get("status") if status == 200 else None


async def mypage(system: System, order_id: int, via: str = "mypage") -> dict | None:
    status, body, _ = await system.request("GET", f"{system.url(via)}/mypages/{order_id}")
    return body if status == 200 else None


async def until_status(system: System, order_id: int, wanted: str, via: str = "order") -> None:
    await eventually(lambda: _is(order_status(system, order_id, via), wanted), what=f"order {order_id} {wanted}")


async def _is(awaitable, wanted):
    return (await awaitable) == wanted


async def confirm(system: System, order_id: int, via: str = "bakery") -> dict:
    status, ticket, _ = await system.request(
        "POST", f"{system.url(via)}/bakeries", json={"orderId": order_id, "status": "Confirmed"})
    assert status == 200, ticket
    return ticket


async def confirmed_row(system: System, order_id: int) -> dict | None:
    row = await mypage(system, order_id)
    return row if row and row["status"] == "Confirmed" else None


async def mypage_row(system: System, order_id: int, status: str, via: str = "mypage") -> dict:
    """The order's Mypage row once it shows `status`: Mypage shows each order as the order worker recorded it,
    a moment after the order worker does."""
    async def shown() -> dict | None:
        row = await mypage(system, order_id, via)
        return row if row and row["status"] == status else None
    return await eventually(shown, what=f"order {order_id} {status} on Mypage")


async def books(system: System, order_id: int) -> dict[str, int]:
    """What pay's ledger holds for an order: charged and refunded amounts."""
    status, ledger, _ = await system.request("GET", f"{system.url('pay')}/payments/{order_id}")
    if status == 404:
        return {"charged": 0, "refunded": 0}
    amounts = {p["action"]: p["price"] for p in ledger["payments"]}
    return {"charged": amounts.get("apply", 0), "refunded": amounts.get("cancel", 0)}


async def events_on(kafka: str, alias: str) -> list[dict]:
    """Every event now on a topic (by its topics.yaml name), leaving out what is no event: the poison messages
    test_dead_letters puts there."""
    found = []
    for message in await read_all(kafka, [catalog().topics[alias].name]):
        try:
            found.append(decode(message.value, message.topic))
        except InvalidEvent:
            continue
    return found


async def events_of(kafka: str, order_id: int) -> list[tuple[dict, dict[str, bytes]]]:
    """Every event about `order_id` on the keyed topics, with its Kafka headers."""
    names = [t.name for t in catalog().topics.values() if t.key == "orderId"]
    return [(decode(m.value, m.topic), dict(m.headers)) for m in await read_all(kafka, names)
            if m.key == str(order_id).encode()]


@dataclass
class ServerSent:
    event: str | None  # None: an id-only line (the heartbeat)
    data: Any
    id: str | None


class EventStream:
    """A server-sent event stream as a client reads it: `await stream.next(timeout)` is the next event, and
    `last_id` the id a reconnecting client sends back."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id: str | None = None

    @classmethod
    async def open(cls, system: System, url: str, last_id: str | None = None,
                   headers: dict[str, str] | None = None) -> "EventStream":
        wanted = {"Accept": "text/event-stream", **(headers or {})}
        if last_id:
            wanted["Last-Event-ID"] = last_id
        response = await system.http.get(url, headers=wanted, timeout=aiohttp.ClientTimeout(total=None))
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        return cls(response)

    async def next(self, timeout: float = 30) -> ServerSent:
        async def one() -> ServerSent:
            while True:
                block = (await self.response.content.readuntil(b"\n\n")).decode()
                fields: dict[str, list[str]] = {}
                for line in block.strip("\n").split("\n"):
                    name, _, value = line.partition(":")
                    fields.setdefault(name, []).append(value.removeprefix(" "))
                if "id" in fields:
                    self.last_id = fields["id"][-1]
                if "data" in fields or "id" in fields:
                    data = "\n".join(fields.get("data", []))
                    return ServerSent(fields.get("event", [None])[-1], json.loads(data) if data else None,
                                      fields.get("id", [None])[-1])
        return await asyncio.wait_for(one(), timeout)

    async def until(self, wanted: Callable[[ServerSent], bool], timeout: float = 30,
                    what: str = "event") -> list[ServerSent]:
        """Every event up to and including the first `wanted` one; fails after `timeout` naming `what`."""
        seen: list[ServerSent] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                seen.append(await self.next(max(left, 0.01)))
            except asyncio.TimeoutError:
                pytest.fail(f"{what} not streamed within {timeout}s; seen: {[(e.event, e.data) for e in seen][-10:]}")
            if wanted(seen[-1]):
                return seen

    def close(self) -> None:
        self.response.close()


def row_of(order_id: int, status: str | None = None) -> Callable[[ServerSent], bool]:
    """Matches the `row` event of an order (in `status`, when given)."""
    return lambda e: e.event == "row" and e.data["orderId"] == order_id \
        and (status is None or e.data["status"] == status)


def log_records(system: LocalSystem, name: str) -> list[dict]:
    """Every record a service instance has logged so far, each line one JSON object (BREAD_LOG_FORMAT=json);
    fails naming the first line that is not."""
    path = system.log(name)
    records = []
    # Lines end at "\n" only, as a log collector reads them: a JSON string may hold U+2028 and the like.
    lines = path.read_text(errors="replace").split("\n")[:-1] if path.exists() else []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"line {number} of {path.name} is not one JSON object: {line[:300]!r}")
    return records


async def bread(system: System, *args: str) -> str:
    """Run the `bread` command against the test system; its standard output."""
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "ops.cli", *args], env=system.env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


# The shared system's settings: short deadlines so a test can watch them act, no rate limit (test_gateway
# limits a gateway of its own), bakers who decide by hand.
SYSTEM_SETTINGS = {
    # Tests that stop and start workers place orders right after; the admission rule is tested on an edge
    # of its own (test_admission.py).
    "ORDER_SHED_FROM_S": "60", "ORDER_SHED_ALL_S": "120",
    "PAY_TIMEOUT_S": str(PAY_TIMEOUT_S), "BREAD_LOG_LEVEL": "info", "SAGA_DEADLINE_S": str(SAGA_DEADLINE_S),
    "SAGA_REPAIR_S": str(SAGA_REPAIR_S), "PAY_LIMIT": str(PAY_LIMIT), "BAKERY_AUTO_CONFIRM": "false",
    "KAFKA_SESSION_TIMEOUT_S": "6", "GATEWAY_RATE_LIMIT_RPS": "0",
    # As on Kubernetes: every line a service writes is one JSON object (log_records reads them).
    "BREAD_LOG_FORMAT": "json",
}


@pytest.fixture(scope="session")
async def broker(tmp_path_factory) -> Broker:
    """A real broker with bread's topics: the project's own, started here on free ports. The tests talk to no
    other: a broker that answers on the port with another cluster id stops them at once."""
    local = await start_broker(tmp_path_factory.mktemp("kafka"))
    try:
        yield Broker(local.bootstrap, local, local.data / "kafka.log")
    finally:
        local.stop()


@pytest.fixture(scope="session")
async def kafka(broker) -> str:
    """The bootstrap address of the broker."""
    return broker.bootstrap


@pytest.fixture(scope="session")
def traces() -> TraceSink:
    """Where the shared system's services send their spans (OTLP), kept for the tests to look at."""
    sink = TraceSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
async def system(broker, traces, tmp_path_factory) -> System:
    # Traced, as someone who turned tracing on runs it: every test then runs with it on.
    tracing = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint,
               "OTEL_BSP_SCHEDULE_DELAY": "200"}  # the SDK's own: spans go out within 0.2 s, not 5
    system = System(root=tmp_path_factory.mktemp("bread"), bootstrap=broker.bootstrap,
                    settings={**SYSTEM_SETTINGS, **tracing}, broker=broker, http=aiohttp.ClientSession())
    try:
        await system.start_all(system.http)
    except NotReady as exc:
        pytest.fail(str(exc))
    try:
        yield system
    finally:
        system.stop_all(grace=20)
        await system.http.close()
    for name in system.ports:  # to their last line, written as they stopped
        log_records(system, name)


@pytest.fixture(autouse=True)
async def settled(request):
    """Every test that uses the shared system starts with it well: every service ready again after whatever an
    earlier test did to it, every context caught up with what that test left on its topics (the crash test
    leaves requests for orders that the order worker places after it), and no breaker in front of pay open
    (one lets a trial call through once its open time is over). So each test runs alone or after any other."""
    if "system" not in request.fixturenames:
        yield
        return
    system: System = request.getfixturevalue("system")
    for service in SERVICES:
        await system.wait_ready(service)

    await eventually(lambda: caught_up(system), timeout=120, what="every context caught up")

    async def no_breaker_open() -> bool:
        return all([await breaker_state(system, edge) != OPEN for edge in ("order", "order-worker")])
    await eventually(no_breaker_open, what="no breaker in front of pay open")
    yield


@pytest.fixture
async def extra(system):
    """More instances of a service with settings of their own, for one test: `await extra(service, name,
    **settings)` starts one on a free port and waits until it is ready; all are stopped after the test."""
    started = []

    async def start(service: str, name: str, **settings: str) -> str:
        system.start(service, name=name, **settings)
        started.append(name)
        await system.wait_ready(name)
        return name

    yield start
    for name in started:
        system.stop(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On an end-to-end failure, attach the tail of every service's log to the report."""
    outcome = yield
    report = outcome.get_result()
    system = item.funcargs.get("system") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(system, System):
        for service in SERVICES:
            report.sections.append((f"{service} log (tail)", system.tail(service)))

