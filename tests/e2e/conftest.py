"""The running system for end-to-end tests: a real Kafka broker and every bread service as its own process.

The broker is the project's own local Kafka (unless KAFKA_BOOTSTRAP_SERVERS names another), on test ports,
with its data in a fresh temporary folder; the services run on test ports too, so a `bread up` on the same
machine is not disturbed. Tests wait on conditions with deadlines, never for a fixed time.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.settings import PROJECT_ROOT, port_variable, url_variable
from agents.topics_admin import create_topics
from api.cli import SERVICES
from api.supervisor import Supervisor, answers_live
from api.localkafka import LocalKafka, wait_until_ready

TEST_PORTS = {"order": 18081, "bakery": 18082, "pay": 18083, "mypage": 18084, "gateway": 18088, "order-worker": 16081}
KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19092, 19093
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


@dataclass
class Broker:
    bootstrap: str
    local: LocalKafka | None  # None when KAFKA_BOOTSTRAP_SERVERS names a broker the tests did not start
    log: Path | None = None


@dataclass
class System:
    root: Path
    env: dict[str, str]
    broker: Broker
    http: aiohttp.ClientSession | None = None
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(say=lambda line: print(f"supervisor: {line}")))
    ports: dict[str, int] = field(default_factory=lambda: dict(TEST_PORTS))

    @property
    def processes(self) -> dict[str, subprocess.Popen]:
        return self.supervisor.processes()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log(self, service: str) -> Path:
        return self.root / "log" / f"{service}.log"

    def start(self, service: str, name: str | None = None, port: int | None = None, **settings: str) -> None:
        """Start `service` (with extra `settings` in its environment); with a `name` and `port`, as one more
        instance of it beside the first."""
        name = name or service
        env = {**self.env, **settings}
        if port is not None:
            self.ports[name] = port
            env[port_variable(service)] = str(port)
        self.log(name).parent.mkdir(parents=True, exist_ok=True)

        def launch() -> subprocess.Popen:
            with open(self.log(name), "ab") as out:
                return subprocess.Popen([sys.executable, "-m", "api.cli", "run", service], env=env, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)

        self.supervisor.start(name, launch, alive=answers_live(f"{self.url(name)}/live"))

    def stop(self, service: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop a service for good (the supervisor does not start it again)."""
        try:
            return self.supervisor.stop(service, sig, timeout)
        except TimeoutError as exc:
            pytest.fail(str(exc))

    async def wait_ready(self, service: str, timeout: float = 90) -> None:
        async def ready() -> bool:
            if self.processes[service].poll() is not None:
                pytest.fail(f"{service} exited with {self.processes[service].returncode}:\n{self.tail(service)}")
            try:
                async with self.http.get(f"{self.url(service)}/health") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout, f"{service} ready")

    def token(self, tokens_file: Path, name: str, role: str = "customer") -> str:
        """A new bearer token for `name` in `role`, made as a user makes one (`bread token`)."""
        done = subprocess.run([sys.executable, "-m", "api.cli", "token", name, "--role", role],
                              cwd=PROJECT_ROOT, env={**self.env, "GATEWAY_TOKENS_FILE": str(tokens_file)},
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.log(service)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    async def request(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """(status, JSON body, headers) of one request; bread answers JSON even for errors."""
        async with self.http.request(method, url, timeout=aiohttp.ClientTimeout(total=15), **kwargs) as response:
            return response.status, await response.json(content_type=None), response.headers


def system_env(root: Path, bootstrap: str) -> dict[str, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BREAD_DATA_DIR": str(root),
           "PAY_TIMEOUT_S": str(PAY_TIMEOUT_S), "BREAD_LOG_LEVEL": "info", "SAGA_DEADLINE_S": str(SAGA_DEADLINE_S),
           "SAGA_REPAIR_S": str(SAGA_REPAIR_S),
           "PAY_LIMIT": str(PAY_LIMIT), "BAKERY_AUTO_CONFIRM": "false", "KAFKA_SESSION_TIMEOUT_S": "6",
           "GATEWAY_RATE_LIMIT_RPS": "0"}  # the shared gateway takes whatever the tests send; test_gateway limits its own
    for service, port in TEST_PORTS.items():
        env[port_variable(service)] = str(port)
        if service != "gateway":
            env[url_variable(service)] = f"http://127.0.0.1:{port}"
    return env


@pytest.fixture(scope="session")
async def broker(tmp_path_factory) -> Broker:
    """A real broker with bread's topics: the project's own, started here, unless KAFKA_BOOTSTRAP_SERVERS
    names another."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        broker = Broker(external, None)
    else:
        root = tmp_path_factory.mktemp("kafka")
        local = LocalKafka(port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT, data=root, heap="512m")
        broker = Broker(local.bootstrap, local, root / "kafka.log")
        local.start(log_file=broker.log)
    try:
        await wait_until_ready(broker.bootstrap, timeout=90, process=broker.local.process if broker.local else None)
        await create_topics(broker.bootstrap, replication=1)
        yield broker
    finally:
        if broker.local:
            broker.local.stop()


@pytest.fixture(scope="session")
async def kafka(broker) -> str:
    """The bootstrap address of the broker."""
    return broker.bootstrap


@pytest.fixture(scope="session")
async def system(broker, tmp_path_factory) -> System:
    root = tmp_path_factory.mktemp("bread")
    system = System(root=root, env=system_env(root, broker.bootstrap), broker=broker)
    system.http = aiohttp.ClientSession()
    try:
        for service in SERVICES:
            system.start(service)
        for service in SERVICES:
            await system.wait_ready(service)
        yield system
    finally:
        system.supervisor.stop_all(list(system.processes), grace=20)
        await system.http.close()


@pytest.fixture
async def extra(system):
    """More instances of a service with settings of their own, for one test: `await extra(service, name,
    port, **settings)` starts one and waits until it is ready; all are stopped after the test."""
    started = []

    async def start(service: str, name: str, port: int, **settings: str) -> str:
        system.start(service, name=name, port=port, **settings)
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
