"""Capacity benchmark: an open-loop load in steps, on a real local Kafka, through the gateway.

This machine's speed changes from day to day, so first it measures the machine's ceiling: a bare aiohttp handler
driven by the same client library (bench/e2e.py's), its requests/s and the CPU one bare request costs (server and
driver). Every figure of bread is then also given against it: the capacity as a ratio to the ceiling, and the CPU
of an order (every bread process, the broker and the load driver) in milliseconds and in bare requests.

Then it starts its own bread (as bench/e2e.py does: a fresh broker and data folder, every service on a free port,
BAKERY_AUTO_CONFIRM=true, the rate limit off), then for each offered rate sends POST /orders at that rate for a
fixed time — each request at its own moment, whatever the answers before it (open loop: a slow bread does not slow
the load down) — and reports per step: accepted/s, intake p50/p99, placement → Confirmed p50/p99 (read from the Mypage
table's changelog) and how many accepted orders never confirmed. The capacity is the highest step whose p99
placement → Confirmed is under 2 s, every order taken and none lost.

Then, unless `--kafka-burst 0`, the Kafka step: as a partner system would, it produces 20 s' worth of the REST
capacity as RequestOrder messages to `bread.order-requests` at once, three invalid ones behind them all, and
reports the rate they were placed and confirmed at (from the first sent to the last confirmed) against the REST
capacity of the same run, how soon the invalid ones reached the dead letters, the request log's backlog as the
order worker's GET /pipeline told it, and the CPU an order cost.

Then, unless `--overload 0`, it offers three times the capacity (`--overload` times) for 40 s and reports what
the edge took and refused, the confirmations per second while the load went on (against the capacity), how
steady the orders taken and confirmed per second were over the middle of the run (their coefficient of
variation, the first and last STEADY_TRIM_S seconds left out), how long the taken orders took to confirm, whether
any was lost, and how soon after the load stopped an order placed is confirmed as fast as on a quiet bread again.

On a machine with less to give: `taskset -c 0 python bench/capacity.py` pins the ceiling, the load driver and the
whole of bread (its processes and the broker inherit it) to one core.

Before the load it measures what an idle bread costs (CPU of every process over `IDLE_S`, as a share of a core).

Writes bench/results/capacity-<time>.json and, with matplotlib installed (`pip install -e '.[bench]'`), a PNG
chart beside it.

    python bench/capacity.py [--rates 50,100,200,300,350,400,450,500,600] [--seconds 20] [--settle 30]
                             [--kafka-burst 20] [--overload 3]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agents.catalog import catalog  # noqa: E402
from agents.deadletters import original  # noqa: E402
from bench.e2e import (  # noqa: E402
    CpuMeter,
    bare_ceiling,
    follow_confirmations,
    percentile,
    rss_mib_of_bread,
    running_bread,
)
from ops.localsystem import LocalSystem  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_P99_S = 2.0
CEILING_CLIENTS, CEILING_S = 32, 8
IDLE_S = 10.0
ORDER = b'{"item":"cake","qty":1}'


async def offer(http: aiohttp.ClientSession, url: str, rate: float, seconds: float,
                placed: dict[int, float]) -> dict:
    """POST /orders at `rate` a second for `seconds`, each request at its own moment. Returns every answer's
    latency, the count of each status, and each answer as (sent at, status)."""
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()
    answers: list[tuple[float, int | str]] = []

    async def one() -> None:
        started = time.monotonic()
        try:
            async with http.post(url, data=ORDER, headers={"Content-Type": "application/json"}) as answer:
                body = await answer.json(content_type=None)
                status: int | str = answer.status
                if answer.status in (201, 202) and "id" in body:
                    placed[body["id"]] = started
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status = type(exc).__name__
        statuses[status] += 1
        answers.append((started, status))
        latencies.append(time.monotonic() - started)

    start, sent = time.monotonic(), []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the arrival schedule itself: the load's clock, not a wait for bread
        sent.append(asyncio.create_task(one()))
    await asyncio.gather(*sent)
    return {"latencies": latencies, "statuses": dict(statuses), "answers": answers, "began": start}


async def settle(placed: dict[int, float], confirmed: dict[int, float], seconds: float) -> None:
    """Give the saga up to `seconds` to confirm every accepted order."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not set(placed) <= set(confirmed):
        await asyncio.sleep(0.2)  # the poll interval of a bounded wait


