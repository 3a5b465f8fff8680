"""The code and topics.yaml agree: every event is emitted by the context that declares it, every declared
event has a producer in the code, no topic name is typed in the code, and each worker reads only declared
topics with handlers for events those topics carry."""
import ast
from pathlib import Path

from agents.bakery.tickets import ANNOUNCED_BY_STATUS
from agents.catalog import CONTEXTS, EXTERNAL, catalog
from agents.pay.payments import EVENT_OF_ACTION
from agents.settings import PROJECT_ROOT

SOURCES = [p for d in ("agents", "api") for p in (PROJECT_ROOT / d).rglob("*.py")]
# Where each file's code belongs: agents/<context>/..., agents/runtime/<context>.py, api/<context>.py; the
# order worker's face is order's.
API_CONTEXT = {"order": "order", "order_worker": "order", "pay": "pay", "bakery": "bakery", "mypage": "mypage"}


# The tables of event types the code looks event types up in.
EVENT_TABLES = {"EVENT_OF_ACTION": EVENT_OF_ACTION, "ANNOUNCED_BY_STATUS": ANNOUNCED_BY_STATUS}


def context_of(path: Path) -> str | None:
    rel = path.relative_to(PROJECT_ROOT).parts
    if rel[:2] == ("agents", "runtime"):
        return Path(rel[2]).stem if Path(rel[2]).stem in CONTEXTS else None
    if rel[0] == "agents" and len(rel) > 2:
        return rel[1]
    if rel[0] == "api":
        return API_CONTEXT.get(Path(rel[1]).stem)
    return None


def emitted_events() -> list[tuple[str, str | None, str]]:
    """(event type, context of the file, file) for every make_event("Type", ...) call in the code."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "make_event":
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant):
                    found.append((first.value, context_of(path), str(path)))
                elif isinstance(first, ast.Subscript):  # an event type looked up in a table of them
                    table = EVENT_TABLES[first.value.id]
                    found.extend((t, context_of(path), str(path)) for t in table.values())
    return found


def test_every_emitted_event_comes_from_the_producer_topics_yaml_declares():
    for event_type, context, path in emitted_events():
        topic = catalog().topic_of_event(event_type)  # raises when undeclared
        if context is None:  # shared code emits on behalf of every context (dead letters)
            assert set(topic.producers) == set(CONTEXTS), f"{path} emits {event_type} for any context"
        else:
            assert context in topic.producers, f"{path} emits {event_type}, but topics.yaml says {topic.producers} do"


def test_every_declared_event_has_a_producer_in_the_code():
    emitted = {event_type for event_type, _, _ in emitted_events()}
    declared = {e for t in catalog().topics.values() if EXTERNAL not in t.producers for e in t.events}
    assert declared - emitted == set(), "declared in topics.yaml but never emitted"


def test_no_topic_name_is_typed_in_the_code():
    names = {t.name for t in catalog().topics.values()} | {t.changelog for t in catalog().tables.values()}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in names, f"{path} types the topic name {node.value!r}"
                assert not node.value.startswith("bread."), f"{path} types what looks like a topic: {node.value!r}"


def test_workers_consume_only_declared_topics_with_handlers_for_declared_events():
    from agents.settings import Settings
    from api import bakery, mypage, order_worker

    for worker in (face.build(Settings()) for face in (order_worker, bakery, mypage)):
        declared = {t.name for t in catalog().topics_consumed_by(worker.context)} | {
            t.changelog for t in catalog().tables_followed_by(worker.context)}
        subscribed = {name for agent in worker.app.agents.values() for name in agent.channel.topics}
        assert subscribed == declared, worker.context
        tables = {t.name: t for t in worker.app.tables.values()}
        for name, table in tables.items():
            assert table.changelog_topic.get_topic_name() == catalog().tables[name].changelog
            # A key must hash as it does on the topics, or queries are routed to a worker without it.
            assert table.changelog_topic.prepare_key("5", None)[0] == b"5", name
