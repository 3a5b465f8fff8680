"""Dead letters keep the failed message exactly, so it can be replayed; operators list them with their replays."""
import pytest

from agents.catalog import catalog
from agents.deadletters import (
    BadLetterQuery,
    NoSuchLetter,
    correlation_of,
    dead_letter,
    letter_at,
    not_replayed,
    original,
    page_of_letters,
    parse_page,
    preview,
    replay_note,
)
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


def letters_on_the_topic():
    """The dead-letter topic as a listing reads it: three letters, the first replayed once (its note at 3)."""
    placed = make_event("OrderPlaced", correlation_id="c-1", orderId=1, item="cake", qty=1, price=25000)
    first = dead_letter("mypage", "bread.orders", 2, 17, b"1", encode(placed), KeyError("boom"))
    second = dead_letter("pay", "bread.orders", 0, 1, None, b"\xff\x00garbage", ValueError("not JSON"))
    third = dead_letter("bakery", "bread.payments", 1, 4, b"7", b"{}", ValueError("lacks orderId"))
    note = replay_note(0, first, "bread.orders", 2, 90, by="root")
    return [(0, first), (1, second), (2, third), (3, note)]


def test_a_replay_is_noted_with_where_the_message_went_and_who_asked():
    note = letters_on_the_topic()[3][1]
    catalog().validate(note)
    assert (note["letterOffset"], note["replayedTopic"], note["replayedOffset"], note["replayedBy"]) == (
        0, "bread.orders", 90, "root")
    assert note["correlationId"] == "c-1"  # it joins the saga's story, as the letter does


def test_the_letters_are_listed_newest_first_with_their_replays():
    page = page_of_letters(letters_on_the_topic(), page=0, size=2)
    assert [letter["id"] for letter in page["letters"]] == [2, 1] and page["page"]["totalElements"] == 3
    last = page_of_letters(letters_on_the_topic(), page=1, size=2)["letters"]
    assert [letter["id"] for letter in last] == [0]
    replay = last[0]["replays"][0]
    assert {k: replay[k] for k in ("topic", "partition", "offset", "by")} == {
        "topic": "bread.orders", "partition": 2, "offset": 90, "by": "root"}
    assert (last[0]["consumer"], last[0]["key"], last[0]["error"]) == ("mypage", "1", "KeyError: 'boom'")


def test_a_letter_shows_its_value_as_text_however_it_was_broken():
    shown = page_of_letters(letters_on_the_topic(), page=0, size=3)["letters"][1]
    assert shown["key"] is None and "garbage" in shown["value"] and shown["replays"] == []


def test_only_the_letters_nobody_replayed_are_replayed_again():
    assert [offset for offset, _ in not_replayed(letters_on_the_topic())] == [1, 2]


def test_a_letter_asked_for_by_an_offset_that_holds_none_is_not_found():
    assert letter_at(letters_on_the_topic(), 2)["consumer"] == "bakery"
    for offset in (3, 99, -1):  # a note is no letter
        with pytest.raises(NoSuchLetter):
            letter_at(letters_on_the_topic(), offset)


@pytest.mark.parametrize("query", [{"page": "-1"}, {"size": "0"}, {"size": "201"}, {"page": "x"}])
def test_a_page_of_letters_that_cannot_be_is_refused(query):
    with pytest.raises(BadLetterQuery):
        parse_page(query)
