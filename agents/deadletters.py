"""Dead letters: what a consumer could not handle, kept on Kafka with the reason, to be replayed after a fix."""
from __future__ import annotations

import base64
import json
from typing import Any, Iterable, Mapping

from agents.events import Event, make_event
from agents.refusal import Refusal

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


def replay_note(letter_offset: int, letter: Mapping[str, Any], topic: str, partition: int, offset: int,
                by: str | None = None) -> Event:
    """The note that a letter was replayed: where its original message went again, and at whose asking. Kept on
    the dead-letter topic beside the letter, so every listing of the letters knows it was replayed."""
    return make_event("DeadLetterReplayed", correlation_id=letter.get("correlationId") or "dead-letter",
                      cause=f"replayed/{letter_offset}/{topic}/{partition}/{offset}", letterOffset=letter_offset,
                      replayedTopic=topic, replayedPartition=partition, replayedOffset=offset,
                      **({"replayedBy": by} if by else {}))


MAX_LETTERS_SHOWN = 200
MAX_VALUE_SHOWN = 500


class BadLetterQuery(Refusal):
    """A page of the dead letters that cannot be, or a letter that is not one."""


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        page, size = int(query.get("page", 0)), int(query.get("size", 20))
    except ValueError:
        raise BadLetterQuery("'page' and 'size' must be whole numbers") from None
    if not 0 <= page <= 10**9 or not 1 <= size <= MAX_LETTERS_SHOWN:
        raise BadLetterQuery(f"'page' must be from 0 to 1000000000 and 'size' between 1 and {MAX_LETTERS_SHOWN}")
    return page, size


Message = tuple[int, Mapping[str, Any]]  # a message of the dead-letter topic: its offset, its event


def letters_of(messages: Iterable[Message]) -> tuple[dict[int, Mapping[str, Any]],
                                                     dict[int, list[Mapping[str, Any]]]]:
    """The letters by their offset, and the notes of their replays by the letter's offset."""
    letters: dict[int, Mapping[str, Any]] = {}
    replays: dict[int, list[Mapping[str, Any]]] = {}
    for offset, event in messages:
        if event.get("type") == "DeadLetterReplayed":
            replays.setdefault(event["letterOffset"], []).append(event)
        elif event.get("type") == "DeadLetter":
            letters[offset] = event
    return letters, replays


def shown_letter(offset: int, letter: Mapping[str, Any], replays: list[Mapping[str, Any]]) -> dict[str, Any]:
    """A letter as an operator sees it: where the message failed and why, its key and value (shortened), and
    each replay of it."""
    topic, key, _ = original(letter)
    return {
        "id": offset, "at": letter["occurredAt"], "consumer": letter["consumer"], "topic": topic,
        "partition": letter["failedPartition"], "offset": letter["failedOffset"],
        "key": key.decode("utf-8", errors="replace") if key else None, "error": letter["error"],
        "value": preview(letter, MAX_VALUE_SHOWN),
        "replays": [{"at": r["occurredAt"], "topic": r["replayedTopic"], "partition": r["replayedPartition"],
                     "offset": r["replayedOffset"], **({"by": r["replayedBy"]} if r.get("replayedBy") else {})}
                    for r in replays],
    }


def page_of_letters(messages: Iterable[Message], page: int, size: int) -> dict[str, Any]:
    """One page of the dead letters, newest first, each with its replays."""
    letters, replays = letters_of(messages)
    newest_first = sorted(letters, reverse=True)
    chunk = newest_first[page * size:(page + 1) * size]
    return {
        "letters": [shown_letter(offset, letters[offset], replays.get(offset, [])) for offset in chunk],
        "page": {"size": size, "totalElements": len(letters), "totalPages": -(-len(letters) // size),
                 "number": page},
    }


class NoSuchLetter(Refusal):
    """A letter asked for that is not on the dead-letter topic."""


def letter_at(messages: Iterable[Message], letter_offset: int) -> Mapping[str, Any]:
    """The letter at an offset of the dead-letter topic; NoSuchLetter when there is none."""
    letters, _ = letters_of(messages)
    if letter_offset not in letters:
        raise NoSuchLetter(f"no dead letter at offset {letter_offset} of the dead-letter topic")
    return letters[letter_offset]


def not_replayed(messages: Iterable[Message]) -> list[tuple[int, Mapping[str, Any]]]:
    """The letters nobody replayed yet, oldest first."""
    letters, replays = letters_of(messages)
    return [(offset, letters[offset]) for offset in sorted(letters) if offset not in replays]
