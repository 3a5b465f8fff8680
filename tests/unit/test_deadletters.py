"""Dead letters keep the failed message exactly, so it can be replayed."""
from agents.catalog import catalog
from agents.deadletters import correlation_of, dead_letter, original, preview
from agents.events import encode, make_event


def test_a_dead_letter_keeps_the_message_with_the_reason():
    event = make_event("OrderPlaced", correlation_id="c-1", orderId=1, item="cake", qty=1, price=25000)
    letter = dead_letter("mypage", "bread.orders", 2, 17, b"1", encode(event), KeyError("boom"))
    catalog().validate(letter)
    assert original(letter) == ("bread.orders", b"1", encode(event))
    assert (letter["consumer"], letter["failedPartition"], letter["failedOffset"]) == ("mypage", 2, 17)
    assert letter["error"] == "KeyError: 'boom'" and letter["correlationId"] == "c-1"


def test_the_same_failure_twice_is_the_same_letter():
    first = dead_letter("order", "bread.orders", 0, 5, None, b"x", ValueError("v"))
    again = dead_letter("order", "bread.orders", 0, 5, None, b"x", ValueError("v"))
    assert first["eventId"] == again["eventId"]
    assert original(first) == ("bread.orders", None, b"x")


def test_binary_garbage_is_kept_whole_with_a_readable_preview():
    letter = dead_letter("pay", "bread.orders", 0, 1, None, b"\xff\x00garbage", ValueError("not JSON"))
    assert original(letter)[2] == b"\xff\x00garbage"
    assert "garbage" in preview(letter)
    assert correlation_of(b"\xff") == correlation_of(b"[1]") == "dead-letter"
