"""How many orders requested over Kafka the order worker places at once."""
from agents.order.intake import requests_at_once


def test_requests_at_once_are_bounded_by_the_bulkhead_or_the_setting():
    assert requests_at_once(most=200, pay_calls=30) == 60
    assert requests_at_once(most=200, pay_calls=150) == 200
    assert requests_at_once(most=200, pay_calls=0) == 1  # a request is always placed, however few calls pay takes
