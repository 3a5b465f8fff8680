"""The `bread` command: run the whole system, one service, or the local Kafka broker.

    bread up             local Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, every service
    bread kafka          only the local broker, in the foreground
    bread kafka-lock     write kafka/jars.lock (the broker's jars and their digests) from kafka/pom.xml with Maven
    bread run SERVICE    one service alone: order, order-worker, pay, bakery, mypage, gateway
    bread topics         create the topics of topics.yaml on the configured Kafka
    bread dlq [--replay] list the dead letters; replay them to their topics after a fix
    bread token NAME [--role ROLE]  make a bearer token for the gateway (customer, baker, service, admin)
    bread strimzi-topics print Strimzi KafkaTopic resources for topics.yaml (k8s/base/kafka/topics.yaml)
    bread k8s-workloads  print every service's Kubernetes workload (k8s/base/workloads.yaml)
    bread roles          print who may do what at the gateway (the README's roles table)
    bread settings       print every setting with its default (the README's configuration table)
    bread k8s-config     print the ConfigMap: the settings Kubernetes sets otherwise (k8s/base/configmap.yaml)
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import import_module
from pathlib import Path
from typing import Callable

from agents.principals import CUSTOMER, ROLES
from agents.settings import PROJECT_ROOT, Settings, use
from api.http import STOP_GRACE_S
from ops.supervisor import Supervisor, answers_live

# Each service and what runs it: an aiohttp app factory, or a module that sets up a Faust worker.
AIOHTTP_SERVICES = {"order": "api.order", "pay": "api.pay", "gateway": "api.gateway"}
FAUST_SERVICES = {"order-worker": "api.order_worker", "bakery": "api.bakery", "mypage": "api.mypage"}
SERVICES = [*AIOHTTP_SERVICES, *FAUST_SERVICES]
# Start order: what others call first, the gateway last.
START_ORDER = ["pay", "order-worker", "bakery", "mypage", "order", "gateway"]


def run_service(service: str, settings: Settings) -> None:
    from agents.runtime import logs, tracing

    tracing.start(settings.otel_traces_exporter, settings.otel_exporter_otlp_endpoint,
                  settings.otel_service_name or f"bread-{service}")
    try:
        if service in AIOHTTP_SERVICES:
            from api.http import serve

            logs.setup(settings.bread_log_format, settings.bread_log_level, service)
            app = import_module(AIOHTTP_SERVICES[service]).init_app(settings)
            asyncio.run(serve(app, settings.bread_bind, settings.port(service), drain_s=settings.bread_drain_s,
                              grace_s=STOP_GRACE_S))
        else:
            import_module(FAUST_SERVICES[service]).build(settings).run(
                logs.logging_config(settings.bread_log_format, settings.bread_log_level, service))
    finally:
        tracing.stop()  # the spans still held go out


def run_kafka(settings: Settings) -> int:
    from agents.runtime.topics import create_topics
    from ops.localkafka import KafkaSetupError, LocalKafka, wait_until_ready

    kafka = LocalKafka.from_settings(settings)
    try:
        process = kafka.start()
        asyncio.run(wait_until_ready(kafka.bootstrap, process=process))
        created = asyncio.run(create_topics(kafka.bootstrap, settings.kafka_replication_factor))
    except KafkaSetupError as exc:
        print(f"bread kafka: {exc}", file=sys.stderr)
        kafka.stop()
        return 1
    print(f"Kafka ready on {kafka.bootstrap} (data in {kafka.data}, on {kafka.java}); topics created: "
          f"{created or 'none new'}", flush=True)
    _stop_on_signals(lambda: kafka.stop())
    return process.wait()


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum, _frame):
        stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def wait_healthy(services: list[str], processes: dict[str, subprocess.Popen], stop: threading.Event,
                 settings: Settings, timeout: float = 90) -> list[str]:
    """Wait until every service's /health answers 200; return those that did not within `timeout`."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending and time.monotonic() < deadline and not stop.is_set():
        if any(processes[service].poll() is not None for service in pending):
            break
        for service in list(pending):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{settings.port(service)}/health", timeout=2) as response:
                    if response.status == 200:
                        pending.remove(service)
            except (urllib.error.URLError, OSError):
                pass
        stop.wait(0.25)  # poll interval of a condition wait, bounded by the deadline
    return pending


