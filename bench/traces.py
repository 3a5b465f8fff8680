"""What tracing costs: the same load on a bread with traces off (the default), on (OTLP to a collector), and on
with one trace in ten sampled (OpenTelemetry's OTEL_TRACES_SAMPLER), one after the other in one run, against the
machine's ceiling of that run.

First the ceiling (a bare aiohttp handler, as bench/capacity.py measures it). Then, for each of the three breads —
each its own broker and data folder, BAKERY_AUTO_CONFIRM=true, the rate limit off — an open-loop load of POST
/orders through the gateway at each offered rate for a fixed time, and per step: the CPU an order cost (every bread
process and the broker, in milliseconds and in bare requests of the same run), intake p50/p99, placement →
Confirmed p50/p99, and with traces on, the spans the collector took per order. The collector (ops/trace_sink.py)
runs in this process, beside the load driver, so its work is not counted as bread's.

Writes bench/results/traces-<time>.json.

    python bench/traces.py [--rates 100,200] [--seconds 15] [--settle 15]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import CEILING_CLIENTS, CEILING_S, RESULTS, cpu_report, offer, settle, step_report  # noqa: E402
from bench.e2e import CpuMeter, bare_ceiling, follow_confirmations, running_bread  # noqa: E402
from ops.trace_sink import TraceSink  # noqa: E402


async def steps_of(name: str, rates: list[float], seconds: float, settle_s: float, bare_ms: float,
                   sink: TraceSink | None, **settings: str) -> list[dict]:
    steps = []
    async with running_bread(name, **settings) as (bread, broker):
        url = f"{bread.url('gateway')}/orders"
        confirmed: dict[int, float] = {}
        stop = asyncio.Event()
        follower = asyncio.create_task(follow_confirmations(bread.bootstrap, confirmed, {}, stop))
        cpu = CpuMeter({**{n: p.pid for n, p in bread.processes.items()}, "kafka broker": broker.process.pid})
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=30)) as http:
            await offer(http, url, 20, 3, {})  # warm-up: connections, Kafka metadata, first-use paths
            await settle({}, confirmed, 5)
            for rate in rates:
                placed: dict[int, float] = {}
                spans_before = len(sink.spans()) if sink else 0
                cpu.restart()
                run = await offer(http, url, rate, seconds, placed)
                await settle(placed, confirmed, settle_s)
                used = cpu.used()
                used.pop("load driver", None)  # the driver, and the collector beside it, are not bread
                orders = sum(1 for o in placed if o in confirmed)
                step = {**step_report(rate, seconds, run, placed, confirmed, bread),
                        **cpu_report(used, orders, bare_ms)}
                if sink:
                    step["spans_per_order"] = round((len(sink.spans()) - spans_before) / max(1, orders), 1)
                steps.append(step)
                print(f"{name}: offered {rate:.0f}/s  confirmed {step['confirmed_per_s']}/s  cpu/order "
                      f"{step['cpu_ms_per_order']} ms ({step['bare_requests_per_order']} bare)  intake p50/p99 "
                      f"{step['intake_p50_ms']}/{step['intake_p99_ms']} ms  → Confirmed p99 "
                      f"{step['confirmed_p99_s']} s  not confirmed {step['not_confirmed']}"
                      + (f"  spans/order {step['spans_per_order']}" if sink else ""), flush=True)
        stop.set()
        await follower
    return steps


async def main(rates: list[float], seconds: float, settle_s: float) -> None:
    bare = await bare_ceiling(CEILING_CLIENTS, CEILING_S)
    ceiling = {"bare_requests_per_s": round(bare["accepted_per_s"]),
               "cpu_ms_per_bare_request": round(bare["cpu_ms_per_request"], 4)}
    print(f"ceiling: {ceiling['bare_requests_per_s']} bare requests/s, {bare['cpu_ms_per_request']:.3f} ms of CPU "
          f"each", flush=True)
    off = await steps_of("traces-off", rates, seconds, settle_s, bare["cpu_ms_per_request"], None)
    sink = TraceSink().start()
    try:
        to_sink = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}
        on = await steps_of("traces-on", rates, seconds, settle_s, bare["cpu_ms_per_request"], sink, **to_sink)
        # The SDK's own sampler: the gateway keeps one trace in ten, every service follows its decision.
        sampled = await steps_of("traces-sampled", rates, seconds, settle_s, bare["cpu_ms_per_request"], sink,
                                 OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1",
                                 **to_sink)
    finally:
        sink.stop()
    compared = [{"offered_per_s": a["offered_per_s"], "cpu_ms_per_order_off": a["cpu_ms_per_order"],
                 "cpu_ms_per_order_on": b["cpu_ms_per_order"], "cpu_ms_per_order_sampled": c["cpu_ms_per_order"],
                 "cpu_on_to_off": round(b["cpu_ms_per_order"] / a["cpu_ms_per_order"], 3),
                 "cpu_sampled_to_off": round(c["cpu_ms_per_order"] / a["cpu_ms_per_order"], 3),
                 "confirmed_per_s": [a["confirmed_per_s"], b["confirmed_per_s"], c["confirmed_per_s"]],
                 "confirmed_p99_s": [a["confirmed_p99_s"], b["confirmed_p99_s"], c["confirmed_p99_s"]]}
                for a, b, c in zip(off, on, sampled)]
    for c in compared:
        print(f"at {c['offered_per_s']:.0f}/s: cpu/order {c['cpu_ms_per_order_off']} ms off, "
              f"{c['cpu_ms_per_order_on']} ms on (× {c['cpu_on_to_off']}), {c['cpu_ms_per_order_sampled']} ms with "
              f"one trace in ten (× {c['cpu_sampled_to_off']}); confirmed/s off, on, sampled "
              f"{c['confirmed_per_s']}; → Confirmed p99 {c['confirmed_p99_s']} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"traces-{stamp}.json"
    out.write_text(json.dumps({"when": stamp, "seconds_per_step": seconds, "ceiling": ceiling, "off": off,
                               "on": on, "sampled": sampled, "compared": compared}, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="100,200", help="offered orders/s, one step each, comma-separated")
    parser.add_argument("--seconds", type=float, default=15, help="how long each step offers its rate")
    parser.add_argument("--settle", type=float, default=15, help="how long a step's orders may take to confirm")
    args = parser.parse_args()
    asyncio.run(main([float(r) for r in args.rates.split(",")], args.seconds, args.settle))
