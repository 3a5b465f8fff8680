"""End-to-end benchmark: orders through the gateway at a fixed concurrency, on a real local Kafka.

Starts its own bread (`ops/localsystem.py`, as the end-to-end tests do: a fresh broker and data folder, every
service on a free port, BAKERY_AUTO_CONFIRM=true), then:
- drives POST /orders through the gateway with N concurrent clients for D seconds: orders/s accepted and
  intake latency p50/p99;
- follows the Mypage table's changelog on Kafka to time each order from placement to `Confirmed` on Mypage:
  orders/s confirmed and p50/p99;
- samples the resident memory of every bread Python process under that load;
- drives a bare aiohttp handler on the same machine the same way, as a ceiling, and prints the ratio.

    python bench/e2e.py [--concurrency 32] [--seconds 20]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import catalog  # noqa: E402
from ops.localkafka import LocalKafka  # noqa: E402
from ops.localsystem import LocalSystem, free_port, start_broker  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pids: list[int]) -> float:
    """Resident memory of these processes together, in MiB."""
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total_kib / 1024


def rss_mib_of_bread(bread: LocalSystem) -> float:
    """Resident memory of every bread service the benchmark started (the broker apart), in MiB."""
    return rss_mib([process.pid for process in bread.processes.values()])


async def drive(url: str, body: bytes, concurrency: int, seconds: float, placed: dict[int, float],
                honor_retry_after: bool = False) -> dict:
    """`concurrency` clients posting `body` back to back for `seconds`; with `honor_retry_after`, a client told
    to come back later (503/429 with Retry-After) waits that long first, as a well-behaved client would."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    refusals: collections.Counter = collections.Counter()
    timeline: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    began = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as http:
        async def client() -> None:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                        payload = await response.read()
                except aiohttp.ClientError as exc:
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.monotonic() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status in (201, 202):  # placed: paid at once, or its payment deferred
                    placed.setdefault(json.loads(payload)["id"], started)
                    timeline[int(started - began)]["taken"] += 1
                else:
                    refusals[reason_of(payload)] += 1
                    timeline[int(started - began)][reason_of(payload)] += 1
                if response.status not in (201, 202) and honor_retry_after and "Retry-After" in response.headers:
                    await asyncio.sleep(min(float(response.headers["Retry-After"]), deadline - time.monotonic()))

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - began
    accepted = statuses.get(201, 0) + statuses.get(202, 0)
    return {"accepted_per_s": accepted / elapsed, "requests": sum(statuses.values()), "statuses": statuses,
            "p90_ms": percentile(latencies, 0.90) * 1000, "max_ms": max(latencies, default=float("nan")) * 1000,
            "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
            "elapsed_s": elapsed, "refusals_by_reason": dict(refusals.most_common()),
            "timeline": [{"second": second, **timeline[second]} for second in sorted(timeline)]}


def reason_of(error: str | bytes) -> str:
    """A refusal's kind, from its JSON body's error (or the error itself): the words before the first detail."""
    if isinstance(error, bytes):
        try:
            error = str(json.loads(error).get("error", ""))
        except (ValueError, AttributeError):
            error = error[:40].decode(errors="replace")
    return re.split(r"[:;(\d]", error.removeprefix("payment unavailable: "), maxsplit=1)[0].strip()


async def follow_confirmations(bootstrap: str, confirmed: dict[int, float], stories: dict[int, tuple],
                               stop: asyncio.Event) -> None:
    changelog = catalog().table_of("mypage").changelog
    consumer = AIOKafkaConsumer(changelog, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for message in (m for batch in batches.values() for m in batch):
                row = json.loads(message.value) if message.value else None
                if row and row.get("status") == "Confirmed" and row["orderId"] not in confirmed:
                    confirmed[row["orderId"]] = now
                    stories[row["orderId"]] = (row.get("history", []), time.time())
    finally:
        await consumer.stop()


def stage_breakdown(stories: dict[int, tuple]) -> dict[str, float]:
    """Median time between consecutive steps of each order's story, from the events' own timestamps."""
    from datetime import datetime

    gaps: dict[str, list[float]] = {}
    for history, seen_at in stories.values():
        times = [(step["event"], datetime.fromisoformat(step["at"]).timestamp()) for step in history]
        times.append(("on Mypage", seen_at))
        for (a, ta), (b, tb) in zip(times, times[1:]):
            gaps.setdefault(f"{a} -> {b}", []).append(tb - ta)
    return {k: round(statistics.median(v) * 1000, 1) for k, v in gaps.items() if len(v) > len(stories) / 2}


async def bare_ceiling(concurrency: int, seconds: float) -> dict:
    """The same driver against a handler that does nothing but answer 201 with a small JSON body: what this
    machine serves today. Besides drive's figures, `cpu_ms_per_request`: the CPU one request cost the server and
    the driver together (the unit bread's CPU per order is counted in)."""
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)], stdout=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/orders"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)  # poll interval while the server starts, bounded by the loop
        cpu = CpuMeter({"bare server": server.pid})
        measured = await drive(f"http://127.0.0.1:{port}/orders", b'{"item":"cake","qty":1}',
                               concurrency, seconds, {})
        used = sum(cpu.used().values())
        return {**measured, "cpu_ms_per_request": used / max(1, measured["requests"]) * 1000}
    finally:
        server.terminate()
        server.wait()


