"""Capacity benchmark: an open-loop load in steps, on a real local Kafka, through the gateway.

Starts its own bread (as bench/e2e.py does: `bread up` on separate ports, BAKERY_AUTO_CONFIRM=true, a fresh data
folder, the rate limit off), then for each offered rate sends POST /orders at that rate for a fixed time — each
request at its own moment, whatever the answers before it (open loop: a slow bread does not slow the load
down) — and reports per step: accepted/s, intake p50/p99, placement → Confirmed p50/p99 (read from the Mypage
table's changelog) and how many accepted orders never confirmed. The capacity is the highest step whose p99
placement → Confirmed is under 2 s with nothing lost.

Writes bench/results/capacity-<time>.json and, with matplotlib installed (`pip install -e '.[bench]'`), a PNG
chart beside it.

    python bench/capacity.py [--rates 50,100,200,300,400,500] [--seconds 20] [--settle 30]
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.e2e import BOOTSTRAP, PORTS, follow_confirmations, percentile, rss_mib_of_bread, running_bread  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_P99_S = 2.0
ORDER = b'{"item":"cake","qty":1}'


async def offer(http: aiohttp.ClientSession, url: str, rate: float, seconds: float,
                placed: dict[int, float]) -> dict:
    """POST /orders at `rate` a second for `seconds`, each request at its own moment."""
    latencies: list[float] = []
    statuses: collections.Counter = collections.Counter()

    async def one() -> None:
        started = time.monotonic()
        try:
            async with http.post(url, data=ORDER, headers={"Content-Type": "application/json"}) as answer:
                body = await answer.json(content_type=None)
                statuses[answer.status] += 1
                if answer.status in (201, 202) and "id" in body:
                    placed[body["id"]] = started
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            statuses[type(exc).__name__] += 1
        latencies.append(time.monotonic() - started)

    start, sent = time.monotonic(), []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the arrival schedule itself: the load's clock, not a wait for bread
        sent.append(asyncio.create_task(one()))
    await asyncio.gather(*sent)
    return {"latencies": latencies, "statuses": dict(statuses)}


async def settle(placed: dict[int, float], confirmed: dict[int, float], seconds: float) -> None:
    """Give the saga up to `seconds` to confirm every accepted order."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not set(placed) <= set(confirmed):
        await asyncio.sleep(0.2)  # the poll interval of a bounded wait


def step_report(rate: float, seconds: float, run: dict, placed: dict[int, float],
                confirmed: dict[int, float]) -> dict:
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
        "bread_rss_mib": round(rss_mib_of_bread()),
    }


def capacity(steps: list[dict]) -> float | None:
    good = [s["offered_per_s"] for s in steps
            if s["confirmed_p99_s"] < TARGET_P99_S and s["not_confirmed"] == 0 and s["accepted_per_s"] > 0]
    return max(good) if good else None


def chart(steps: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    offered = [s["offered_per_s"] for s in steps]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4))
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
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


async def main(rates: list[float], seconds: float, settle_s: float) -> None:
    steps = []
    async with running_bread("capacity"):
        url = f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}/orders"
        confirmed: dict[int, float] = {}
        stop = asyncio.Event()
        follower = asyncio.create_task(follow_confirmations(BOOTSTRAP, confirmed, {}, stop))
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            await offer(http, url, 20, 3, {})  # warm-up: connections, Kafka metadata, first-use paths
            for rate in rates:
                placed: dict[int, float] = {}
                run = await offer(http, url, rate, seconds, placed)
                await settle(placed, confirmed, settle_s)
                steps.append(step_report(rate, seconds, run, placed, confirmed))
                s = steps[-1]
                print(f"offered {rate:>5.0f}/s  accepted {s['accepted_per_s']:>6.1f}/s  "
                      f"confirmed {s['confirmed_per_s']:>6.1f}/s  intake p50/p99 "
                      f"{s['intake_p50_ms']:.0f}/{s['intake_p99_ms']:.0f} ms  → Confirmed p50/p99 "
                      f"{s['confirmed_p50_s']:.2f}/{s['confirmed_p99_s']:.2f} s  not confirmed {s['not_confirmed']}  "
                      f"rss {s['bread_rss_mib']} MiB  {s['statuses']}", flush=True)
        stop.set()
        await follower
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    result = {"when": stamp, "seconds_per_step": seconds, "target_p99_s": TARGET_P99_S,
              "capacity_per_s": capacity(steps), "steps": steps}
    out = RESULTS / f"capacity-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    png = chart(steps, out.with_suffix(".png"))
    print(f"capacity: {result['capacity_per_s']} orders/s (p99 placement → Confirmed < {TARGET_P99_S} s, nothing "
          f"lost); {out}" + (f", {png}" if png else " (no chart: pip install -e '.[bench]')"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100,200,300,400,500",
                        help="offered orders/s, one step each, comma-separated")
    parser.add_argument("--seconds", type=float, default=20, help="how long each step offers its rate")
    parser.add_argument("--settle", type=float, default=30, help="how long a step's orders may take to confirm")
    args = parser.parse_args()
    asyncio.run(main([float(r) for r in args.rates.split(",")], args.seconds, args.settle))
