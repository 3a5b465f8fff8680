"""The saga deadline's arithmetic."""
from agents.order.deadline import deadline_after, overdue


def test_the_deadline_counts_from_when_the_saga_began():
    assert deadline_after("2026-01-01T00:00:00.000+00:00", 300) == 1767225600.0 + 300


def test_only_orders_past_their_deadline_are_overdue():
    assert overdue([("1", 100.0), ("2", 200.0), ("3", 150.0)], now=150.0) == ["1", "3"]
    assert overdue([], now=0) == []
