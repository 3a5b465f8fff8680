"""The topic catalogue: topics.yaml loaded once.

Code never names a Kafka topic: it asks the catalogue where an event type goes (`topic_of_event`) and which
topics a bounded context reads (`topics_consumed_by`). Events are checked against their declared fields here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from agents.settings import current

FIELD_TYPES: dict[str, type] = {"str": str, "int": int}
OPTIONAL = "?"  # `str?`: the field may be absent (a field added later, or one only some senders know)
CONTEXTS = ("order", "pay", "bakery", "mypage")
EXTERNAL = "external"  # a producer outside bread (another system sending commands)


class CatalogError(ValueError):
    """topics.yaml itself is inconsistent."""


class InvalidEvent(ValueError):
    """An event does not match its declaration in topics.yaml."""


@dataclass(frozen=True)
class TopicSpec:
    alias: str
    name: str
    partitions: int
    key: str | None
    cleanup: str
    retention_ms: int | None
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    events: Mapping[str, Mapping[str, type]]
    enveloped: bool = True
    optional: Mapping[str, frozenset[str]] = field(default_factory=dict)  # event type -> its optional fields

    def config(self) -> dict[str, str]:
        settings = {"cleanup.policy": self.cleanup}
        if self.retention_ms is not None:
            settings["retention.ms"] = str(self.retention_ms)
        return settings


@dataclass(frozen=True)
class TableSpec:
    name: str
    context: str
    partitions: int
    consumers: tuple[str, ...] = ()  # the other contexts that follow the table's changes on its changelog

    @property
    def app_id(self) -> str:
        return f"bread-{self.context}"

    @property
    def changelog(self) -> str:
        """Faust's name for the table's changelog topic: <app id>-<table>-changelog."""
        return f"{self.app_id}-{self.name}-changelog"


@dataclass(frozen=True)
class Catalog:
    envelope: Mapping[str, type]
    topics: Mapping[str, TopicSpec]
    tables: Mapping[str, TableSpec]

    def kafka_topics(self) -> list[tuple[str, int, dict[str, str]]]:
        """(name, partitions, topic config) of every topic bread needs: the declared ones and, made up front
        so no worker races its own topic's creation at first start, each table's compacted changelog."""
        return [(t.name, t.partitions, t.config()) for t in self.topics.values()] + [
            (t.changelog, t.partitions, {"cleanup.policy": "compact"}) for t in self.tables.values()]

    def topic_of_event(self, event_type: str) -> TopicSpec:
        for topic in self.topics.values():
            if event_type in topic.events:
                return topic
        raise InvalidEvent(f"event type {event_type!r} is not declared in topics.yaml")

    def topics_consumed_by(self, context: str) -> list[TopicSpec]:
        return [t for t in self.topics.values() if context in t.consumers]

    def tables_followed_by(self, context: str) -> list[TableSpec]:
        """The tables of other contexts whose changes `context` follows on their changelogs."""
        return [t for t in self.tables.values() if context in t.consumers]

    def table_of(self, context: str, name: str | None = None) -> TableSpec:
        """The context's table (`name` picks one where it has several)."""
        tables = [t for t in self.tables.values() if t.context == context and (name is None or t.name == name)]
        if len(tables) != 1:
            raise CatalogError(f"topics.yaml declares {len(tables)} tables {name or ''} for context {context!r}")
        return tables[0]

    def validate(self, event: Mapping[str, Any], topic_name: str | None = None) -> None:
        """Raise InvalidEvent naming the problem unless `event` matches its declaration (and its topic)."""
        if not isinstance(event, Mapping):
            raise InvalidEvent("an event must be a JSON object")
        event_type = event.get("type")
        if not isinstance(event_type, str):
            raise InvalidEvent("event has no 'type'")
        topic = self.topic_of_event(event_type)
        if topic_name is not None and topic.name != topic_name:
            raise InvalidEvent(f"{event_type} belongs on {topic.name}, not on {topic_name}")
        fields = {**(self.envelope if topic.enveloped else {}), **topic.events[event_type]}
        optional = topic.optional.get(event_type, frozenset())
        missing = [name for name in fields if name not in event and name not in optional]
        if missing:
            raise InvalidEvent(f"{event_type} lacks {', '.join(missing)}")
        for name, kind in fields.items():
            if name not in event:
                continue
            value = event[name]
            # bool is an int in Python, never in an event.
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidEvent(f"{event_type}.{name} must be {kind.__name__}, got {value!r}")


