"""Settings from environment variables only (12-factor), each with a default that runs locally."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_number(name: str, default: T, kind: Callable[[str], T], what: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {what}, got {raw!r}") from None


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_number(name, default, float, "a number")


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def kafka_bootstrap() -> str:
    return env("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{env_int('KAFKA_PORT', 9092)}")


def kafka_is_local() -> bool:
    """True unless the user pointed bread at a Kafka of their own."""
    return "KAFKA_BOOTSTRAP_SERVERS" not in os.environ


def bind_host() -> str:
    return env("BREAD_BIND", "127.0.0.1")


def advertised_host() -> str:
    """The host other processes use to reach this one (a pod IP or service name on Kubernetes)."""
    return env("BREAD_ADVERTISED_HOST", "127.0.0.1")


def data_dir() -> Path:
    return Path(env("BREAD_DATA_DIR", str(PROJECT_ROOT / "var")))


def topics_file() -> Path:
    return Path(env("BREAD_TOPICS_FILE", str(PROJECT_ROOT / "topics.yaml")))


# Each service's port, as in the seed; the order worker's query port is bread's own.
PORTS = {
    "order": ("ORDER_PORT", 8081),
    "bakery": ("BAKERY_PORT", 8082),
    "pay": ("PAY_PORT", 8083),
    "mypage": ("MYPAGE_PORT", 8084),
    "gateway": ("GATEWAY_PORT", 8088),
    "order-worker": ("ORDER_WORKER_PORT", 6081),
}

URL_VARS = {
    "order": "ORDER_URL",
    "bakery": "BAKERY_URL",
    "pay": "PAY_URL",
    "mypage": "MYPAGE_URL",
    "order-worker": "ORDER_WORKER_URL",
}


def port(service: str) -> int:
    var, default = PORTS[service]
    return env_int(var, default)


def service_urls(service: str) -> list[str]:
    """Where another service reaches `service`: its *_URL variable (the gateway takes a comma-separated list
    of instances), else this host and its port."""
    raw = env(URL_VARS[service], f"http://127.0.0.1:{port(service)}")
    return [url.strip().rstrip("/") for url in raw.split(",") if url.strip()]


def service_url(service: str) -> str:
    """The one address of `service` (on Kubernetes, its Service, which balances over the ready pods)."""
    return service_urls(service)[0]


def kafka_producer_settings() -> dict[str, object]:
    """Every producer of bread: acknowledged by all in-sync replicas, idempotent, lightly batched."""
    return {"bootstrap_servers": kafka_bootstrap(), "acks": "all", "enable_idempotence": True, "linger_ms": 2}