def cpu_report(used: dict[str, float], orders: int, bare_ms: float) -> dict:
    """The CPU an order cost, in all and by process, in milliseconds and in bare requests of the same run."""
    total_ms = sum(used.values()) * 1000 / max(1, orders)
    return {"cpu_ms_per_order": round(total_ms, 2), "bare_requests_per_order": round(total_ms / bare_ms, 1),
            "cpu_ms_per_order_by_process": {name: round(s * 1000 / max(1, orders), 2)
                                            for name, s in sorted(used.items(), key=lambda kv: -kv[1])}}


def step_report(rate: float, seconds: float, run: dict, placed: dict[int, float],
                confirmed: dict[int, float], bread: LocalSystem) -> dict:
    to_confirmed = [confirmed[o] - t for o, t in placed.items() if o in confirmed]
    lost = [o for o in placed if o not in confirmed]
    # The step's orders over the time from its first placement to its last confirmation: below the accepted
    # rate when a backlog builds.
    took = max((confirmed[o] for o in placed if o in confirmed), default=0) - min(placed.values(), default=0)
    return {
        "offered_per_s": rate,
        "accepted_per_s": round(len(placed) / seconds, 1),
        "confirmed_per_s": round(len(to_confirmed) / max(took, seconds), 1),
        "statuses": {str(k): v for k, v in run["statuses"].items()},
        "intake_p50_ms": round(percentile(run["latencies"], 0.5) * 1000, 1),
        "intake_p99_ms": round(percentile(run["latencies"], 0.99) * 1000, 1),
        "confirmed_p50_s": round(percentile(to_confirmed, 0.5), 3),
        "confirmed_p99_s": round(percentile(to_confirmed, 0.99), 3),
        "not_confirmed": len(lost),
        "bread_rss_mib": round(rss_mib_of_bread(bread)),
    }


KAFKA_BURST_S = 20   # the Kafka step's burst holds this many seconds' worth of orders at the REST capacity
INVALID_BEHIND = 3   # and this many invalid requests, produced behind all of it


async def follow_dead_letters(bootstrap: str, seen_at: dict[str, float], ready: asyncio.Event,
                              stop: asyncio.Event) -> None:
    """Note when each request id first reaches the dead letters, from the topic's end as it was at the start."""
    topic = catalog().topics["dead-letters"].name
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or {0}]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        ready.set()
        while not stop.is_set():
            for message in (m for batch in (await consumer.getmany(timeout_ms=200)).values() for m in batch):
                letter = json.loads(message.value)
                if letter["type"] != "DeadLetter":  # a replay's note
                    continue
                _, key, _ = original(letter)
                if key:
                    seen_at.setdefault(key.decode(), time.monotonic())
    finally:
        await consumer.stop()