def _field_types(where: str, fields: Mapping[str, str] | None) -> tuple[dict[str, type], frozenset[str]]:
    """The declared fields' types, and which of them are optional."""
    out, optional = {}, set()
    for name, kind in (fields or {}).items():
        if kind.endswith(OPTIONAL):
            kind = kind[: -len(OPTIONAL)]
            optional.add(name)
        if kind not in FIELD_TYPES:
            raise CatalogError(f"{where}.{name}: unknown type {kind!r} (use one of {sorted(FIELD_TYPES)}, "
                               f"with {OPTIONAL!r} for an optional field)")
        out[name] = FIELD_TYPES[kind]
    return out, frozenset(optional)


def parse(document: Mapping[str, Any]) -> Catalog:
    envelope, optional_envelope = _field_types("envelope", document.get("envelope"))
    if optional_envelope:
        raise CatalogError("envelope fields cannot be optional")
    topics: dict[str, TopicSpec] = {}
    seen_events: dict[str, str] = {}
    for alias, raw in (document.get("topics") or {}).items():
        for required in ("name", "partitions", "producer", "events"):
            if required not in raw:
                raise CatalogError(f"topic {alias!r} lacks {required!r}")
        producers = raw["producer"] if isinstance(raw["producer"], list) else [raw["producer"]]
        contexts = [*producers, *raw.get("consumers", [])]
        unknown = [c for c in contexts if c not in CONTEXTS and c not in ([EXTERNAL] if c in producers else [])]
        if unknown:
            raise CatalogError(f"topic {alias!r} names unknown contexts {unknown}")
        events, optional = {}, {}
        for event_type, fields in raw["events"].items():
            if event_type in seen_events:
                raise CatalogError(f"event {event_type} declared on both {seen_events[event_type]} and {alias}")
            seen_events[event_type] = alias
            events[event_type], optional[event_type] = _field_types(f"{alias}.{event_type}", fields)
            if raw.get("key") and (raw["key"] not in events[event_type] or raw["key"] in optional[event_type]):
                raise CatalogError(f"{event_type} lacks its topic's key field {raw['key']!r}")
        topics[alias] = TopicSpec(
            alias=alias,
            name=raw["name"],
            partitions=int(raw["partitions"]),
            key=raw.get("key"),
            cleanup=raw.get("cleanup", "delete"),
            retention_ms=raw.get("retention_ms"),
            producers=tuple(producers),
            enveloped=raw.get("envelope", True),
            consumers=tuple(raw.get("consumers", [])),
            events=events,
            optional=optional,
        )
    declared = document.get("tables") or {}
    for name, raw in declared.items():
        unknown = [c for c in (raw["context"], *raw.get("consumers", [])) if c not in CONTEXTS]
        if unknown:
            raise CatalogError(f"table {name!r} names unknown contexts {unknown}")

    def partitions_of(name: str) -> int:
        """A table is co-partitioned with what its context reads: keyed topics, or the tables it follows."""
        context = declared[name]["context"]
        counts = {t.partitions for t in topics.values() if context in t.consumers and t.key}
        counts |= {partitions_of(other) for other, raw in declared.items()
                   if context in raw.get("consumers", []) and other != name}
        if len(counts) != 1:
            raise CatalogError(f"table {name!r}: the keyed topics and tables {context} reads must share one "
                               "partition count")
        return counts.pop()

    tables = {name: TableSpec(name=name, context=raw["context"], partitions=partitions_of(name),
                              consumers=tuple(raw.get("consumers", []))) for name, raw in declared.items()}
    return Catalog(envelope=envelope, topics=topics, tables=tables)


def load(path: Path) -> Catalog:
    with open(path, encoding="utf-8") as f:
        return parse(yaml.safe_load(f))


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return load(current().topics_file)


def markdown_table(cat: Catalog) -> str:
    """The topics and their events as a Markdown table (the README embeds it; a test keeps them equal)."""
    lines = ["| topic | key | partitions | producer → consumers | events (fields) |", "|---|---|---|---|---|"]
    for t in cat.topics.values():
        events = "<br>".join(
            f"`{name}` ({', '.join(f + OPTIONAL * (f in t.optional.get(name, ())) for f in fields)})"
            for name, fields in t.events.items())
        consumers = ", ".join(t.consumers) or "—"
        producers = ", ".join(t.producers)
        lines.append(f"| `{t.name}` | {t.key or '—'} | {t.partitions} | {producers} → {consumers} | {events} |")
    for table in cat.tables.values():
        lines.append(f"| `{table.changelog}` | orderId | {table.partitions} | {table.context} (Faust table "
                     f"`{table.name}`, compacted) → {', '.join(table.consumers) or '—'} | changelog |")
    return "\n".join(lines)
