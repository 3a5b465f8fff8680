"""A whole bread on this machine for the end-to-end tests and the benchmarks: a broker of its own and every
service as its own process, on ports the OS picks, kept running by the one Supervisor `bread up` uses too.

It never talks to a broker it did not start: the broker's cluster id is checked when it is ready, so a Kafka
already listening elsewhere on the machine (or a `bread up`) is neither used nor disturbed.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import aiohttp

from agents.runtime.topics import create_topics
from agents.settings import PROJECT_ROOT, port_variable, url_variable
from ops.cli import SERVICES
from ops.localkafka import LocalKafka, wait_until_ready
from ops.supervisor import Supervisor, answers_live


class NotReady(RuntimeError):
    """A service exited or did not become ready in time; the message carries the tail of its log."""


def free_port() -> int:
    """A port nothing listens on now, picked by the OS."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_broker(data: Path, heap: str = "512m") -> LocalKafka:
    """The project's own broker on free ports with its data in `data`, ready and holding bread's topics."""
    local = LocalKafka(port=free_port(), controller_port=free_port(), data=data, heap=heap)
    local.start(log_file=data / "kafka.log")
    try:
        await wait_until_ready(local.bootstrap, timeout=90, process=local.process, cluster_id=local.cluster_id)
        await create_topics(local.bootstrap, replication=1)
    except BaseException:
        local.stop()
        raise
    return local


@dataclass(kw_only=True)
class LocalSystem:
    """bread's services on free ports against the broker at `bootstrap`, with `settings` (environment
    variables) over the machine's environment. Logs go to `root/log/<name>.log`, data under `root`."""
    root: Path
    bootstrap: str
    settings: dict[str, str] = field(default_factory=dict)
    say: Callable[[str], None] = lambda line: print(f"supervisor: {line}", flush=True)
    ports: dict[str, int] = field(default_factory=lambda: {service: free_port() for service in SERVICES})
    env: dict[str, str] = field(init=False)
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(say=self.say)
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "BREAD_DATA_DIR": str(self.root)}
        for service, port in self.ports.items():
            self.env[port_variable(service)] = str(port)
            if service != "gateway":
                self.env[url_variable(service)] = self.url(service)
        self.env.update(self.settings)

    @property
    def processes(self) -> dict[str, subprocess.Popen]:
        return self.supervisor.processes()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log(self, name: str) -> Path:
        return self.root / "log" / f"{name}.log"

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log(name)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def start(self, service: str, name: str | None = None, **settings: str) -> None:
        """Start `service` (with extra `settings` in its environment); with a `name`, as one more instance of it
        beside the first, on a port of its own (the same one when started again)."""
        name = name or service
        env = {**self.env, **settings}
        if name not in self.ports:
            self.ports[name] = free_port()
        env[port_variable(service)] = str(self.ports[name])
        self.log(name).parent.mkdir(parents=True, exist_ok=True)

        def launch() -> subprocess.Popen:
            with open(self.log(name), "ab") as out:
                return subprocess.Popen([sys.executable, "-m", "ops.cli", "run", service], env=env, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)

        self.supervisor.start(name, launch, alive=answers_live(f"{self.url(name)}/live"))

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop a service for good (it is not started again); its exit code. TimeoutError if it would not."""
        return self.supervisor.stop(name, sig, timeout)

    def stop_all(self, grace: float = 20) -> None:
        self.supervisor.stop_all(list(reversed(self.processes)), grace=grace)

    async def is_ready(self, name: str, http: aiohttp.ClientSession) -> bool:
        """Whether the service answers its /health with 200; NotReady if its process has exited."""
        process = self.processes[name]
        if process.poll() is not None:
            raise NotReady(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
        try:
            async with http.get(f"{self.url(name)}/health") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def until_ready(self, name: str, http: aiohttp.ClientSession, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not await self.is_ready(name, http):
            if time.monotonic() > deadline:
                raise NotReady(f"{name} was not ready within {timeout}s:\n{self.tail(name)}")
            await asyncio.sleep(0.1)  # poll interval of a condition wait, bounded by the deadline

    async def start_all(self, http: aiohttp.ClientSession, timeout: float = 90) -> None:
        """Start every service and return once each is ready."""
        for service in SERVICES:
            self.start(service)
        for service in SERVICES:
            await self.until_ready(service, http, timeout)
