"""Customers and their tokens, and the gateway's rate limit: pure functions, no network."""
import pytest

from agents import customers
from api.gateway import ROUTES, RateLimiter, route_of


def test_a_customer_sees_only_their_own_orders_and_without_auth_everything_is_visible():
    mine, theirs, anonymous = {"customerId": "alice"}, {"customerId": "bob"}, {}
    assert customers.may_see(mine, "alice") and not customers.may_see(theirs, "alice")
    assert not customers.may_see(anonymous, "alice")
    assert all(customers.may_see(order, None) for order in (mine, theirs, anonymous))


def test_the_tokens_file_holds_digests_and_finds_the_customer_of_a_token(tmp_path):
    token = customers.new_token()
    path = tmp_path / "tokens"
    path.write_text("# customer digest\n\n" + customers.token_line("alice", token))
    assert token not in path.read_text()
    book = customers.TokenBook(path)
    assert book.customer_of(token) == "alice"
    assert book.customer_of(token + "x") is None and book.customer_of("") is None


def test_the_book_follows_the_file_when_it_changes_or_goes_away(tmp_path):
    path = tmp_path / "tokens"
    book = customers.TokenBook(path)
    first, second = customers.new_token(), customers.new_token()
    assert book.customer_of(first) is None
    path.write_text(customers.token_line("alice", first))
    assert book.customer_of(first) == "alice"
    path.write_text(customers.token_line("alice", first) + customers.token_line("bob", second))
    assert book.customer_of(second) == "bob"
    path.unlink()
    assert book.customer_of(first) is None


@pytest.mark.parametrize("text", ["alice", "alice not-a-digest", "al ice " + "0" * 64, "-x " + "0" * 64])
def test_a_broken_tokens_file_is_refused_with_its_line(text):
    with pytest.raises(ValueError, match="line 1"):
        customers.parse_tokens(text)


@pytest.mark.parametrize("customer", ["", "a b", "-alice", "x" * 65, "ali/ce"])
def test_customer_ids_are_plain_names(customer):
    with pytest.raises(ValueError):
        customers.token_line(customer, "t")


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_the_rate_limit_lets_a_burst_through_then_the_rate_and_tells_how_long_to_wait():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.wait_for("alice") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_for("alice") == pytest.approx(0.5)
    assert limiter.wait_for("bob") == 0  # each client has a bucket of its own
    clock.now += 0.5
    assert limiter.wait_for("alice") == 0
    assert limiter.wait_for("alice") == pytest.approx(0.5)
    clock.now += 10
    assert [limiter.wait_for("alice") for _ in range(4)][:3] == [0, 0, 0]  # refilled, never above the burst


def test_routes_match_whole_path_segments_and_timeouts_come_from_env(monkeypatch):
    assert route_of("/orders").service == "order" and route_of("/orders/7").service == "order"
    assert route_of("/ordersx") is None and route_of("/") is None
    assert route_of("/order-requests/r1").service == "order-worker"
    orders = route_of("/orders")
    assert orders.timeout_variable == "GATEWAY_TIMEOUT_ORDERS_S"
    monkeypatch.setenv("GATEWAY_TIMEOUT_S", "3")
    assert orders.timeout() == 3 and route_of("/payments").timeout() == 3
    monkeypatch.setenv("GATEWAY_TIMEOUT_ORDERS_S", "12.5")
    assert orders.timeout() == 12.5
    assert len({r.prefix for r in ROUTES}) == len(ROUTES)


def test_the_gateway_takes_turns_over_ready_instances_and_keeps_the_others_for_last():
    from api.gateway import Targets
    targets = Targets("order", ["http://a", "http://b", "http://c"])
    firsts = [targets.in_order()[0] for _ in range(6)]
    assert sorted(set(firsts)) == ["http://a", "http://b", "http://c"]  # round-robin
    targets.ready.discard("http://b")
    for _ in range(4):
        order = targets.in_order()
        assert order[-1] == "http://b" and sorted(order) == ["http://a", "http://b", "http://c"]
    targets.ready.clear()
    assert len(targets.in_order()) == 3  # none ready: try them all rather than refuse
