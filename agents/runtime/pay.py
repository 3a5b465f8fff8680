"""pay's side of the saga on Kafka: its consumer hands each event to pay's handler of it (agents/pay/saga.py)
through the same handling as every Faust agent (agents/runtime/consuming.py). Its decisions reach Kafka through
the ledger's outbox, relayed in order as soon as something is written to it."""
from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.correlation import event_type_of, kafka_headers
from agents.pay.ledger import Ledger
from agents.runtime import tracing
from agents.runtime.consuming import Handler, Received, Send, handle, unwanted
from agents.runtime.metrics import EVENTS_EMITTED, Progress

log = logging.getLogger(__name__)

CONTEXT = "pay"


async def follow_the_saga(consumer: AIOKafkaConsumer, handlers: dict[str, Handler], dead_letters: Send,
                          progress: Progress, lag_sample_s: float, stop: asyncio.Event) -> None:
    """Handle pay's events batch by batch until `stop`; then commit what was handled (the caller leaves the
    group), so a graceful stop hands nothing handled twice to the next owner."""
    committed_at = sampled_at = time.monotonic()
    while not stop.is_set():
        try:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            received = [Received(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp / 1000,
                                 event_type_of(m.headers), tracing.carried(m.headers))
                        for batch in batches.values() for m in batch]
            # A batch at once: with PAY_DELAY_MS each charge takes its time, and they do not wait for each other;
            # the ledger's changes join one group transaction.
            await asyncio.gather(*(handle(CONTEXT, r, handlers, dead_letters, progress) for r in received
                                   if not unwanted(CONTEXT, r, handlers, progress)))
            # Committing every batch would cost a request per batch; handling an event twice is harmless.
            if batches and time.monotonic() - committed_at >= 1:
                await consumer.commit()
                committed_at = time.monotonic()
            if time.monotonic() - sampled_at >= lag_sample_s:
                await progress.sample(consumer.assignment(), consumer.highwater, consumer.position)
                sampled_at = time.monotonic()
        except KafkaError as exc:
            # The broker is gone or the group is rebalancing: what was not committed is handled again, which
            # the ledger makes harmless. Go on once it answers again.
            log.warning("pay's consumer: %s; going on", exc)
            await asyncio.sleep(1)  # back off before asking a failing broker again
    await consumer.commit()


async def relay_outbox(ledger: Ledger, producer: AIOKafkaProducer, outbox_written: asyncio.Event) -> None:
    """Publish the outbox in order, as soon as something is written to it. The entries are events encoded
    when the ledger wrote them: they go out as they are."""
    while True:
        await outbox_written.wait()
        outbox_written.clear()
        try:
            while entries := await ledger.unpublished():
                events = [orjson.loads(e.value) for e in entries]
                sent = [await producer.send(e.topic, key=e.key, value=e.value,
                                            headers=kafka_headers(event) + tracing.headers_of(e.trace))
                        for e, event in zip(entries, events)]
                await asyncio.gather(*sent)
                await ledger.mark_published([e.id for e in entries])
                for entry, event in zip(entries, events):
                    EVENTS_EMITTED.labels(CONTEXT, entry.topic, event["type"]).inc()
        except Exception:
            log.exception("outbox relay failed; retrying")
            await asyncio.sleep(1)  # back off before the next attempt against a failing broker
            outbox_written.set()
