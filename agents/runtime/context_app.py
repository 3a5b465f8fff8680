"""What every bounded context's Faust app shares: its topics from the catalogue, the agent loop, health.

A bounded context builds `ContextApp(context, settings)` once, declares its tables, and hands `consume` one
handler per event type it cares about. The agent loop hands each message to the handling every consumer shares
(agents/runtime/consuming.py): a poison event is dead-lettered and never stops the agent.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Mapping

import faust
from aiokafka import AIOKafkaConsumer
from faust.exceptions import ProducerSendError
from faust.streams import current_event

from agents import correlation
from agents.catalog import EXTERNAL, catalog
from agents.correlation import event_type_of
from agents.events import Event, encode, key_of
from agents.runtime import faust_patches, probes, tracing
from agents.runtime.consuming import ChangeHandler, Check, Handler, Received, handle, handle_change
from agents.runtime.feed import ChangelogFeed
from agents.runtime.metrics import EVENTS_EMITTED, Progress
from agents.runtime.publisher import topic_for
from agents.runtime.request_log import RequestLog
from agents.runtime.rows import Rows
from agents.settings import Settings

log = logging.getLogger(__name__)


def stop_at_once(_: BaseException) -> None:
    """End the worker now, without another event handled or offset committed: its supervisor starts it again,
    and it handles again every input not committed, from the table as its changelog has it."""
    logging.shutdown()
    os._exit(EXIT_ROW_LOST)


EXIT_ROW_LOST = 75  # EX_TEMPFAIL: started again, it goes on


class Undecoded(faust.Schema):
    """Messages as they came, for bread's own decoding (Faust's codecs would only copy their bytes)."""

    def loads_key(self, app: faust.App, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: faust.App, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


class ContextApp:
    """One bounded context's Faust app: `bread-<context>`, its web server on the context's port."""

    def __init__(self, context: str, settings: Settings, service: str | None = None) -> None:
        faust_patches.check_versions()
        self.context = context
        self.settings = settings
        service = service or context
        web_port = settings.port(service)
        brokers = ";".join(f"kafka://{hp}" for hp in settings.kafka_bootstrap.split(","))
        self.app = faust.App(
            f"bread-{context}",  # = TableSpec.app_id, which names the changelog topics bread creates
            broker=brokers,
            store=settings.bread_store,
            # Two workers of one context on one host keep apart by port.
            datadir=str(settings.data_dir / f"{context}-{web_port}"),
            web_bind=settings.bread_bind,
            web_port=web_port,
            web_host=settings.bread_advertised_host,
            canonical_url=f"http://{settings.bread_advertised_host}:{web_port}",
            producer_acks=-1,
            # How long a killed worker's partitions wait before the group hands them to the others.
            broker_session_timeout=settings.kafka_session_timeout_s,
            broker_heartbeat_interval=settings.kafka_session_timeout_s / 5,
            # Every table write is a changelog message: batch them, or each becomes its own produce request.
            producer_linger=settings.producer_linger_s,
            topic_replication_factor=settings.kafka_replication_factor,
            topic_partitions=self._partitions(),
            key_serializer="raw",
            value_serializer="raw",
            web_cors_options=None,
            monitor=faust_patches.QuietMonitor(),
        )
        faust_patches.long_poll_fetches(self.app, settings.kafka_fetch_min_bytes, settings.kafka_fetch_poll_ms)
        faust_patches.pace_fetches(settings.kafka_fetch_wait_ms / 1000)
        faust_patches.idempotent_producer(self.app.producer)
        self._unacknowledged: set[asyncio.Future] = set()
        faust_patches.flush_before_commit(self.app.producer, self._expect_acknowledgement, self._unacknowledged,
                                          before=self._send_held_rows)
        faust_patches.commit_only_what_was_handled(self.app.consumer, {
            *(t.name for t in catalog().topics_consumed_by(self.context) if EXTERNAL not in t.producers),
            *(t.changelog for t in catalog().tables_followed_by(self.context))})
        faust_patches.drain_without_tasks(self.app.consumer)
        self._rows: list[Rows] = []
        self._request_log: RequestLog | None = None  # the log of requests from outside bread, if it handles one
        self._routing_known = False
        self._sources: set[str] = set()  # the topics this context's agents read
        self.progress = Progress(context, outside={t.name for t in catalog().topics_consumed_by(context)
                                                   if EXTERNAL in t.producers})
        self._may_handle = asyncio.Event()
        self._may_handle.set()
        self.app.on_partitions_revoked.connect(self._forget_recent_rows)
        self.app.timer(interval=settings.consumer_lag_sample_s)(self._sample_lag)
        # Faust's web server is an aiohttp application: the probe pages are mounted on it as on every service.
        probes.mount(self.app.web.web_app, probes.Probe(
            problems=self._problems, stopping=lambda: self.app.should_stop,
            stalled=lambda: self.progress.stalled(settings.liveness_stall_s), pipeline=self._pipeline,
            hold_handling=self._hold_handling), settings.bread_debug)
        self.app.task(self._learn_routing)

    def _partitions(self) -> int:
        """Tables are co-partitioned with every keyed topic the context reads (topics.yaml checks they agree)."""
        return next(t.partitions for t in catalog().tables.values() if t.context == self.context)

    def table(self, name: str | None = None) -> Rows:
        spec = catalog().table_of(self.context, name)
        # Keys stay raw text ('1'), as on every topic: Faust's default would JSON-encode them ('"1"'), and a
        # JSON key hashes to another partition, so a query routed to the key's owner would reach another worker.
        changelog = self.app.topic(
            spec.changelog, key_type=str, key_serializer="raw", value_serializer="json", partitions=spec.partitions,
            compacting=True, deleting=False, acks=False, internal=True, maxsize=131_072, allow_empty=True,
        )
        table = self.app.Table(spec.name, default=None, key_type=str, partitions=spec.partitions,
                               changelog_topic=changelog)
        table.key_serializer = "raw"  # and the same in the RocksDB store
        rows = Rows(table, self.app.producer.send, self._expect_acknowledgement, on_failure=stop_at_once)
        self._rows.append(rows)
        return rows

    async def _send_held_rows(self) -> None:
        for rows in self._rows:
            await rows.send_held()

    async def _forget_recent_rows(self, *_: object, **__: object) -> None:
        for rows in self._rows:
            rows.forget_recent()

    def feed(self, rows: Rows) -> ChangelogFeed:
        """The live feed of a table's changes, for a web view to stream; it stops with the worker."""
        topic = rows.table.changelog_topic.get_topic_name()
        settings = self.settings
        feed = ChangelogFeed(topic, lambda name: AIOKafkaConsumer(
            name, bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False),
            settings.stream_memory, settings.stream_linger_s)

        async def stop(*_: object, **__: object) -> None:
            await feed.stop()
        self.app.on_before_shutdown.connect(stop)
        return feed

    async def _learn_routing(self) -> None:
        """Fetch the changelog topics' metadata, which Faust's router needs to find a key's owner.

        Until this producer has sent to a changelog it knows nothing of it, and routing a query would fail.
        """
        for rows in self._rows:
            await faust_patches.learn_partitions(self.app.producer, rows.table.changelog_topic.get_topic_name())
        self._routing_known = True

    async def emit(self, event: Event, wait: bool = False) -> int | None:
        """Send an event (acks=all). Inside an agent it is acknowledged before the input's offset is committed;
        outside one (a web view, a timer), and with `wait`, once acknowledged this returns its offset. A send that
        failed raises the producer's KafkaError."""
        topic = topic_for(self.context, event)
        try:
            sent = await self.app.producer.send(topic.name, key_of(event), encode(event), None, None,
                                                tracing.event_headers(event))
        except ProducerSendError as exc:
            raise exc.__cause__ or exc from None
        EVENTS_EMITTED.labels(self.context, topic.name, event["type"]).inc()
        if wait or current_event() is None:
            return (await sent).offset
        self._expect_acknowledgement(sent)
        return None

    def _expect_acknowledgement(self, future: asyncio.Future) -> None:
        self._unacknowledged.add(future)
        future.add_done_callback(self._unacknowledged.discard)

    def consume(self, handlers: Mapping[str, Handler]) -> None:
        """One agent running `handlers` (by event type) over the topics that carry those events, each of
        which topics.yaml must say this context consumes."""
        self._agent(*self._handling(handlers))

    def consume_side_by_side(self, handlers: Mapping[str, Handler], bound: Callable[[], int],
                             checks: Mapping[str, Check]) -> None:
        """As `consume`, for the one topic of requests from outside bread that carries the events of `handlers`,
        but the messages of different keys are handled at once, at most `bound()` of them, those of one key one
        after another; and the topic is read ahead of its handling, so a request that `checks` (or its
        declaration) refuses is dead-lettered at once (agents/runtime/request_log.py)."""
        topics, name, handling = self._handling(handlers)
        if len(topics) != 1 or topics[0] not in self.progress.outside:
            raise SystemExit(f"{self.context} handles side by side only one topic of requests from outside bread")
        request_log = RequestLog(self.context, topics[0], self.app, self.settings, self.progress, handling, bound,
                                 checks, lambda letter: self.emit(letter, wait=True), stop_at_once)
        self.app.task(request_log.ahead.run)
        self._agent(topics, name, handling, request_log)
        self._request_log = request_log

    def _handling(self, handlers: Mapping[str, Handler]) -> tuple[list[str], str, Callable[[Received],
                                                                                         Awaitable[None]]]:
        consumed = catalog().topics_consumed_by(self.context)
        stray = set(handlers) - {e for t in consumed for e in t.events}
        if stray:
            raise SystemExit(f"{self.context} handles {sorted(stray)}, which no topic it consumes carries")
        topics = [t for t in consumed if set(t.events) & set(handlers)]
        context = self.context

        async def handling(received: Received) -> None:
            await handle(context, received, handlers, self.emit, self.progress)
        return [t.name for t in topics], f"{context}-{'-'.join(t.alias for t in topics)}", handling

    def follow(self, table: str, on_change: ChangeHandler) -> None:
        """One agent handing `on_change` every change of another context's table, from its changelog, which
        topics.yaml must say this context follows."""
        spec = catalog().tables[table]
        if self.context not in spec.consumers:
            raise SystemExit(f"{self.context} follows the table {table}, which topics.yaml does not say it does")
        context = self.context

        async def handling(received: Received) -> None:
            await handle_change(context, received, on_change, self.emit, self.progress)
        self._agent([spec.changelog], f"{context}-follows-{table}", handling)

    def _agent(self, topics: list[str], name: str, handling: Callable[[Received], Awaitable[None]],
               request_log: RequestLog | None = None) -> None:
        self._sources.update(topics)
        source = self.app.topic(*topics, schema=Undecoded(), internal=False)

        @self.app.agent(source, name=name)
        async def on_message(stream: faust.StreamT) -> None:
            # Side by side, each message is acknowledged once it and those before it are handled; else as it goes.
            events = stream.events() if request_log is None else stream.noack().events()
            async for message in events:
                if not self._may_handle.is_set():  # only a debug switch clears it
                    await self._may_handle.wait()
                raw = message.message
                received = Received(raw.topic, raw.partition, raw.offset, raw.key, raw.value, raw.timestamp,
                                    event_type_of(raw.headers), tracing.carried(raw.headers))
                if request_log is None:
                    await handling(received)
                else:
                    await request_log.take(message, received)
                if stream.channel.queue.empty():  # nothing more in hand: what the agent changed goes out together
                    await self._send_held_rows()

    async def _sample_lag(self) -> None:
        consumer = self.app.consumer
        await self.progress.sample([tp for tp in consumer.assignment() if tp.topic in self._sources],
                                   consumer.highwater, consumer.position)

    def _pipeline(self) -> dict[str, Any]:
        body = self.progress.how_far_behind()
        if self._request_log is not None:
            body["requests"] = self._request_log.backlog()
        return body

    async def _problems(self) -> list[str]:
        """What keeps the worker from doing its work now."""
        app, problems = self.app, []
        if app.consumer is None or not app.consumer.assignment():
            problems.append("no partitions assigned")
        if app.rebalancing:
            problems.append("rebalancing")
        if not app.tables.recovery.completed.is_set():
            problems.append("table recovery in progress")
        if not self._routing_known:
            problems.append("routing metadata not fetched yet")
        return problems

    def _hold_handling(self, seconds: float) -> None:
        log.warning("debug: the agents handle nothing for %.1fs", seconds)
        self._may_handle.clear()
        asyncio.get_running_loop().call_later(seconds, self._may_handle.set)

    def run(self, logging_config: dict[str, Any]) -> None:
        """Run the worker in the foreground until SIGINT/SIGTERM, logging as `logging_config` says."""
        from faust.worker import Worker as FaustWorker

        worker = FaustWorker(self.app, loglevel=self.settings.bread_log_level, logging_config=logging_config,
                             quiet=True)
        # Faust's terminal spinner hangs a DEBUG handler on the root logger, so every debug call in Faust and
        # aiokafka would build a log record: a tenth of a busy worker's time, for a spinner nobody sees.
        worker.spinner = None
        correlation.install_log_tagging()
        worker.execute_from_commandline()
