"""The seed's circuit-breaker scenario, replayed against bread: 100 clients for a fixed time against
POST /orders on the order edge, pay delayed 400–620 ms per request, the edge's pay timeout 610 ms.

The seed (Spring Boot + Hystrix, `siege -c100 -t5S`) measured 84.31 % availability and 17.48
transactions/s, with 500s while its breaker was open. For each fallback (PAY_FALLBACK=reject, then defer)
this starts its own bread (bench/e2e.py's: a fresh broker and data folder, free ports, bakery
auto-confirm on), drives the edge, and prints availability (2xx share of answers, as siege counts),
transactions/s, latency percentiles, the count of each status, and the breaker's transitions; then it
follows Mypage until every accepted order is Confirmed (bounded) and checks pay's books for double charges.

    python bench/breaker.py [--concurrency 100] [--seconds 30] [--fallback reject defer] [--honor-retry-after]
                            [--pay-killed]

siege's clients ask again at once after a 503; with --honor-retry-after they wait as Retry-After says.

With --pay-killed it runs the other half of the checkpoint instead, default settings apart from the scenario's
pay delay and timeout: the same clients, pay killed (SIGKILL) after a while and started again later; it reports
how long the 503s took before the breaker opened (within the timeout?), while it was open (< 50 ms?), and how
soon after pay was ready again an order was taken (within the open time?).

Any PAY_BREAKER_* variable in the environment reaches the edge, to compare breaker settings.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import drive, follow_confirmations, percentile, reason_of, running_bread, until_confirmed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEED = {"availability_pct": 84.31, "transactions_per_s": 17.48, "concurrency": 100, "seconds": 5}
SCENARIO = {"PAY_DELAY_MS": "400-620", "PAY_TIMEOUT_S": "0.61"}


async def breaker_metrics(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.findall(r'^bread_breaker_(transitions|calls)_total\{([^}]*)\} (\S+)$', text, re.M)
    return {f"{kind}:{labels}": float(value) for kind, labels, value in found}


WATCHED = {"limit": 'bread_bulkhead_limit{bulkhead="pay"}', "in_flight": 'bread_bulkhead_in_flight{bulkhead="pay"}',
           "waiting": 'bread_bulkhead_waiting{bulkhead="pay"}', "door_per_s": "bread_admission_rate_per_second",
           "behind_s": "bread_admission_delay_seconds", "loop_late_s": 'bread_event_loop_late_seconds{service="order"}'}


async def watch_the_edge(url: str, began: float, stop: asyncio.Event, seen: dict[int, dict[str, float]]) -> None:
    """Each second, the edge's own view (its bulkhead in front of pay, its door, its loop), for the timeline."""
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            try:
                async with http.get(f"{url}/metrics") as response:
                    text = await response.text()
            except aiohttp.ClientError:
                text = ""
            values = dict(re.findall(r"^(\S+) (\S+)$", text, re.M))
            seen[int(time.monotonic() - began)] = {name: round(float(values[metric]), 3)
                                                   for name, metric in WATCHED.items() if metric in values}
            await asyncio.sleep(1)  # the timeline's resolution


async def books(pay_url: str, order_ids: list[int]) -> dict[str, int]:
    """How many of these orders pay charged, refunded, and charged more than once (must be 0)."""
    counts = {"charged": 0, "refunded": 0, "charged_twice": 0}
    async with aiohttp.ClientSession() as http:
        for order_id in order_ids:
            async with http.get(f"{pay_url}/payments/{order_id}") as response:
                if response.status != 200:
                    continue
                actions = [p["action"] for p in (await response.json())["payments"]]
            counts["charged"] += "apply" in actions
            counts["refunded"] += "cancel" in actions
            counts["charged_twice"] += actions.count("apply") > 1
    return counts


async def scenario(fallback: str, concurrency: int, seconds: float, honor_retry_after: bool) -> dict:
    async with running_bread(f"breaker-{fallback}", **SCENARIO, PAY_FALLBACK=fallback) as (bread, _):
        edge = bread.url("order")
        placed: dict[int, float] = {}
        confirmed: dict[int, float] = {}
        stop = asyncio.Event()
        follower = asyncio.create_task(follow_confirmations(bread.bootstrap, confirmed, {}, stop))
        edge_seen: dict[int, dict[str, float]] = {}
        watching_stops = asyncio.Event()
        watching = asyncio.create_task(watch_the_edge(edge, time.monotonic(), watching_stops, edge_seen))
        load = await drive(f"{edge}/orders", b'{"item":"cake","qty":1}', concurrency, seconds, placed,
                           honor_retry_after)
        watching_stops.set()
        await watching
        breaker = await breaker_metrics(edge)
        # Every accepted order must end Confirmed: deferred ones once pay has charged them from Kafka.
        await until_confirmed(placed, confirmed, 120)
        stop.set()
        await follower
        answered = sum(n for status, n in load["statuses"].items() if isinstance(status, int))
        succeeded = sum(n for status, n in load["statuses"].items() if isinstance(status, int) and status < 300)
        return {
            "fallback": fallback, "clients_honor_retry_after": honor_retry_after,
            "availability_pct": round(100 * succeeded / max(1, load["requests"]), 2),
            "transactions_per_s": round(answered / load["elapsed_s"], 2),
            "accepted_per_s": round(load["accepted_per_s"], 2),
            "latency_ms": {q: round(load[f"{q}_ms"], 1) for q in ("p50", "p90", "p99", "max")},
            "statuses": {str(k): v for k, v in sorted(load["statuses"].items(), key=str)},
            "refusals_by_reason": load["refusals_by_reason"],
            "timeline": [{**second, **edge_seen.get(second["second"], {})} for second in load["timeline"]],
            "breaker": breaker,
            "accepted_orders_confirmed": f"{len(set(placed) & set(confirmed))}/{len(placed)}",
            "pay_books_of_accepted": await books(bread.url("pay"), sorted(placed)),
        }


