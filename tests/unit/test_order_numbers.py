"""Order numbers come from blocks reserved on the one-partition sequence topic: one reservation per block,
numbers unique across reservers, 1, 2, 3… on a fresh broker with one reserver."""
import asyncio

from agents.order.intake import NUMBERS_PER_RESERVATION, OrderNumbers, block_of


class Sequence:
    """The one-partition sequence topic: each reservation's offset is its place in line, shared by reservers."""

    def __init__(self) -> None:
        self.reservations: list[dict] = []

    async def emit(self, event: dict) -> int:
        # The broker's acknowledgement comes later, not at once: others may ask for numbers meanwhile.
        acknowledged = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(acknowledged.set_result, None)
        await acknowledged
        self.reservations.append(event)
        return len(self.reservations) - 1


async def test_one_reserver_on_a_fresh_sequence_numbers_orders_one_two_three_with_one_reservation_per_block():
    sequence = Sequence()
    numbers = OrderNumbers(sequence.emit, "edge-a")
    taken = [await numbers.take("c") for _ in range(NUMBERS_PER_RESERVATION + 1)]
    assert taken == list(range(1, NUMBERS_PER_RESERVATION + 2))
    assert [r["reservedBy"] for r in sequence.reservations] == ["edge-a", "edge-a"]


async def test_callers_that_find_the_block_used_up_together_share_one_reservation():
    sequence = Sequence()
    numbers = OrderNumbers(sequence.emit, "edge-a")
    taken = await asyncio.gather(*(numbers.take("c") for _ in range(50)))
    assert sorted(taken) == list(range(1, 51))
    assert len(sequence.reservations) == 1


async def test_reservers_sharing_the_sequence_never_take_the_same_number():
    sequence = Sequence()
    edges = [OrderNumbers(sequence.emit, name) for name in ("edge-a", "edge-b", "order-worker")]
    taken = await asyncio.gather(*(edge.take("c") for _ in range(2 * NUMBERS_PER_RESERVATION) for edge in edges))
    assert len(set(taken)) == len(taken) == 6 * NUMBERS_PER_RESERVATION


def test_a_block_after_single_number_reservations_starts_past_every_number_they_gave():
    # Before blocks, the reservation at offset k was the number k + 1: a block reserved later, at a higher
    # offset, starts above all of them.
    for offset in (1, 7, 10_000):
        first, _ = block_of(offset)
        assert first > offset
