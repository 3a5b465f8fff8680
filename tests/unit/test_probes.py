"""The probe pages, the same for every process: what each answers, in-process over aiohttp's test client; and that
an aiohttp service and a Faust worker both serve them."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.runtime import probes
from agents.settings import Settings
from api import bakery, order, pay

PAGES = {"/health", "/live", "/metrics", "/pipeline", "/debug/block-loop", "/debug/stall-consumer"}


@dataclass
class Process:
    """A process as its probe pages see it."""
    problems: list[str] = field(default_factory=list)
    stopping: bool = False
    stalled: list[str] = field(default_factory=list)
    held_for: list[float] = field(default_factory=list)

    async def now_problems(self) -> list[str]:
        return self.problems

    def probe(self, with_pipeline: bool = True) -> probes.Probe:
        return probes.Probe(problems=self.now_problems, stopping=lambda: self.stopping, stalled=lambda: self.stalled,
                            pipeline=(lambda: {"context": "test", "delayS": 0.5}) if with_pipeline else None,
                            hold_handling=self.held_for.append)


async def client_of(process: Process, debug: bool = False, with_pipeline: bool = True) -> TestClient:
    app = web.Application()
    probes.mount(app, process.probe(with_pipeline), debug)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def paths_of(app: web.Application) -> set[str]:
    return {resource.canonical for resource in app.router.resources()}


async def test_health_is_ready_only_while_nothing_keeps_the_process_from_its_work():
    process = Process()
    client = await client_of(process)
    try:
        assert (await client.get("/health")).status == 200
        process.problems = ["rebalancing"]
        answer = await client.get("/health")
        assert answer.status == 503 and await answer.json() == {"status": "starting", "problems": ["rebalancing"]}
        process.problems, process.stopping = [], True
        answer = await client.get("/health")
        assert answer.status == 503 and (await answer.json())["status"] == "stopping"
    finally:
        await client.close()


async def test_live_fails_with_the_reason_a_consumer_stalled():
    process = Process()
    client = await client_of(process)
    try:
        assert await (await client.get("/live")).json() == {"status": "alive"}
        process.stalled = ["no progress on bread.orders[0] for 31s"]
        answer = await client.get("/live")
        assert answer.status == 503 and (await answer.json())["problems"] == process.stalled
    finally:
        await client.close()


async def test_metrics_are_served_in_prometheus_text():
    client = await client_of(Process())
    try:
        metrics = await client.get("/metrics")
        assert metrics.status == 200 and metrics.content_type == "text/plain"
        assert "# TYPE" in await metrics.text()
    finally:
        await client.close()


async def test_the_pipeline_page_says_how_far_behind_the_process_runs():
    client = await client_of(Process())
    try:
        assert await (await client.get("/pipeline")).json() == {"context": "test", "delayS": 0.5}
    finally:
        await client.close()


async def test_the_debug_switches_exist_only_with_debug_on():
    quiet = await client_of(Process())
    try:
        assert (await quiet.post("/debug/stall-consumer?seconds=1")).status in (404, 405)
    finally:
        await quiet.close()


async def test_a_debug_switch_holds_for_the_seconds_asked_within_bounds():
    process = Process()
    client = await client_of(process, debug=True)
    try:
        for bad in ("soon", "0", "601"):
            answer = await client.post(f"/debug/stall-consumer?seconds={bad}")
            assert answer.status == 400 and "'seconds'" in (await answer.json())["error"]
        answer = await client.post("/debug/stall-consumer?seconds=2.5")
        assert await answer.json() == {"stalled": 2.5} and process.held_for == [2.5]
        started = asyncio.get_running_loop().time()
        assert await (await client.post("/debug/block-loop?seconds=0.2")).json() == {"blocked": 0.2}
        assert asyncio.get_running_loop().time() - started >= 0.2
    finally:
        await client.close()


async def test_a_process_that_follows_no_events_has_no_pipeline_page():
    app = web.Application()
    probes.mount(app, Process().probe(with_pipeline=False), debug=True)
    assert "/pipeline" not in paths_of(app)


@pytest.fixture
def debug_settings(tmp_path) -> Settings:
    return Settings.from_env({"BREAD_DEBUG": "on", "BREAD_DATA_DIR": str(tmp_path), "BREAD_STORE": "memory://"})


def test_every_kind_of_process_serves_the_same_probe_pages(debug_settings):
    every_process = {"/health", "/live", "/metrics", "/debug/block-loop"}
    edge = paths_of(order.init_app(debug_settings))
    assert every_process <= edge and "/pipeline" not in edge  # the order edge follows no events
    assert every_process | {"/pipeline"} <= paths_of(pay.ledger_app(debug_settings))
    assert PAGES <= paths_of(bakery.build(debug_settings).app.web.web_app)
