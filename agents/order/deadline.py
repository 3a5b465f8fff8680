"""The saga deadline: no order stays unfinished forever. Pure functions."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from agents import config

REASON = "saga deadline passed"


def saga_deadline_s() -> float:
    return config.env_float("SAGA_DEADLINE_S", 300.0)


def deadline_after(occurred_at: str, seconds: float) -> float:
    """The time (epoch seconds) by which a saga begun at `occurred_at` must have ended."""
    return datetime.fromisoformat(occurred_at).timestamp() + seconds


def overdue(deadlines: Iterable[tuple[str, float]], now: float) -> list[str]:
    """The orders whose deadline has passed."""
    return [order_id for order_id, deadline in deadlines if deadline <= now]