class CpuMeter:
    """CPU seconds used since it was made (or restarted), by each of some processes and by this one (the load
    driver). A process that has exited counts what it had used when last seen."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "load driver": os.getpid()}
        self.before: dict[str, float] = {}
        self.before = self._now()

    def _now(self) -> dict[str, float]:
        now = {}
        for name, pid in self.pids.items():
            try:
                now[name] = cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                now[name] = self.before.get(name, 0.0)
        return now

    def used(self) -> dict[str, float]:
        now = self._now()
        return {name: max(0.0, now[name] - self.before[name]) for name in self.pids}

    def restart(self) -> None:
        self.before = self._now()


def run_bare_server(port: int) -> None:
    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"id": 1, "item": "cake", "qty": 1, "status": "Paid", "price": 25000}, status=201)

    app = web.Application()
    app.router.add_route("*", "/orders", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.asynccontextmanager
async def running_bread(name: str, **settings: str) -> AsyncIterator[tuple[LocalSystem, LocalKafka]]:
    """A bread of the benchmark's own — a fresh broker and data folder, every service on a free port, bakery
    auto-confirm, no rate limit (one load driver is one client) — with `settings` over those; yields it and its
    broker, and stops both on leaving."""
    root = Path(tempfile.mkdtemp(prefix=f"bread-{name}-"))
    broker = await start_broker(root / "kafka")
    bread = LocalSystem(root=root, bootstrap=broker.bootstrap, say=lambda line: print(f"bread: {line}", flush=True),
                        settings={"BAKERY_AUTO_CONFIRM": "true", "BREAD_LOG_LEVEL": "warning",
                                  "GATEWAY_RATE_LIMIT_RPS": "0", **settings})
    try:
        async with aiohttp.ClientSession() as http:
            await bread.start_all(http, timeout=120)
        yield bread, broker
    finally:
        bread.stop_all(grace=20)
        broker.stop()


async def until_confirmed(placed: dict[int, float], confirmed: dict[int, float], seconds: float) -> None:
    """Let the saga finish for every accepted order, bounded by `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not set(placed) <= set(confirmed):
        await asyncio.sleep(0.2)  # the poll interval of a bounded wait


async def main(concurrency: int, seconds: float) -> None:
    async with running_bread("bench") as (bread, broker):
        gateway = f"{bread.url('gateway')}/orders"
        # Warm-up: connections, Kafka metadata, first-use paths.
        await drive(gateway, b'{"item":"cake","qty":1}', concurrency, 3, {})

        placed: dict[int, float] = {}
        confirmed: dict[int, float] = {}
        stop = asyncio.Event()
        stories: dict[int, tuple] = {}
        follower = asyncio.create_task(follow_confirmations(bread.bootstrap, confirmed, stories, stop))
        processes = {name: process.pid for name, process in bread.processes.items()}
        processes["kafka broker"] = broker.process.pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        rss_samples: list[float] = []

        async def sample_memory() -> None:
            while not stop.is_set():
                rss_samples.append(rss_mib_of_bread(bread))
                await asyncio.sleep(1)

        sampler = asyncio.create_task(sample_memory())
        intake = await drive(gateway, b'{"item":"cake","qty":1}', concurrency, seconds, placed)
        await until_confirmed(placed, confirmed, 30)
        stop.set()
        await asyncio.gather(follower, sampler)
        cpu_used = {name: round(cpu_seconds(pid) - cpu_before[name], 1) for name, pid in processes.items()}

        saga = [confirmed[i] - placed[i] for i in placed if i in confirmed]
        span = (max(confirmed[i] for i in placed if i in confirmed) - min(placed.values())) if saga else float("nan")
        bare = await bare_ceiling(concurrency, seconds)
        report = {
            "concurrency": concurrency, "seconds": seconds,
            "accepted_orders_per_s": round(intake["accepted_per_s"], 1),
            "intake_p50_ms": round(intake["p50_ms"], 1), "intake_p99_ms": round(intake["p99_ms"], 1),
            "statuses": intake["statuses"],
            "confirmed_on_mypage": f"{len(saga)}/{len(placed)}",
            "confirmed_orders_per_s": round(len(saga) / span, 1) if saga else 0,
            "placement_to_confirmed_p50_ms": round(percentile(saga, 0.5) * 1000, 1),
            "placement_to_confirmed_p99_ms": round(percentile(saga, 0.99) * 1000, 1),
            "bread_rss_peak_mib": round(max(rss_samples), 1) if rss_samples else None,
            "bread_rss_mean_mib": round(statistics.mean(rss_samples), 1) if rss_samples else None,
            "bare_aiohttp_per_s": round(bare["accepted_per_s"], 1),
            "bare_aiohttp_p99_ms": round(bare["p99_ms"], 1),
            "ratio_to_bare": round(intake["accepted_per_s"] / bare["accepted_per_s"], 3),
            "stage_p50_ms": stage_breakdown(stories),
            "cpu_seconds_during_run": cpu_used,
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server)
    else:
        asyncio.run(main(args.concurrency, args.seconds))
