"""bread's settings: environment variables only (12-factor), each defined once here — its name, its default
(which runs locally), what it means, and what Kubernetes sets instead — read and checked once at start.

`Settings.from_env()` reads them all and refuses a bad value before anything serves, naming the variable and
what it takes. The README's configuration table (`bread settings`) and the Kubernetes ConfigMap
(`bread k8s-config`) are generated from the table below; tests keep both equal to it.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


class BadSetting(ValueError):
    """A setting's value is not one it takes; the message says what it takes."""


def numeric(kind: Callable[[str], float], what: str, accept: Callable[[float], bool]) -> Callable[[str], Any]:
    def parse(raw: str) -> float:
        try:
            value = kind(raw)
        except ValueError:
            raise BadSetting(f"must be {what}") from None
        if not accept(value):
            raise BadSetting(f"must be {what}")
        return value
    return parse


positive_whole = numeric(int, "a whole number from 1", lambda v: v >= 1)
not_negative = numeric(float, "a number from 0", lambda v: v >= 0)
positive = numeric(float, "a number above 0", lambda v: v > 0)
share = numeric(float, "a share above 0 and at most 1, like 0.5", lambda v: 0 < v <= 1)


def maybe(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Empty means unset (None): a default that depends on other settings, or none at all."""
    return lambda raw: parse(raw) if raw else None


LOG_FORMATS = ("text", "json")
TRACE_EXPORTERS = ("none", "otlp", "console")
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def switch(raw: str) -> bool:
    word = raw.strip().lower()
    if word not in TRUE | FALSE:
        other_words = f"{', '.join(sorted(TRUE - {'on'}))} / {', '.join(sorted(FALSE - {'off'}))}"
        raise BadSetting(f"must be on or off (or {other_words})")
    return word in TRUE


def one_of(*choices: str) -> Callable[[str], str]:
    def choose(raw: str) -> str:
        if raw not in choices:
            raise BadSetting(f"must be one of {', '.join(choices)}")
        return raw
    return choose


def at_least_once(raw: str) -> str:
    if raw != "at_least_once":
        raise BadSetting("must be at_least_once: Kafka transactions (exactly_once) are no longer offered; every "
                         "consumer is idempotent instead (docs/delivery-guarantees.md)")
    return raw


def text(raw: str) -> str:
    return raw


def url(raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise BadSetting("must be an http:// or https:// address")
    return raw.rstrip("/")


def urls(raw: str) -> tuple[str, ...]:
    """One address, or (the gateway) several instances of a service, comma-separated."""
    return tuple(url(part.strip()) for part in raw.split(",") if part.strip())


def networks(raw: str) -> Networks:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise BadSetting(f"must be addresses or networks like 10.0.0.0/8, comma-separated ({exc})") from None


def delay_range(raw: str) -> tuple[float, float]:
    """PAY_DELAY_MS as (low, high) seconds: "" for none, "500" for a fixed delay, "400-620" for a range."""
    raw = raw.strip()
    if not raw:
        return 0.0, 0.0
    low, _, high = raw.partition("-")
    try:
        bounds = float(low), float(high or low)
    except ValueError:
        raise BadSetting("must be milliseconds like 500, or a range like 400-620") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise BadSetting("must be a range low-high of milliseconds with 0 <= low <= high")
    return bounds[0] / 1000, bounds[1] / 1000


def priced_items(text: str) -> dict[str, int]:
    """MENU: 'cake=25000,bread=3000' -> {'cake': 25000, 'bread': 3000}."""
    items = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, sep, price = entry.partition("=")
        if not sep or not name.strip() or not price.strip().isdigit():
            raise ValueError(f"menu entry {entry!r} is not item=price (a whole price, like cake=25000)")
        items[name.strip()] = int(price)
    if not items:
        raise ValueError("the menu is empty")
    return items


NOT_IN_CLUSTER = "not set on Kubernetes"


def setting(env: str, default: str, meaning: str, parse: Callable[[str], Any] = text, *,
            cluster: str | None = None, group: str | None = None) -> Any:
    """One setting. `default` is the text the variable would hold, `cluster` what the Kubernetes ConfigMap sets
    instead (None: the default suits it too; NOT_IN_CLUSTER: it is no ConfigMap's business, `meaning` says
    why). Settings with the same `group` share one line of the README's table."""
    return field(default_factory=lambda: parse(default), metadata={
        "env": env, "default": default, "meaning": meaning, "parse": parse, "cluster": cluster, "group": group})


@dataclass(frozen=True)
class Settings:
    # Kafka
    kafka_bootstrap_servers: str | None = setting(
        "KAFKA_BOOTSTRAP_SERVERS", "", "an existing Kafka; when set, `bread up` starts no local broker "
        "(default: the local broker, `127.0.0.1:$KAFKA_PORT`)", maybe(text), cluster="bread-kafka-bootstrap:9092")
    kafka_port: int = setting("KAFKA_PORT", "9092", "the local broker's port", positive_whole,
                              cluster=NOT_IN_CLUSTER, group="local broker")
    kafka_controller_port: int = setting("KAFKA_CONTROLLER_PORT", "9093", "its controller's port", positive_whole,
                                         cluster=NOT_IN_CLUSTER, group="local broker")
    kafka_heap: str = setting("KAFKA_HEAP", "512m", "its JVM heap", cluster=NOT_IN_CLUSTER, group="local broker")
    kafka_lib_dir: str | None = setting("KAFKA_LIB_DIR", "", "where its jars are (default: kafka/target/lib, "
                                        "fetched by `make setup`)", maybe(text), cluster=NOT_IN_CLUSTER,
                                        group="local broker")
    kafka_maven_repository: str = setting("KAFKA_MAVEN_REPOSITORY", "https://repo.maven.apache.org/maven2",
                                          "where its jars are downloaded from (Maven Central, or a mirror of it), "
                                          "each checked against `kafka/jars.lock`", url, cluster=NOT_IN_CLUSTER,
                                          group="local broker")
    kafka_replication_factor: int = setting("KAFKA_REPLICATION_FACTOR", "1", "replicas of the topics bread creates "
                                            "(the prod overlay: 3)", positive_whole)
    kafka_session_timeout_s: float = setting("KAFKA_SESSION_TIMEOUT_S", "10", "how long a dead worker keeps its "
                                             "partitions before the group rebalances", positive)
    producer_linger_s: float = setting("PRODUCER_LINGER_S", "0.01", "how long the Faust workers' producers wait "
                                       "to fill a batch", not_negative, group="batching")
    kafka_fetch_wait_ms: int = setting("KAFKA_FETCH_WAIT_MS", "100", "a consumer asks the broker for more at "
                                       "most this often: fewer, fuller requests for the broker, at most this much "
                                       "more latency per hop (docs/performance.md)", positive_whole,
                                       group="batching")
    kafka_fetch_min_bytes: int = setting("KAFKA_FETCH_MIN_BYTES", "1", "a fetch returns once this much has come",
                                         positive_whole, group="fetch")
    kafka_fetch_poll_ms: int = setting("KAFKA_FETCH_POLL_MS", "1000", "or after this long: how long a quiet "
                                       "consumer's fetch waits at the broker, what an idle bread costs it",
                                       positive_whole, group="fetch")
    processing_guarantee: str = setting("PROCESSING_GUARANTEE", "at_least_once", "the Faust workers' guarantee: "
                                        "at-least-once delivery, each consumer idempotent (exactly_once is no longer "
                                        "offered: docs/delivery-guarantees.md)", at_least_once)
    consumer_lag_sample_s: float = setting("CONSUMER_LAG_SAMPLE_S", "5", "how often consumers measure their lag",
                                           positive)
    # The live feeds of Mypage and the bakery tickets (GET /mypages/stream, /bakeries/stream)
    stream_memory: int = setting("STREAM_MEMORY", "10000", "the last changes a feed keeps, so a page that "
                                 "reconnects gets what it missed (one further behind loads its rows again)",
                                 positive_whole, group="streams")
    stream_heartbeat_s: float = setting("STREAM_HEARTBEAT_S", "15", "a quiet stream sends its position this "
                                        "often (keeps proxies from closing it)", positive, group="streams")
    stream_linger_s: float = setting("STREAM_LINGER_S", "60", "a feed reads on this long after its last "
                                     "watcher left", not_negative, group="streams")
    # Every process
    bread_bind: str = setting("BREAD_BIND", "127.0.0.1", "the address to listen on", cluster="0.0.0.0",
                              group="addresses")
    bread_advertised_host: str = setting("BREAD_ADVERTISED_HOST", "127.0.0.1", "the address other workers use to "
                                         "reach this one (on Kubernetes the pod's IP, from the downward API)",
                                         cluster=NOT_IN_CLUSTER, group="addresses")
    bread_data_dir: Path | None = setting("BREAD_DATA_DIR", "", "RocksDB tables, the pay ledger, the local "
                                          "broker's data, logs (default: `var/` in the project)", maybe(Path),
                                          cluster="/data")
    bread_topics_file: Path | None = setting("BREAD_TOPICS_FILE", "", "the topics and events (default: the "
                                             "project's `topics.yaml`; the image sets it)", maybe(Path),
                                             cluster=NOT_IN_CLUSTER)
    bread_store: str = setting("BREAD_STORE", "rocksdb://", "the Faust workers' table store (`memory://` for a "
                               "throwaway run)", one_of("rocksdb://", "memory://"))
    bread_log_level: str = setting("BREAD_LOG_LEVEL", "info", "how much the services log",
                                   one_of("debug", "info", "warning", "error"))
    bread_log_format: str = setting("BREAD_LOG_FORMAT", "text", "how the services write their log: `text` lines "
                                    "for a terminal, or `json`, one JSON object per line for a log collector",
                                    one_of(*LOG_FORMATS), cluster="json")
    # Traces (OpenTelemetry's own variables; the SDK's others, like OTEL_BSP_SCHEDULE_DELAY, apply too)
    otel_traces_exporter: str = setting("OTEL_TRACES_EXPORTER", "none", "where each service sends its spans: "
                                        "`otlp` (to OTEL_EXPORTER_OTLP_ENDPOINT), `console` (its output), `none` "
                                        "(no tracing, at no cost)", one_of(*TRACE_EXPORTERS), group="traces")
    otel_exporter_otlp_endpoint: str = setting("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318",
                                               "the OTLP/HTTP collector (spans go to its `/v1/traces`)", url,
                                               group="traces")
    otel_service_name: str | None = setting("OTEL_SERVICE_NAME", "", "the service's name in its spans (default: "
                                            "`bread-<service>`, as `bread-order-worker`)", maybe(text),
                                            cluster=NOT_IN_CLUSTER)
    bread_drain_s: float = setting("BREAD_DRAIN_S", "1", "on SIGTERM, how long a service stays up not-ready "
                                   "before it stops listening", not_negative, cluster="5", group="probes")
    liveness_stall_s: float = setting("LIVENESS_STALL_S", "60", "how long a consumer with lag may not move "
                                      "before `/live` fails", positive, group="probes")
    bread_debug: bool = setting("BREAD_DEBUG", "off", "debug switches that make a service unhealthy "
                                "(`/debug/block-loop`, `/debug/stall-consumer`); never on in production", switch,
                                cluster=NOT_IN_CLUSTER)
    # Where each service listens, and where the others reach it
    order_port: int = setting("ORDER_PORT", "8081", "the order edge's port", positive_whole, group="ports")
    bakery_port: int = setting("BAKERY_PORT", "8082", "the bakery's", positive_whole, group="ports")
    pay_port: int = setting("PAY_PORT", "8083", "pay's", positive_whole, group="ports")
    mypage_port: int = setting("MYPAGE_PORT", "8084", "Mypage's", positive_whole, group="ports")
    gateway_port: int = setting("GATEWAY_PORT", "8088", "the gateway's", positive_whole, group="ports")
    order_worker_port: int = setting("ORDER_WORKER_PORT", "6081", "the order worker's", positive_whole,
                                     group="ports")
    order_url: tuple[str, ...] = setting("ORDER_URL", "", "where the others reach the order edge", urls,
                                         cluster="http://order:8081", group="urls")
    bakery_url: tuple[str, ...] = setting("BAKERY_URL", "", "the bakery", urls, cluster="http://bakery:8082",
                                          group="urls")
    pay_url: tuple[str, ...] = setting("PAY_URL", "", "pay", urls, cluster="http://pay:8083", group="urls")
    mypage_url: tuple[str, ...] = setting("MYPAGE_URL", "", "Mypage", urls, cluster="http://mypage:8084",
                                          group="urls")
    order_worker_url: tuple[str, ...] = setting("ORDER_WORKER_URL", "", "the order worker (default for each: "
                                                "`http://127.0.0.1:<its port>`; the gateway takes several instances, "
                                                "comma-separated)", urls, cluster="http://order-worker:6081",
                                                group="urls")
    # order
    menu: dict[str, int] = setting("MENU", "cake=25000,bread=3000,baguette=4500,croissant=3500",
                                   "items and prices", priced_items)
    pay_timeout_s: float = setting("PAY_TIMEOUT_S", "1.5", "the order edge's timeout on its call to pay", positive)
    pay_fallback: str = setting("PAY_FALLBACK", "reject", "when pay cannot be called: `reject` (503, order "
                                "Rejected) or `defer` (202, order PaymentPending, paid later from Kafka)",
                                one_of("reject", "defer"))
    order_admission: bool = setting("ORDER_ADMISSION", "on", "the order edge and the gateway take new orders at the "
                                    "pace the contexts see them through, each waiting its turn at the door: "
                                    "bread's overload protection", switch, group="admission")
    order_shed_from_s: float = setting("ORDER_SHED_FROM_S", "1", "they take new orders slower while the contexts "
                                       "run more than this many seconds behind (and faster, gently, while not)",
                                       positive, group="admission")
    order_shed_all_s: float = setting("ORDER_SHED_ALL_S", "3", "and none from this far behind (503, Retry-After)",
                                      positive, group="admission")
    order_admission_wait_s: float = setting("ORDER_ADMISSION_WAIT_S", "1", "a new order waits its turn at most "
                                            "this long; one whose turn would come later is refused at once (503, "
                                            "Retry-After)", not_negative, group="admission")
    order_admission_poll_s: float = setting("ORDER_ADMISSION_POLL_S", "0.25", "how often they ask the contexts "
                                            "how far behind they are", positive, group="admission")
    pay_breaker_window: int = setting("PAY_BREAKER_WINDOW", "100", "the breaker counts the last N calls",
                                      positive_whole, group="breaker counts")
    pay_breaker_min_calls: int = setting("PAY_BREAKER_MIN_CALLS", "50", "and decides on no fewer than this",
                                         positive_whole, group="breaker counts")
    pay_breaker_failure_rate: float = setting("PAY_BREAKER_FAILURE_RATE", "0.5", "it opens at this share of "
                                              "failed calls", share, group="breaker rates")
    pay_breaker_slow_call_rate: float = setting("PAY_BREAKER_SLOW_CALL_RATE", "1.0", "or of slow calls", share,
                                                group="breaker rates")
    pay_breaker_slow_call_s: float = setting("PAY_BREAKER_SLOW_CALL_S", "1.0", "slower than this many seconds",
                                             positive, group="breaker rates")
    pay_breaker_open_s: float = setting("PAY_BREAKER_OPEN_S", "5", "how long it stays open", positive,
                                        group="breaker open")
    pay_breaker_half_open_calls: int = setting("PAY_BREAKER_HALF_OPEN_CALLS", "5", "how many trial calls it "
                                               "lets through half-open", positive_whole, group="breaker open")
    pay_bulkhead_initial: int = setting("PAY_BULKHEAD_INITIAL", "100", "the bulkhead in front of pay lets this "
                                        "many calls be in flight at first", positive_whole, group="bulkhead limit")
    pay_bulkhead_min: int = setting("PAY_BULKHEAD_MIN", "2", "then as many as take their usual time without this "
                                    "process stalling, at least this",
                                    positive_whole, group="bulkhead limit")
    pay_bulkhead_max: int = setting("PAY_BULKHEAD_MAX", "200", "and at most this", positive_whole,
                                    group="bulkhead limit")
    pay_bulkhead_queue: int = setting("PAY_BULKHEAD_QUEUE", "1000", "at most this many orders wait their turn",
                                      positive_whole, group="bulkhead queue")
    pay_bulkhead_wait_s: float = setting("PAY_BULKHEAD_WAIT_S", "1", "each for at most this long (then 503, or "
                                         "deferred with PAY_FALLBACK=defer; not a failure of pay's)", positive,
                                         group="bulkhead queue")
    order_requests_at_once: int = setting("ORDER_REQUESTS_AT_ONCE", "200", "the order worker places at most this "
                                          "many orders requested over Kafka at once, and no more than twice the "
                                          "calls its bulkhead in front of pay lets through: past that the requests "
                                          "wait on their log", positive_whole)
    saga_deadline_s: float = setting("SAGA_DEADLINE_S", "300", "an order not ended this long after it began is "
                                     "cancelled", positive, group="saga")
    saga_sweep_s: float = setting("SAGA_SWEEP_S", "1", "how often the order worker looks", positive, group="saga")
    saga_repair_s: float = setting("SAGA_REPAIR_S", "60", "an order not ended this long after its cancel has "
                                   "stalled: pay and the bakery are asked to announce their decisions again "
                                   "(then after twice as long, …)", positive)
    # pay
    pay_limit: int = setting("PAY_LIMIT", "1000000", "pay declines a charge above this (the order ends "
                             "`PaymentFailed`)", positive_whole)
    pay_delay_ms: tuple[float, float] = setting("PAY_DELAY_MS", "", "pay takes this long per charge or refund "
                                                "(`500`, or `400-620`), to replay the seed's slow pay", delay_range)
    pay_db: Path | None = setting("PAY_DB", "", "the pay ledger (default: `$BREAD_DATA_DIR/pay/ledger.sqlite3`)",
                                  maybe(Path), cluster=NOT_IN_CLUSTER)
    pay_ledger_url: str = setting("PAY_LEDGER_URL", "", "makes this pay a front of the pay at that address, "
                                  "which keeps the ledger (Kubernetes: the fronts scale, the ledger does not)", url,
                                  cluster="http://pay-ledger:8083")
    # bakery
    bakery_auto_confirm: bool = setting("BAKERY_AUTO_CONFIRM", "false", "confirm every ticket at once (demos, "
                                        "load; the dev overlay)", switch)
    # gateway
    gateway_auth: bool = setting("GATEWAY_AUTH", "off", "bearer-token authentication and roles at the gateway "
                                 "(the prod overlay: on)", switch, group="auth")
    gateway_tokens_file: Path | None = setting("GATEWAY_TOKENS_FILE", "", "where the tokens' digests are "
                                               "(default: `$BREAD_DATA_DIR/gateway/tokens`)", maybe(Path),
                                               cluster="/etc/bread/tokens/tokens", group="auth")
    gateway_timeout_s: float | None = setting("GATEWAY_TIMEOUT_S", "", "the gateway's timeout on every route "
                                              "(default: each route's own)", maybe(positive), group="timeouts")
    gateway_timeout_orders_s: float = setting("GATEWAY_TIMEOUT_ORDERS_S", "10", "on /orders", positive,
                                              group="timeouts")
    gateway_timeout_payments_s: float = setting("GATEWAY_TIMEOUT_PAYMENTS_S", "5", "/payments", positive,
                                                group="timeouts")
    gateway_timeout_bakeries_s: float = setting("GATEWAY_TIMEOUT_BAKERIES_S", "5", "/bakeries", positive,
                                                group="timeouts")
    gateway_timeout_mypages_s: float = setting("GATEWAY_TIMEOUT_MYPAGES_S", "10", "/mypages", positive,
                                               group="timeouts")
    gateway_timeout_order_requests_s: float = setting("GATEWAY_TIMEOUT_ORDER_REQUESTS_S", "5", "/order-requests",
                                                      positive, group="timeouts")
    gateway_timeout_menu_s: float = setting("GATEWAY_TIMEOUT_MENU_S", "5", "/menu", positive, group="timeouts")
    gateway_timeout_sagas_s: float = setting("GATEWAY_TIMEOUT_SAGAS_S", "10", "/sagas", positive, group="timeouts")
    gateway_timeout_dead_letters_s: float = setting("GATEWAY_TIMEOUT_DEAD_LETTERS_S", "10", "/dead-letters", positive,
                                                    group="timeouts")
    gateway_health_interval_s: float = setting("GATEWAY_HEALTH_INTERVAL_S", "0.5", "with several instances in a "
                                               "`*_URL`, how often the gateway asks each whether it is ready",
                                               not_negative)
    gateway_max_body_bytes: int = setting("GATEWAY_MAX_BODY_BYTES", "65536", "larger request bodies answer 413",
                                          positive_whole)
    gateway_rate_limit_rps: float = setting("GATEWAY_RATE_LIMIT_RPS", "100", "per-client rate limit (429); `0` "
                                            "turns it off", not_negative, group="rate")
    gateway_rate_limit_burst: float | None = setting("GATEWAY_RATE_LIMIT_BURST", "", "the bursts it lets through "
                                                     "(default: twice the rate)", maybe(positive), group="rate")
    gateway_trusted_proxies: Networks = setting(
        "GATEWAY_TRUSTED_PROXIES", "", "addresses or networks (`10.0.0.0/8,192.0.2.7`) of proxies in front of the "
        "gateway: behind one, the client (for the rate limit and the access log) is the nearest untrusted "
        "address in `X-Forwarded-For`; from anyone else that header is not believed. On Kubernetes the pod "
        "network, where the ingress controller runs", networks, cluster="10.0.0.0/8")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every setting from the environment, checked: one bad value or more raise SettingsRefused naming each
        variable and what it takes."""
        environ = os.environ if environ is None else environ
        values, problems = {}, []
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:  # BadSetting, or a rule's own parser (the menu's)
                problems.append(f"{f.metadata['env']}={raw!r}: {exc}")
        if problems:
            raise SettingsRefused(problems)
        settings = cls(**values)
        if settings.pay_breaker_min_calls > settings.pay_breaker_window:
            problems.append(f"PAY_BREAKER_MIN_CALLS={str(settings.pay_breaker_min_calls)!r}: must be at most "
                            f"PAY_BREAKER_WINDOW ({settings.pay_breaker_window})")
        if not settings.pay_bulkhead_min <= settings.pay_bulkhead_initial <= settings.pay_bulkhead_max:
            problems.append(f"PAY_BULKHEAD_INITIAL={str(settings.pay_bulkhead_initial)!r}: must be from "
                            f"PAY_BULKHEAD_MIN ({settings.pay_bulkhead_min}) to PAY_BULKHEAD_MAX "
                            f"({settings.pay_bulkhead_max})")
        if settings.order_shed_from_s >= settings.order_shed_all_s:
            problems.append(f"ORDER_SHED_FROM_S={str(settings.order_shed_from_s)!r}: must be less than "
                            f"ORDER_SHED_ALL_S ({settings.order_shed_all_s})")
        if problems:
            raise SettingsRefused(problems)
        return settings

    # What follows from the settings above.
    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def kafka_is_local(self) -> bool:
        """True unless the user pointed bread at a Kafka of their own."""
        return self.kafka_bootstrap_servers is None

    def port(self, service: str) -> int:
        return getattr(self, f"{service.replace('-', '_')}_port")

    def service_urls(self, service: str) -> tuple[str, ...]:
        """Where another service reaches `service` (the gateway takes several instances)."""
        return getattr(self, f"{service.replace('-', '_')}_url") or (f"http://127.0.0.1:{self.port(service)}",)

    def service_url(self, service: str) -> str:
        """The one address of `service` (on Kubernetes, its Service, which balances over the ready pods)."""
        return self.service_urls(service)[0]

    @property
    def data_dir(self) -> Path:
        return self.bread_data_dir or PROJECT_ROOT / "var"

    @property
    def topics_file(self) -> Path:
        return self.bread_topics_file or PROJECT_ROOT / "topics.yaml"

    @property
    def pay_ledger_path(self) -> Path:
        return self.pay_db or self.data_dir / "pay" / "ledger.sqlite3"

    @property
    def tokens_path(self) -> Path:
        return self.gateway_tokens_file or self.data_dir / "gateway" / "tokens"

    @property
    def rate_limit_burst(self) -> float:
        return self.gateway_rate_limit_burst or 2 * self.gateway_rate_limit_rps

    def gateway_timeout(self, route: str) -> float:
        """The gateway's timeout on a route (`/orders`): GATEWAY_TIMEOUT_S when set, else the route's own."""
        own = getattr(self, f"gateway_timeout_{route.strip('/').replace('-', '_')}_s")
        return self.gateway_timeout_s if self.gateway_timeout_s is not None else own

    def kafka_producer(self) -> dict[str, object]:
        """Every producer of bread: acknowledged by all in-sync replicas, idempotent, lightly batched."""
        return {"bootstrap_servers": self.kafka_bootstrap, "acks": "all", "enable_idempotence": True, "linger_ms": 2}


class SettingsRefused(SystemExit):
    """Settings that stop a service before it serves: every bad variable, and what it takes."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("bread cannot start; fix these settings:\n  " + "\n  ".join(problems))
        self.problems = problems


def described() -> list[dict[str, Any]]:
    """Every setting's name, default text, meaning, cluster value and group, in the table's order."""
    return [{"name": f.name, **{k: v for k, v in f.metadata.items() if k != "parse"}} for f in fields(Settings)]


_in_use: list[Settings] = []


def use(settings: Settings) -> Settings:
    """The settings this process runs with, read and checked at its start (`bread run`, `bread up`)."""
    _in_use[:] = [settings]
    return settings


def current() -> Settings:
    """The settings this process runs with; read from the environment on first use where no start set them
    (a test, a script). Only the topic catalogue looks here — the vocabulary every module shares, loaded
    once per process; everything else is handed its settings by the composition root that builds it."""
    return _in_use[0] if _in_use else use(Settings.from_env())


def variable(name: str) -> str:
    """The environment variable of a Settings field."""
    return next(f.metadata["env"] for f in fields(Settings) if f.name == name)


def port_variable(service: str) -> str:
    return variable(f"{service.replace('-', '_')}_port")


def url_variable(service: str) -> str:
    return variable(f"{service.replace('-', '_')}_url")
