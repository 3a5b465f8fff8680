"""Debug switches (BREAD_DEBUG=on only, never in production): ways to make a service unhealthy on purpose, to
show that its liveness probe notices. Each service exposes them as POST /debug/...?seconds=N."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def seconds_of(raw: str | None) -> float:
    """The `seconds` a switch holds for: 5 by default; ValueError naming the problem otherwise."""
    try:
        seconds = float(raw if raw is not None else "5")
    except ValueError:
        raise ValueError("'seconds' must be a number") from None
    if not 0 < seconds <= 600:
        raise ValueError("'seconds' must be more than 0 and at most 600")
    return seconds


def block_event_loop(seconds: float) -> None:
    """Block the calling event loop, as a stuck handler would."""
    log.warning("debug: blocking the event loop for %.1fs", seconds)
    time.sleep(seconds)  # deliberately blocking: that is the point
