"""topics.yaml is loaded, checked, and used to validate events."""
import pytest

from agents.catalog import CatalogError, InvalidEvent, catalog, parse
from agents.events import decode, encode, key_of, make_event


def test_every_topic_declares_how_it_is_kept():
    for topic in catalog().topics.values():
        assert topic.name and topic.partitions >= 1
        assert topic.cleanup in {"delete", "compact"}
        assert topic.producers
        assert topic.events, f"{topic.alias} carries no events"


def test_each_message_is_keyed_by_the_id_it_is_about():
    keyed = [t for t in catalog().topics.values() if t.key]
    assert keyed and all(t.key == ("orderId" if t.enveloped else "requestId") for t in keyed)
    assert {t.alias for t in keyed if not t.enveloped} == {"order-requests"}


def test_commands_need_no_envelope():
    catalog().validate({"type": "RequestOrder", "requestId": "r1", "item": "cake", "qty": 1})


def test_the_catalogue_finds_the_topics_of_an_event_or_a_reader():
    assert catalog().topic_of_event("OrderPlaced").alias == "orders"
    assert {t.alias for t in catalog().topics_consumed_by("order")} == {
        "orders", "payment-requests", "payments", "bakery", "order-requests"}
    assert catalog().topics_consumed_by("mypage") == []
    assert [t.name for t in catalog().tables_followed_by("mypage")] == ["orders"]


def test_a_made_event_carries_a_valid_envelope():
    event = make_event("OrderPlaced", correlation_id="c1", orderId=7, item="cake", qty=1, price=25000)
    assert {"type", "eventId", "occurredAt", "correlationId"} <= set(event)
    assert key_of(event) == b"7"
    assert decode(encode(event), catalog().topic_of_event("OrderPlaced").name) == event


def test_derived_events_get_the_same_id_from_the_same_cause():
    cause = make_event("PayApproved", correlation_id="c", orderId=1, paymentId=1, price=1)
    first = make_event("BakeryTicketOpened", correlation_id="c", cause=cause, orderId=1, bakeryId="b")
    again = make_event("BakeryTicketOpened", correlation_id="c", cause=cause, orderId=1, bakeryId="b")
    assert first["eventId"] == again["eventId"] != cause["eventId"]


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"orderId": 1, "item": "cake", "qty": 1}, "lacks price"),
        ({"orderId": "1", "item": "cake", "qty": 1, "price": 1}, "orderId must be int"),
        ({"orderId": 1, "item": "cake", "qty": True, "price": 1}, "qty must be int"),
        ({"orderId": 1, "item": "cake", "qty": 1, "price": 1, "customerId": 7}, "customerId must be str"),
    ],
)
def test_an_event_that_does_not_match_its_declaration_is_refused(fields, problem):
    with pytest.raises(InvalidEvent, match=problem):
        make_event("OrderPlaced", correlation_id="c", **fields)


def test_an_optional_field_may_be_absent_but_not_of_another_type():
    fields = {"orderId": 1, "item": "cake", "qty": 1, "price": 1}
    assert "customerId" not in make_event("OrderPlaced", correlation_id="c", **fields)
    assert make_event("OrderPlaced", correlation_id="c", customerId="alice", **fields)["customerId"] == "alice"
    assert catalog().topic_of_event("OrderPlaced").optional["OrderPlaced"] == {"customerId"}


def test_an_event_off_its_declared_topic_is_refused():
    with pytest.raises(InvalidEvent, match="not declared"):
        make_event("OrderTeleported", correlation_id="c", orderId=1)
    event = make_event("OrderRejected", correlation_id="c", orderId=1, reason="r")
    with pytest.raises(InvalidEvent, match="belongs on"):
        decode(encode(event), catalog().topic_of_event("PayApproved").name)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"type": 3}', None])
def test_garbage_on_a_topic_is_an_invalid_event(raw):
    with pytest.raises(InvalidEvent):
        decode(raw, "bread.orders")


def test_inconsistent_catalogues_are_refused():
    base = {"name": "t", "partitions": 1, "producer": "order", "key": "orderId"}
    with pytest.raises(CatalogError, match="unknown type"):
        parse({"topics": {"t": {**base, "events": {"E": {"orderId": "float"}}}}})
    with pytest.raises(CatalogError, match="key field"):
        parse({"topics": {"t": {**base, "events": {"E": {"x": "int"}}}}})
    with pytest.raises(CatalogError, match="key field"):
        parse({"topics": {"t": {**base, "events": {"E": {"orderId": "int?"}}}}})
    with pytest.raises(CatalogError, match="cannot be optional"):
        parse({"envelope": {"eventId": "str?"}, "topics": {}})
    with pytest.raises(CatalogError, match="unknown contexts"):
        parse({"topics": {"t": {**base, "consumers": ["kitchen"], "events": {"E": {"orderId": "int"}}}}})
    with pytest.raises(CatalogError, match="declared on both"):
        parse({"topics": {"a": {**base, "events": {"E": {"orderId": "int"}}},
                          "b": {**base, "name": "b", "events": {"E": {"orderId": "int"}}}}})


def test_tables_are_co_partitioned_with_what_their_context_reads():
    for table in catalog().tables.values():
        counts = {t.partitions for t in catalog().topics_consumed_by(table.context) if t.key}
        counts |= {t.partitions for t in catalog().tables_followed_by(table.context)}
        assert counts == {table.partitions}
        assert table.changelog == f"bread-{table.context}-{table.name}-changelog"


def test_a_followed_table_is_co_partitioned_with_its_known_followers():
    topic = {"name": "t", "partitions": 3, "key": "orderId", "producer": "order", "consumers": ["order"],
             "events": {"E": {"orderId": "int"}}}
    followed = parse({"topics": {"t": topic}, "tables": {"rows": {"context": "order", "consumers": ["mypage"]},
                                                         "view": {"context": "mypage"}}})
    assert followed.tables["view"].partitions == 3
    assert followed.tables_followed_by("mypage") == [followed.tables["rows"]]
    with pytest.raises(CatalogError, match="unknown contexts"):
        parse({"topics": {"t": topic}, "tables": {"rows": {"context": "order", "consumers": ["kitchen"]}}})
