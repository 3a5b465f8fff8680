"""The seed's circuit-breaker scenario, replayed against bread: 100 clients for a fixed time against
POST /orders on the order edge, pay delayed 400–620 ms per request, the edge's pay timeout 610 ms.

The seed (Spring Boot + Hystrix, `siege -c100 -t5S`) measured 84.31 % availability and 17.48
transactions/s, with 500s while its breaker was open. For each fallback (PAY_FALLBACK=reject, then defer)
this starts its own bread (bench/e2e.py's: a fresh broker and data folder, free ports, bakery
auto-confirm on), drives the edge, and prints availability (2xx share of answers, as siege counts),
transactions/s, latency percentiles, the count of each status, and the breaker's transitions; then it
follows Mypage until every accepted order is Confirmed (bounded) and checks pay's books for double charges.

    python bench/breaker.py [--concurrency 100] [--seconds 30] [--fallback reject defer] [--honor-retry-after]

siege's clients ask again at once after a 503; with --honor-retry-after they wait as Retry-After says.

Any PAY_BREAKER_* variable in the environment reaches the edge, to compare breaker settings.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e import drive, follow_confirmations, running_bread, until_confirmed  # noqa: E402

SEED = {"availability_pct": 84.31, "transactions_per_s": 17.48, "concurrency": 100, "seconds": 5}
SCENARIO = {"PAY_DELAY_MS": "400-620", "PAY_TIMEOUT_S": "0.61"}


async def breaker_metrics(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.findall(r'^bread_breaker_(transitions|calls)_total\{([^}]*)\} (\S+)$', text, re.M)
    return {f"{kind}:{labels}": float(value) for kind, labels, value in found}


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
        load = await drive(f"{edge}/orders", b'{"item":"cake","qty":1}', concurrency, seconds, placed,
                           honor_retry_after)
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
            "breaker": breaker,
            "accepted_orders_confirmed": f"{len(set(placed) & set(confirmed))}/{len(placed)}",
            "pay_books_of_accepted": await books(bread.url("pay"), sorted(placed)),
        }


async def main(fallbacks: list[str], concurrency: int, seconds: float, honor_retry_after: bool) -> None:
    results = [await scenario(f, concurrency, seconds, honor_retry_after) for f in fallbacks]
    print(json.dumps({"scenario": {**SCENARIO, "concurrency": concurrency, "seconds": seconds},
                      "seed": SEED, "bread": results}, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--fallback", nargs="+", default=["reject", "defer"], choices=["reject", "defer"])
    parser.add_argument("--honor-retry-after", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.fallback, args.concurrency, args.seconds, args.honor_retry_after))