async def kafka_step(bread: LocalSystem, http: aiohttp.ClientSession, confirmed: dict[int, float],
                     rest_capacity: float, burst_s: float, settle_s: float, cpu: CpuMeter, bare_ms: float) -> dict:
    """Produce `burst_s` seconds' worth of the REST capacity as RequestOrder messages to the request log at once,
    with a few invalid requests behind them all, as a partner system would (a plain producer, no bread code); then
    the rate they were placed and confirmed at (from the first sent to the last confirmed), against the REST
    capacity, how soon the invalid ones reached the dead letters, and the request log's backlog as the order
    worker's GET /pipeline told it meanwhile."""
    topic = catalog().topic_of_event("RequestOrder").name
    count, run = max(100, round(rest_capacity * burst_s)), uuid.uuid4().hex[:8]
    valid = [(f"bench-{run}-{i}", {"item": "cake", "qty": 1}) for i in range(count)]
    invalid = [(f"bench-{run}-invalid-{i}", {"item": "cake", "qty": 0}) for i in range(INVALID_BEHIND)]
    letters: dict[str, float] = {}
    ready, stop = asyncio.Event(), asyncio.Event()
    watching = asyncio.create_task(follow_dead_letters(bread.bootstrap, letters, ready, stop))
    await ready.wait()
    backlog: list[dict] = []
    pipeline = f"{bread.url('order-worker')}/pipeline"

    async def watch_backlog() -> None:
        while not stop.is_set():
            async with http.get(pipeline) as answer:
                backlog.append((await answer.json()).get("requests", {}))
            await asyncio.sleep(0.5)  # the sampling period of the backlog
    sampling = asyncio.create_task(watch_backlog())
    before = set(confirmed)
    producer = AIOKafkaProducer(bootstrap_servers=bread.bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=5)
    await producer.start()
    try:
        cpu.restart()
        started = time.monotonic()
        sent = [await producer.send(topic, key=request_id.encode(),
                                    value=json.dumps({"type": "RequestOrder", "requestId": request_id,
                                                      **order}).encode())
                for request_id, order in valid + invalid]
        await asyncio.gather(*sent)
        produced = time.monotonic()
    finally:
        await producer.stop()
    deadline = produced + 4 * burst_s + settle_s
    while time.monotonic() < deadline and (len(set(confirmed) - before) < count or len(letters) < len(invalid)):
        await asyncio.sleep(0.2)  # the poll interval of a bounded wait
    stop.set()
    await asyncio.gather(watching, sampling)
    done = [confirmed[o] for o in set(confirmed) - before]
    took = (max(done) - started) if done else None
    rate = round(len(done) / took, 1) if took else 0.0
    letters_s = [letters[r] - produced for r, _ in invalid if r in letters]
    return {"requests": count, "invalid_behind": len(invalid), "produced_in_s": round(produced - started, 2),
            "confirmed": len(done), "not_confirmed": count - len(done), "placed_and_confirmed_per_s": rate,
            "share_of_rest_capacity": round(rate / rest_capacity, 3),
            "dead_lettered": len(letters_s),
            "dead_lettered_within_s": round(max(letters_s), 2) if len(letters_s) == len(invalid) else None,
            "most_waiting": max((b.get("waiting", 0) for b in backlog), default=None),
            "most_under_way": max((b.get("underWay", 0) for b in backlog), default=None),
            "most_behind_s": max((b.get("behindS", 0.0) for b in backlog), default=None),
            **cpu_report(cpu.used(), len(done), bare_ms)}


NORMAL_S = 0.5   # placement → Confirmed of an order on a quiet bread is well under this
STEADY_TRIM_S = 5  # how steady an overload run is is judged without its first and last seconds


async def drain(http: aiohttp.ClientSession, url: str, confirmed: dict[int, float], within_s: float) -> float | None:
    """After a load stops: seconds until an order placed then is confirmed as fast as on a quiet bread — a
    probe order every 0.25 s, until one is confirmed within NORMAL_S — or None if none was within `within_s`."""
    stopped = time.monotonic()
    probes: dict[int, float] = {}
    while time.monotonic() - stopped < within_s:
        await offer(http, url, 4, 0.25, probes)
        quick = [t for o, t in probes.items() if o in confirmed and confirmed[o] - t < NORMAL_S]
        if quick:
            return round(min(quick) - stopped, 2)
    return None


