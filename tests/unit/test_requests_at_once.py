"""How many orders requested over Kafka the order worker places at once."""
from agents.order.intake import requests_at_once


def test_at_most_twice_what_the_bulkhead_in_front_of_pay_lets_through_and_never_more_than_the_setting():
    assert requests_at_once(most=200, pay_calls=30) == 60
    assert requests_at_once(most=200, pay_calls=150) == 200
    assert requests_at_once(most=200, pay_calls=0) == 1  # a request is always placed, however few calls pay takes
