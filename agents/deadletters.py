"""Dead letters: what a consumer could not handle, kept on Kafka with the reason, to be replayed after a fix."""
from __future__ import annotations

import base64
import json
from typing import Any, Mapping

from agents.events import Event, make_event

MAX_ERROR = 2000


def _b64(raw: bytes | None) -> str:
    return base64.b64encode(raw or b"").decode()


def dead_letter(consumer: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                error: BaseException) -> Event:
    """The DeadLetter event for a message `consumer` failed on. Its id is derived from the message's place,
    so the same failure dead-lettered twice (a redelivery) is one letter to whoever dedupes."""
    return make_event(
        "DeadLetter", correlation_id=correlation_of(value), cause=f"{consumer}/{topic}/{partition}/{offset}",
        consumer=consumer, failedTopic=topic, failedPartition=partition, failedOffset=offset,
        failedKey=_b64(key), failedValue=_b64(value), error=f"{type(error).__name__}: {error}"[:MAX_ERROR],
    )


def correlation_of(value: bytes | None) -> str:
    """The failed message's correlation id when it has one, so the letter joins its saga's story."""
    try:
        found = json.loads(value or b"").get("correlationId")
    except (ValueError, AttributeError):
        return "dead-letter"
    return found if isinstance(found, str) else "dead-letter"


def original(letter: Mapping[str, Any]) -> tuple[str, bytes | None, bytes]:
    """(topic, key, value) of the message as it was before it failed."""
    key = base64.b64decode(letter["failedKey"]) or None
    return letter["failedTopic"], key, base64.b64decode(letter["failedValue"])


def preview(letter: Mapping[str, Any], width: int = 120) -> str:
    _, _, value = original(letter)
    text = value.decode("utf-8", errors="replace").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