def overload_report(rate: float, seconds: float, run: dict, placed: dict[int, float],
                    confirmed: dict[int, float], drained_s: float | None, capacity_per_s: float) -> dict:
    """The overload run: what was taken and refused, how fast the taken ones were confirmed while the load went
    on, whether any was lost, and a per-second timeline for the chart."""
    began, to_confirmed = run["began"], [confirmed[o] - t for o, t in placed.items() if o in confirmed]
    confirmed_during = sum(1 for o in placed if o in confirmed and confirmed[o] - began <= seconds)
    timeline = collections.defaultdict(lambda: {"taken": 0, "refused": 0, "confirmed": 0})
    for sent_at, status in run["answers"]:
        timeline[int(sent_at - began)]["taken" if status in (201, 202) else "refused"] += 1
    for order in placed:
        if order in confirmed:
            timeline[int(confirmed[order] - began)]["confirmed"] += 1
    accepted_latency = [lat for lat, (_, status) in zip(run["latencies"], run["answers"]) if status in (201, 202)]
    middle = [timeline[second] for second in range(STEADY_TRIM_S, int(seconds) - STEADY_TRIM_S)]
    confirmed_steady = statistics.fmean(p["confirmed"] for p in middle) if middle else 0.0
    return {
        "offered_per_s": rate, "seconds": seconds,
        "accepted_per_s": round(len(placed) / seconds, 1),
        "refused_per_s": round(sum(n for k, n in run["statuses"].items() if k not in (201, 202)) / seconds, 1),
        "statuses": {str(k): v for k, v in run["statuses"].items()},
        "confirmed_per_s_while_loaded": round(confirmed_during / seconds, 1),
        "share_of_capacity_confirmed": round(confirmed_during / seconds / capacity_per_s, 2),
        "steady": {"seconds": [STEADY_TRIM_S, int(seconds) - STEADY_TRIM_S],
                   "taken_cv": variation([p["taken"] for p in middle]),
                   "confirmed_cv": variation([p["confirmed"] for p in middle]),
                   "confirmed_per_s": round(confirmed_steady, 1),
                   "share_of_capacity_confirmed": round(confirmed_steady / capacity_per_s, 2)},
        "intake_p99_ms_of_accepted": round(percentile(accepted_latency, 0.99) * 1000, 1),
        "confirmed_p50_s": round(percentile(to_confirmed, 0.5), 3),
        "confirmed_p99_s": round(percentile(to_confirmed, 0.99), 3),
        "not_confirmed": sum(1 for o in placed if o not in confirmed),
        "drained_within_s": drained_s,
        "timeline": [{"second": k, **v} for k, v in sorted(timeline.items())],
    }


def variation(per_second: list[int]) -> float | None:
    """The coefficient of variation of per-second counts: how unsteady they are (0: the same every second)."""
    if len(per_second) < 2 or not statistics.fmean(per_second):
        return None
    return round(statistics.pstdev(per_second) / statistics.fmean(per_second), 3)


def capacity(steps: list[dict]) -> float | None:
    """The highest offered rate bread took whole (every order accepted, none refused as busy) and confirmed with
    p99 placement → Confirmed under the target, losing none."""
    good = [s["offered_per_s"] for s in steps
            if s["confirmed_p99_s"] < TARGET_P99_S and s["not_confirmed"] == 0
            and s["accepted_per_s"] >= 0.99 * s["offered_per_s"]]
    return max(good) if good else None