def launcher(service: str, log_dir: Path) -> Callable[[], subprocess.Popen]:
    def launch() -> subprocess.Popen:
        with open(log_dir / f"{service}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "ops.cli", "run", service], stdout=log,
                                    stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    return launch


def run_up(settings: Settings) -> int:
    from agents.runtime.topics import create_topics
    from ops.localkafka import KafkaSetupError, LocalKafka, port_is_free, wait_until_ready

    log_dir = settings.data_dir / "log"
    busy = [f"{s} ({settings.port(s)})" for s in START_ORDER if not port_is_free(settings.port(s))]
    if busy:
        print(f"bread up: ports in use, is bread already running? {', '.join(busy)}", file=sys.stderr)
        return 1
    stop = threading.Event()
    _stop_on_signals(stop.set)
    supervisor = Supervisor(say=lambda line: print(f"bread up: {line}", file=sys.stderr, flush=True))
    try:
        if settings.kafka_is_local and port_is_free(settings.kafka_port):
            kafka = LocalKafka.from_settings(settings)
            log_dir.mkdir(parents=True, exist_ok=True)
            print(f"starting the local Kafka broker on {kafka.bootstrap} ({kafka.java}) ...", flush=True)
            supervisor.start("kafka", lambda: kafka.start(log_file=log_dir / "kafka.log"))
        bootstrap = settings.kafka_bootstrap
        broker = supervisor.processes().get("kafka")
        asyncio.run(wait_until_ready(bootstrap, process=broker))
        created = asyncio.run(create_topics(bootstrap, settings.kafka_replication_factor))
    except KafkaSetupError as exc:
        print(f"bread up: {exc}", file=sys.stderr)
        supervisor.stop_all(["kafka"], grace=20)
        return 1
    print(f"Kafka ready on {bootstrap}; topics created: {', '.join(created) or 'none new'}", flush=True)

    log_dir.mkdir(parents=True, exist_ok=True)
    for service in START_ORDER:
        supervisor.start(service, launcher(service, log_dir),
                         alive=answers_live(f"http://127.0.0.1:{settings.port(service)}/live"))
    failed = wait_healthy(START_ORDER, supervisor.processes(), stop, settings)
    for service in START_ORDER:
        state = "NOT READY" if service in failed else "ready"
        print(f"  {service:<13} http://127.0.0.1:{settings.port(service):<6} {state}", flush=True)
    print(f"logs in {log_dir}; a process that dies is started again; Ctrl-C stops everything", flush=True)
    try:
        while not stop.wait(0.5):  # how often the supervisor looks
            supervisor.tend()
    finally:
        print("stopping ...", flush=True)
        supervisor.stop_all(list(reversed(START_ORDER)), grace=STOP_GRACE_S)
        supervisor.stop_all(["kafka"], grace=20)
        print("stopped", flush=True)
    return 1 if failed else 0


def write_kafka_lock() -> int:
    """Resolve kafka/pom.xml with Maven and write kafka/jars.lock: every jar and its digest."""
    from ops.kafka_jars import LOCK, JarRefused, lock_text, resolved_by_maven

    mvn = shutil.which("mvn")
    if mvn is None:
        print("bread kafka-lock: resolving kafka/pom.xml needs Maven (mvn) on PATH", file=sys.stderr)
        return 1
    try:
        jars = resolved_by_maven(mvn)
    except JarRefused as exc:
        print(f"bread kafka-lock: {exc}", file=sys.stderr)
        return 1
    LOCK.write_text(lock_text(jars))
    print(f"{LOCK.relative_to(PROJECT_ROOT)}: {len(jars)} jars")
    return 0


def make_token(name: str, role: str, path: Path) -> int:
    """Append the token's digest to the gateway's tokens file and print the token (shown this once only)."""
    from api.tokens import new_token, token_line

    token = new_token()
    try:
        line = token_line(name, role, token)
    except ValueError as exc:
        print(f"bread token: {exc}", file=sys.stderr)
        return 2
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as tokens:
        tokens.write(line)
    path.chmod(0o600)
    print(token)
    print(f"(its digest was added to {path} for {name}, a {role})", file=sys.stderr)
    return 0


GENERATORS = {  # what prints a generated file or table: the same whatever the environment says
    "k8s-workloads": ("print the Kubernetes workloads of every service", "ops.k8s", "workloads_manifest"),
    "k8s-config": ("print the Kubernetes ConfigMap: the settings that differ there", "ops.k8s", "config_manifest"),
    "strimzi-topics": ("print a Strimzi KafkaTopic for every topic of topics.yaml", "ops.strimzi", "topics_manifest"),
    "roles": ("print who may do what at the gateway, as a Markdown table", "api.routes", "roles_table"),
    "settings": ("print every setting, its default and meaning, as a Markdown table", "ops.k8s", "settings_table"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bread", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole system locally")
    sub.add_parser("kafka", help="run only the local Kafka broker, in the foreground")
    sub.add_parser("kafka-lock", help="write kafka/jars.lock from kafka/pom.xml with Maven (after the pom changes)")
    topics = sub.add_parser("topics", help="create the topics of topics.yaml")
    topics.add_argument("--markdown", action="store_true", help="print them as a Markdown table instead")
    dlq = sub.add_parser("dlq", help="list the dead letters, or replay them to their topics")
    dlq.add_argument("--replay", action="store_true", help="send the letters not replayed before to their topics")
    for command, (what, _, _) in GENERATORS.items():
        sub.add_parser(command, help=what)
    token = sub.add_parser("token", help="make a bearer token for the gateway (GATEWAY_AUTH=on)")
    token.add_argument("name", help="who the token stands for: a customer id, a baker's or a service's name")
    token.add_argument("--role", choices=ROLES, default=CUSTOMER,
                       help="what the token may do (README: Who may do what); default: customer")
    run = sub.add_parser("run", help="run one service")
    run.add_argument("service", choices=SERVICES)
    args = parser.parse_args(argv)
    if args.command == "kafka-lock":
        return write_kafka_lock()
    if args.command in GENERATORS:
        _, module, function = GENERATORS[args.command]
        print(getattr(import_module(module), function)().rstrip("\n"))
        return 0
    if args.command == "topics" and args.markdown:
        from agents.catalog import catalog, markdown_table

        print(markdown_table(catalog()))
        return 0
    settings = use(Settings.from_env())  # a bad value stops here, before anything starts
    if args.command == "up":
        return run_up(settings)
    if args.command == "kafka":
        return run_kafka(settings)
    if args.command == "dlq":
        from ops import dlq as dead_letters

        lines = asyncio.run(dead_letters.replay(settings) if args.replay else dead_letters.list_letters(settings))
        print("\n".join(lines) if lines else "no dead letters" + (" to replay" if args.replay else ""))
        return 0
    if args.command == "token":
        return make_token(args.name, args.role, settings.tokens_path)
    if args.command == "topics":
        from agents.runtime.topics import create_topics

        created = asyncio.run(create_topics(settings.kafka_bootstrap, settings.kafka_replication_factor))
        print("created:", ", ".join(created) or "none new")
        return 0
    run_service(args.service, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