async def answers_over_time(url: str, concurrency: int, stop: asyncio.Event,
                            answers: list[tuple[float, float, int, str]]) -> None:
    """Adds (sent, answered, status, error text) of every request `concurrency` clients send back to back until
    `stop` to `answers`, as they come."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def client() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                async with http.post(url, data=b'{"item":"cake","qty":1}',
                                     headers={"Content-Type": "application/json"}) as response:
                    body = await response.json(content_type=None)
                answers.append((sent, time.monotonic(), response.status, str(body.get("error", ""))))
        await asyncio.gather(*(client() for _ in range(concurrency)))


async def pay_killed(concurrency: int, up_s: float = 10, down_s: float = 15) -> dict:
    """Pay killed under load, then started again: what the callers see meanwhile."""
    async with running_bread("breaker-pay-killed", **SCENARIO) as (bread, _):
        edge = bread.url("order")
        stop, answers = asyncio.Event(), []
        load = asyncio.create_task(answers_over_time(f"{edge}/orders", concurrency, stop, answers))
        await asyncio.sleep(up_s)  # the load runs: the span measured before pay is killed
        killed = time.monotonic()
        bread.stop("pay", signal.SIGKILL)
        await asyncio.sleep(down_s)  # pay stays dead this long
        bread.start("pay")
        async with aiohttp.ClientSession() as http:
            await bread.until_ready("pay", http, timeout=60)
        back = time.monotonic()
        while time.monotonic() - back < 30 and not any(a[0] >= back and a[2] == 201 for a in answers):
            await asyncio.sleep(0.1)  # the poll interval of a bounded wait for the first order taken
        await asyncio.sleep(2)  # a little of the load after recovery, for the record
        stop.set()
        await load
    opened = [a for a in answers if a[0] >= killed and "circuit breaker" in a[3]]
    # The calls pay's death caught (in flight, or made before the breaker opened): how long their 503s took.
    before_open = [a for a in answers if a[1] >= killed and a[2] == 503 and "circuit breaker" not in a[3]
                   and (not opened or a[0] < opened[0][0])]
    first_taken = min((a[1] for a in answers if a[0] >= back and a[2] == 201), default=float("nan"))
    return {
        "pay_timeout_s": float(SCENARIO["PAY_TIMEOUT_S"]),
        "before_pay_killed": {"answers": sum(a[0] < killed for a in answers),
                              "taken": sum(a[0] < killed and a[2] == 201 for a in answers)},
        "pay_down_503_before_open": {"count": len(before_open),
                                     "max_ms": round(1000 * max((a[1] - a[0] for a in before_open), default=0), 1)},
        "breaker_open_from_s_after_the_kill": round(opened[0][1] - killed, 2) if opened else None,
        "while_open_503": {"count": len(opened),
                           "p50_ms": round(1000 * percentile([a[1] - a[0] for a in opened], 0.5), 2),
                           "p99_ms": round(1000 * percentile([a[1] - a[0] for a in opened], 0.99), 2)},
        "first_order_taken_after_pay_ready_s": round(first_taken - back, 2),
        "statuses": {str(k): sum(a[2] == k for a in answers) for k in sorted({a[2] for a in answers})},
        "refusals_by_reason": dict(collections.Counter(reason_of(a[3]) for a in answers if a[2] >= 300)),
    }


def keep(kind: str, result: dict) -> None:
    """Print the result and keep it in bench/results/breaker-<kind>-<time>.json."""
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"breaker-{kind}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(text + "\n")
    print(f"kept in {out.relative_to(RESULTS.parent.parent)}", file=sys.stderr)


async def main(fallbacks: list[str], concurrency: int, seconds: float, honor_retry_after: bool,
               killed: bool) -> None:
    if killed:
        keep("pay-killed", {"scenario": {**SCENARIO, "concurrency": concurrency, "pay": "killed, then back"},
                            "bread": await pay_killed(concurrency)})
        return
    results = [await scenario(f, concurrency, seconds, honor_retry_after) for f in fallbacks]
    keep(f"c{concurrency}", {"scenario": {**SCENARIO, "concurrency": concurrency, "seconds": seconds},
                             "seed": SEED, "bread": results})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--fallback", nargs="+", default=["reject", "defer"], choices=["reject", "defer"])
    parser.add_argument("--honor-retry-after", action="store_true")
    parser.add_argument("--pay-killed", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.fallback, args.concurrency, args.seconds, args.honor_retry_after, args.pay_killed))