def chart(steps: list[dict], overload: dict | None, path: Path, result: dict) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    offered = [s["offered_per_s"] for s in steps]
    figure, panels = plt.subplots(1, 3 if overload else 2, figsize=(16 if overload else 11, 4))
    latency, throughput = panels[0], panels[1]
    latency.plot(offered, [s["confirmed_p50_s"] for s in steps], "o-", label="placement → Confirmed p50")
    latency.plot(offered, [s["confirmed_p99_s"] for s in steps], "o-", label="placement → Confirmed p99")
    latency.plot(offered, [s["intake_p99_ms"] / 1000 for s in steps], "o--", label="intake p99")
    latency.axhline(TARGET_P99_S, color="grey", linestyle=":", label="target p99 (2 s)")
    latency.set(xlabel="offered orders/s", ylabel="seconds", yscale="log", title="latency")
    latency.legend(fontsize=8)
    throughput.plot(offered, offered, ":", color="grey", label="offered")
    throughput.plot(offered, [s["accepted_per_s"] for s in steps], "o-", label="accepted")
    throughput.plot(offered, [s["confirmed_per_s"] for s in steps], "o-", label="confirmed")
    throughput.set(xlabel="offered orders/s", ylabel="orders/s", title="throughput")
    throughput.legend(fontsize=8)
    if overload:
        over, seconds = panels[2], [p["second"] for p in overload["timeline"]]
        for what in ("taken", "refused", "confirmed"):
            over.plot(seconds, [p[what] for p in overload["timeline"]], label=what)
        over.axvline(overload["seconds"], color="grey", linestyle=":", label="load stops")
        over.set(xlabel="second of the run", ylabel="orders/s",
                 title=f"overload: {overload['offered_per_s']:.0f}/s offered for {overload['seconds']:.0f} s")
        over.legend(fontsize=8)
    ceiling = result["ceiling"]["bare_requests_per_s"]
    at_80 = result["at_80_pct_of_capacity"]
    figure.suptitle(f"capacity {result['capacity_per_s'] or 0:.0f} orders/s = "
                    f"{result['capacity_to_ceiling'] or 0:.3f} × "
                    f"this machine's ceiling that hour ({ceiling:,} bare aiohttp requests/s)"
                    + (f"; {at_80['bare_requests_per_order']} bare requests of CPU per order at "
                       f"{at_80['offered_per_s']:.0f}/s" if at_80 else ""), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


async def main(rates: list[float], seconds: float, settle_s: float, overload_factor: float,
               overload_s: float, kafka_burst_s: float) -> None:
    bare = await bare_ceiling(CEILING_CLIENTS, CEILING_S)
    ceiling = {"bare_requests_per_s": round(bare["accepted_per_s"]), "bare_p99_ms": round(bare["p99_ms"], 1),
               "cpu_ms_per_bare_request": round(bare["cpu_ms_per_request"], 4)}
    bare_ms = bare["cpu_ms_per_request"]
    print(f"ceiling: a bare aiohttp handler answers {ceiling['bare_requests_per_s']} requests/s "
          f"({CEILING_CLIENTS} clients), {bare_ms:.3f} ms of CPU each (server and driver)", flush=True)
    steps, overload, kafka = [], None, None
    async with running_bread("capacity") as (bread, broker):
        url = f"{bread.url('gateway')}/orders"
        confirmed: dict[int, float] = {}
        stop = asyncio.Event()
        follower = asyncio.create_task(follow_confirmations(bread.bootstrap, confirmed, {}, stop))
        pids = {name: process.pid for name, process in bread.processes.items()}
        cpu = CpuMeter({**pids, "kafka broker": broker.process.pid})
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            await offer(http, url, 20, 3, {})  # warm-up: connections, Kafka metadata, first-use paths
            await settle({}, confirmed, 5)
            cpu.restart()
            await asyncio.sleep(IDLE_S)  # the idle period measured: nothing is offered
            idle = {name: round(s / IDLE_S * 100, 1) for name, s in cpu.used().items()}
            idle_total = round(sum(v for k, v in idle.items() if k != "load driver"), 1)
            print(f"idle: bread uses {idle_total} % of a core (broker included) {idle}", flush=True)
            for rate in rates:
                placed: dict[int, float] = {}
                cpu.restart()
                run = await offer(http, url, rate, seconds, placed)
                await settle(placed, confirmed, settle_s)
                steps.append({**step_report(rate, seconds, run, placed, confirmed, bread),
                              **cpu_report(cpu.used(), sum(1 for o in placed if o in confirmed), bare_ms)})
                s = steps[-1]
                print(f"offered {rate:>5.0f}/s  accepted {s['accepted_per_s']:>6.1f}/s  "
                      f"confirmed {s['confirmed_per_s']:>6.1f}/s  intake p50/p99 "
                      f"{s['intake_p50_ms']:.0f}/{s['intake_p99_ms']:.0f} ms  → Confirmed p50/p99 "
                      f"{s['confirmed_p50_s']:.2f}/{s['confirmed_p99_s']:.2f} s  not confirmed {s['not_confirmed']}  "
                      f"rss {s['bread_rss_mib']} MiB  cpu/order {s['cpu_ms_per_order']} ms "
                      f"({s['bare_requests_per_order']} bare)  {s['statuses']}", flush=True)
                print(f"    cpu ms/order by process: {s['cpu_ms_per_order_by_process']}", flush=True)
            found = capacity(steps)
            if found and kafka_burst_s:
                print(f"kafka: producing {max(100, round(found * kafka_burst_s))} requests at once "
                      f"({kafka_burst_s:g} s of the REST capacity), {INVALID_BEHIND} invalid ones behind them",
                      flush=True)
                kafka = await kafka_step(bread, http, confirmed, found, kafka_burst_s, settle_s, cpu, bare_ms)
                print(f"kafka: {kafka['confirmed']} of {kafka['requests']} placed and confirmed at "
                      f"{kafka['placed_and_confirmed_per_s']}/s = {kafka['share_of_rest_capacity']:.0%} of the REST "
                      f"capacity; the invalid ones dead-lettered within {kafka['dead_lettered_within_s']} s of being "
                      f"sent; backlog at most {kafka['most_waiting']} waiting, {kafka['most_under_way']} under way, "
                      f"{kafka['most_behind_s']} s behind; cpu/order {kafka['cpu_ms_per_order']} ms "
                      f"({kafka['bare_requests_per_order']} bare)", flush=True)
            if found and overload_factor:
                rate = overload_factor * found
                print(f"overload: offering {rate:.0f}/s ({overload_factor:g}× the capacity) for {overload_s:.0f} s",
                      flush=True)
                placed = {}
                run = await offer(http, url, rate, overload_s, placed)
                drained = await drain(http, url, confirmed, 60)
                await settle(placed, confirmed, settle_s)
                overload = overload_report(rate, overload_s, run, placed, confirmed, drained, found)
                print(f"overload: accepted {overload['accepted_per_s']}/s, refused {overload['refused_per_s']}/s, "
                      f"confirmed {overload['confirmed_per_s_while_loaded']}/s while loaded "
                      f"({overload['share_of_capacity_confirmed']:.0%} of capacity), accepted → Confirmed p50/p99 "
                      f"{overload['confirmed_p50_s']:.2f}/{overload['confirmed_p99_s']:.2f} s, not confirmed "
                      f"{overload['not_confirmed']}, back to normal {overload['drained_within_s']} s after the load "
                      f"stopped, {overload['statuses']}", flush=True)
                steady = overload["steady"]
                print(f"overload, seconds {steady['seconds'][0]}-{steady['seconds'][1]}: taken CV "
                      f"{steady['taken_cv']}, confirmed CV {steady['confirmed_cv']}, confirmed "
                      f"{steady['confirmed_per_s']}/s = {steady['share_of_capacity_confirmed']:.0%} of capacity",
                      flush=True)
        stop.set()
        await follower
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    found = capacity(steps)
    result = {"when": stamp, "seconds_per_step": seconds, "target_p99_s": TARGET_P99_S, "ceiling": ceiling,
              "idle_pct_of_a_core": idle, "capacity_per_s": found,
              "capacity_to_ceiling": round(found / ceiling["bare_requests_per_s"], 4) if found else None,
              "at_80_pct_of_capacity": near_80_pct(steps, found), "steps": steps, "kafka": kafka,
              "overload": overload}
    out = RESULTS / f"capacity-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    png = chart(steps, overload, out.with_suffix(".png"), result)
    at_80 = result["at_80_pct_of_capacity"]
    print(f"capacity: {found} orders/s (p99 placement → Confirmed < {TARGET_P99_S} s, nothing lost) = "
          f"{result['capacity_to_ceiling']} × the ceiling ({ceiling['bare_requests_per_s']} bare requests/s)"
          + (f"; at {at_80['offered_per_s']:.0f}/s an order cost {at_80['cpu_ms_per_order']} ms of CPU = "
             f"{at_80['bare_requests_per_order']} bare requests" if at_80 else "")
          + f"; idle {idle_total} % of a core; {out}"
          + (f", {png}" if png else " (no chart: pip install -e '.[bench]')"))


def near_80_pct(steps: list[dict], found: float | None) -> dict | None:
    """The step nearest 80 % of the capacity, at or below it: what an order costs with headroom left."""
    below = [s for s in steps if found and s["offered_per_s"] <= 0.8 * found]
    if not below:
        return None
    step = max(below, key=lambda s: s["offered_per_s"])
    return {k: step[k] for k in ("offered_per_s", "cpu_ms_per_order", "bare_requests_per_order",
                                 "cpu_ms_per_order_by_process", "confirmed_p99_s")}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100,200,300,350,400,450,500,600",
                        help="offered orders/s, one step each, comma-separated")
    parser.add_argument("--seconds", type=float, default=20, help="how long each step offers its rate")
    parser.add_argument("--settle", type=float, default=30, help="how long a step's orders may take to confirm")
    parser.add_argument("--overload", type=float, default=3.0,
                        help="then offer this many times the capacity (0: no overload run)")
    parser.add_argument("--overload-seconds", type=float, default=40, help="for this long")
    parser.add_argument("--kafka-burst", type=float, default=KAFKA_BURST_S,
                        help="produce this many seconds' worth of the REST capacity as requests over Kafka at once "
                             "(0: no Kafka step)")
    args = parser.parse_args()
    asyncio.run(main([float(r) for r in args.rates.split(",")], args.seconds, args.settle, args.overload,
                     args.overload_seconds, args.kafka_burst))
