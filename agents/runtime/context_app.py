"""What every bounded context's Faust app shares: its topics from the catalogue, the agent loop, health.

A bounded context builds `ContextApp(context, settings)` once, declares its tables, and hands `consume` one
handler per event type it cares about. The agent loop hands each message to the handling every consumer shares
(agents/runtime/consuming.py): a poison event is dead-lettered and never stops the agent.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Mapping

import faust
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.streams import current_event
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agents import correlation, debugging
from agents.catalog import EXTERNAL, catalog
from agents.events import Event, encode, key_of
from agents.runtime.consuming import Handler, Received, handle
from agents.runtime.feed import ChangelogFeed
from agents.runtime.metrics import EVENTS_EMITTED, Progress
from agents.runtime.publisher import Publisher, topic_for
from agents.settings import Settings

log = logging.getLogger(__name__)

REREAD_AFTER_S = 30.0  # a partition still missing messages this long after reading again reads again


def record(table: faust.Table, key: str, value: dict | None) -> None:
    """Write a table's row for an input, even when the input changed nothing (it was seen before).

    The table's changelog is an output like any event: the local store may hold a change whose changelog
    message a crash lost, and an input seen again finds the change applied already. Writing the row again
    sends that message, so the changelog — what every other worker recovers from — never stays behind.
    """
    if value is not None:
        table[key] = value


class ContextApp:
    """One bounded context's Faust app: `bread-<context>`, its web server on the context's port."""

    def __init__(self, context: str, settings: Settings, service: str | None = None) -> None:
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
            # exactly_once is not the default: with faust-streaming 0.15.3 a worker hangs on SIGTERM in its last
            # transaction commit, and a second worker of a context crashes restoring a table; see README.
            processing_guarantee=settings.processing_guarantee,
            topic_replication_factor=settings.kafka_replication_factor,
            topic_partitions=self._partitions(),
            key_serializer="raw",
            value_serializer="raw",
            web_cors_options=None,
        )
        self._install_metrics()
        self._batch_fetches()
        self._unacknowledged: set[asyncio.Future] = set()
        self._flush_before_commit()
        self._commit_only_what_was_handled()
        self._topics: dict[str, faust.TopicT] = {}
        self._tables: list[faust.Table] = []
        self._routing_known = False
        self._publisher: Publisher | None = None
        self._sources: set[str] = set()  # the topics this context's agents read
        self.progress = Progress(context)
        self._may_handle = asyncio.Event()
        self._may_handle.set()
        self.app.on_before_shutdown.connect(self._stop_standalone)
        self.app.timer(interval=settings.consumer_lag_sample_s)(self._sample_lag)
        self._install_health()
        self._install_pipeline()
        self.app.task(self._learn_routing)

    def _partitions(self) -> int:
        """Tables are co-partitioned with every keyed topic the context reads (topics.yaml checks they agree)."""
        return next(t.partitions for t in catalog().tables.values() if t.context == self.context)

    def _topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(name, key_type=str, internal=False)
        return self._topics[name]

    def table(self, name: str | None = None) -> faust.Table:
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
        self._tables.append(table)
        return table

    def feed(self, table: faust.Table) -> ChangelogFeed:
        """The live feed of `table`'s changes, for a web view to stream; it stops with the worker."""
        topic = table.changelog_topic.get_topic_name()
        settings = self.settings
        feed = ChangelogFeed(topic, lambda name: AIOKafkaConsumer(
            name, bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
            # A table change under exactly-once shows once its transaction commits.
            isolation_level="read_committed"), settings.stream_memory, settings.stream_linger_s)

        async def stop(*_: object, **__: object) -> None:
            await feed.stop()
        self.app.on_before_shutdown.connect(stop)
        return feed

    async def _learn_routing(self) -> None:
        """Fetch the changelog topics' metadata, which Faust's router needs to find a key's owner.

        Until this producer has sent to a changelog it knows nothing of it, and routing a query would fail.
        """
        producer = self.app.producer._ensure_producer()
        for table in self._tables:
            await producer.partitions_for(table.changelog_topic.get_topic_name())
        self._routing_known = True

    async def emit(self, event: Event, wait: bool = False) -> int | None:
        """Send an event: inside an agent with the event being processed (in its transaction under
        exactly-once), outside one (a web view, a timer) at once with a plain producer (acks=all).
        With `wait`, wait for the broker's acknowledgement and return the event's offset."""
        if current_event() is None:
            # Faust's own producer would put it in a transaction that no stream ever commits.
            return await (await self._standalone()).send(event)
        topic = topic_for(self.context, event)
        sent = await self._topic(topic.name).send(key=key_of(event), value=encode(event),
                                                  headers=correlation.kafka_headers(event))
        self._expect_acknowledgement(sent)  # before the input's offset is committed
        EVENTS_EMITTED.labels(self.context, topic.name, event["type"]).inc()
        return (await sent).offset if wait else None

    async def flush(self) -> None:
        """Wait until every event sent and every table change made so far is acknowledged by the broker;
        raise if one of them failed."""
        await self.app.producer.flush()

    def _flush_before_commit(self) -> None:
        """Make the flush Faust does before it commits consumer offsets a real one.

        Faust's own gives up on its buffer of table changes after 0.1 s without progress (a broker that just
        came back), and does not look at sends that failed, so it can commit an input's offset while that
        input's table change or event never reached the broker: a crash then loses them for good. Here the
        flush waits for every send made so far to be acknowledged, and raises if one failed, which stops the
        commit: the worker fails, starts again, and handles those inputs again.
        """
        producer, pending = self.app.producer, self._unacknowledged
        buffer_put, faust_flush = producer.buffer.put, producer.flush

        def put(future: asyncio.Future) -> None:
            self._expect_acknowledgement(future)
            buffer_put(future)

        async def flush() -> None:
            await asyncio.gather(*list(pending))
            await faust_flush()

        producer.buffer.put, producer.flush = put, flush

    def _commit_only_what_was_handled(self) -> None:
        """Never commit an offset past a message that was not handled; read such messages again.

        Faust drops records it fetched when its flow stops or a partition is paused mid-batch (rebalances,
        table recovery, a broker coming back), commits the first run of handled offsets even when it begins
        past the last commit, and commits over offsets its fetches skipped, taking them for transaction
        markers. Only producers from outside bread write markers: on bread's own topics a skipped offset is
        a message missed, and committing past it would lose it for good. So on those topics the partition's
        commit waits, and the worker seeks back to its last commits and reads from there again (what it
        handled already it handles again, which outputs-follow-from-state makes harmless).
        """
        consumer = self.app.consumer
        own = {t.name for t in catalog().topics_consumed_by(self.context) if EXTERNAL not in t.producers}
        faust_new_offset, faust_add_gap = consumer._new_offset, consumer._add_gap
        sought: dict[Any, tuple[int, float]] = {}  # partition -> (the commit sought back to, when)
        seeking: set[asyncio.Task] = set()

        def read_again(tp: Any, first: int, next_handled: int) -> None:
            committed = consumer._committed_offset[tp]
            if committed is not None and sought.get(tp, (None, 0.0))[0] == committed \
                    and time.monotonic() - sought[tp][1] < REREAD_AFTER_S:
                return  # reading again already
            sought[tp] = (committed, time.monotonic())
            log.warning("%s: offsets from %s were not handled before %s; reading again from the last commit",
                        tp, first, next_handled)
            seeking.add(seek := asyncio.get_running_loop().create_task(consumer.perform_seek()))
            seek.add_done_callback(seeking.discard)

        def new_offset(tp: Any) -> int | None:
            handled, committed = consumer._acked[tp], consumer._committed_offset[tp]
            if tp.topic in own and handled and committed is not None and min(handled) > committed:
                read_again(tp, committed, min(handled))
                return None
            return faust_new_offset(tp)

        async def add_gap(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic in own:
                read_again(tp, offset_from, offset_to)
            else:
                await faust_add_gap(tp, offset_from, offset_to)

        consumer._new_offset, consumer._add_gap = new_offset, add_gap

    def _expect_acknowledgement(self, future: asyncio.Future) -> None:
        self._unacknowledged.add(future)
        future.add_done_callback(self._unacknowledged.discard)

    async def _standalone(self) -> Publisher:
        if self._publisher is None:
            producer = AIOKafkaProducer(**self.settings.kafka_producer())
            await producer.start()
            self._publisher = Publisher(self.context, producer)
        return self._publisher

    async def _stop_standalone(self, *args: object, **kwargs: object) -> None:
        if self._publisher is not None:
            await self._publisher.producer.stop()

    def consume(self, handlers: Mapping[str, Handler]) -> None:
        """One agent running `handlers` (by event type) over the topics that carry those events, each of
        which topics.yaml must say this context consumes."""
        consumed = catalog().topics_consumed_by(self.context)
        stray = set(handlers) - {e for t in consumed for e in t.events}
        if stray:
            raise SystemExit(f"{self.context} handles {sorted(stray)}, which no topic it consumes carries")
        topics = [t for t in consumed if set(t.events) & set(handlers)]
        self._sources.update(t.name for t in topics)
        source = self.app.topic(*[t.name for t in topics], key_type=str, internal=False)
        context = self.context

        @self.app.agent(source, name=f"{context}-{'-'.join(t.alias for t in topics)}")
        async def on_event(stream: faust.StreamT) -> None:
            async for message in stream.events():
                if not self._may_handle.is_set():  # only a debug switch clears it
                    await self._may_handle.wait()
                raw = message.message
                await handle(context, Received(raw.topic, raw.partition, raw.offset, raw.key, raw.value,
                                               raw.timestamp), handlers, self.emit, self.progress)

    async def _sample_lag(self) -> None:
        consumer = self.app.consumer
        await self.progress.sample([tp for tp in consumer.assignment() if tp.topic in self._sources],
                                   consumer.highwater, consumer.position)

    def fold_into(self, table: faust.Table, fold: Callable[[Event | None, Event], Event | None]) -> None:
        """Keep `table` (keyed by orderId) as the fold of every event this context consumes."""

        async def apply(event: Event) -> None:
            key = str(event["orderId"])
            before = table.get(key)
            record(table, key, fold(before, event) or before)

        self.consume({event: apply for topic in catalog().topics_consumed_by(self.context) for event in topic.events})

    def _install_metrics(self) -> None:
        """bread's own metrics at /metrics. Faust's Prometheus sensors are left out on purpose: they cost a third
        of a worker's capacity (they count every event, send and table change with labels) and told nothing
        bread's own metrics (events, lag, delay, dead letters, the saga) do not (docs/performance.md)."""
        @self.app.page("/metrics")
        async def metrics(view: faust.web.View, _request: faust.web.Request) -> web.Response:
            return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _batch_fetches(self) -> None:
        """Make the consumer's fetches wait for KAFKA_FETCH_MIN_BYTES or KAFKA_FETCH_WAIT_MS, whichever comes
        first. Faust asks for a fetch that returns as soon as one byte is there: under load each context then
        sends the broker hundreds of fetches a second of a message or two each, and the broker's CPU is what
        bounds bread first. Faust has no setting for it, so the consumer it creates is adjusted before it starts."""
        thread = self.app.consumer._thread
        create = thread._create_worker_consumer
        settings = self.settings

        def batched(transport: Any) -> AIOKafkaConsumer:
            consumer = create(transport)
            consumer._fetch_min_bytes = settings.kafka_fetch_min_bytes
            consumer._fetch_max_wait_ms = settings.kafka_fetch_wait_ms
            return consumer

        thread._create_worker_consumer = batched

    def _install_pipeline(self) -> None:
        """GET /pipeline: how far behind this context runs, for the admission rule at the order edge and the
        gateway (internal: the gateway routes no such path)."""
        @self.app.page("/pipeline")
        async def pipeline(view: faust.web.View, _request: faust.web.Request) -> faust.web.Response:
            return view.json({"context": self.context, "delayS": round(self.progress.delay(), 3)})

    def _install_health(self) -> None:
        app = self.app

        @app.page("/health")
        async def health(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            problems = []
            if app.consumer is None or not app.consumer.assignment():
                problems.append("no partitions assigned")
            if app.rebalancing:
                problems.append("rebalancing")
            if not app.tables.recovery.completed.is_set():
                problems.append("table recovery in progress")
            if not self._routing_known:
                problems.append("routing metadata not fetched yet")
            if app.should_stop:
                problems.append("shutting down")
            if problems:
                return view.json({"status": "starting", "problems": problems}, status=503)
            return view.json({"status": "ready"})

        @app.page("/live")
        async def live(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
            # A stuck event loop cannot answer this at all: the probe's timeout catches that case.
            problems = self.progress.stalled(self.settings.liveness_stall_s)
            if problems:
                return view.json({"status": "stalled", "problems": problems}, status=503)
            return view.json({"status": "alive"})

        if self.settings.bread_debug:
            self._install_debug_switches()

    def _install_debug_switches(self) -> None:
        def block_loop(seconds: float) -> dict:
            debugging.block_event_loop(seconds)
            return {"blocked": seconds}

        def stall_consumer(seconds: float) -> dict:
            log.warning("debug: the agents handle nothing for %.1fs", seconds)
            self._may_handle.clear()
            asyncio.get_running_loop().call_later(seconds, self._may_handle.set)
            return {"stalled": seconds}

        for path, switch in (("/debug/block-loop", block_loop), ("/debug/stall-consumer", stall_consumer)):
            self.app.page(path, name=path)(self._switch_view(switch))

    @staticmethod
    def _switch_view(switch: Callable[[float], dict]) -> type[faust.web.View]:
        class Switch(faust.web.View):
            async def post(self, request: faust.web.Request) -> faust.web.Response:
                try:
                    seconds = debugging.seconds_of(request.query.get("seconds"))
                except ValueError as exc:
                    return self.json({"error": str(exc)}, status=400)
                return self.json(switch(seconds))
        return Switch

    def run(self) -> None:
        """Run the worker in the foreground until SIGINT/SIGTERM."""
        from faust.worker import Worker as FaustWorker

        worker = FaustWorker(self.app, loglevel=self.settings.bread_log_level, quiet=True)
        # Faust's terminal spinner hangs a DEBUG handler on the root logger, so every debug call in Faust and
        # aiokafka would build a log record: a tenth of a busy worker's time, for a spinner nobody sees.
        worker.spinner = None
        correlation.install_log_tagging()
        worker.execute_from_commandline()
