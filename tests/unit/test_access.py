"""Principals, roles and their tokens, the access table, and the gateway's rate limit: no network."""
import pytest

from agents.principals import (
    ADMIN,
    BAKER,
    CUSTOMER,
    ROLES,
    SERVICE,
    BadPrincipal,
    Principal,
    may_see,
    principal_from,
)
from api.gateway.guard import RateLimiter
from api.http import JsonError
from api.routes import ACCESS, ROUTES, check_access, route_of
from api.tokens import TokenBook, new_token, parse_tokens, token_line
from tests.roles import EXPECTED

ALICE, BOB = Principal("alice", CUSTOMER), Principal("bob", CUSTOMER)


def test_what_each_caller_may_see_follows_from_its_role():
    mine, theirs, anonymous = {"customerId": "alice"}, {"customerId": "bob"}, {}
    assert may_see(mine, ALICE) and not may_see(theirs, ALICE) and not may_see(anonymous, ALICE)
    for caller in (None, Principal("bea", BAKER), Principal("ops", SERVICE), Principal("root", ADMIN)):
        assert all(may_see(order, caller) for order in (mine, theirs, anonymous))


def test_the_principal_comes_from_both_headers_or_neither():
    assert principal_from({}) is None
    assert principal_from({"X-Principal": "alice", "X-Principal-Role": "customer"}) == ALICE
    for half in ({"X-Principal": "alice"}, {"X-Principal-Role": "admin"}):
        with pytest.raises(BadPrincipal, match="together"):
            principal_from(half)
    with pytest.raises(BadPrincipal, match="role"):
        principal_from({"X-Principal": "alice", "X-Principal-Role": "root"})
    with pytest.raises(BadPrincipal, match="name"):
        principal_from({"X-Principal": "al ice", "X-Principal-Role": "customer"})
    # What the gateway sends is what the services read back, and the old header still says who it is.
    assert ALICE.headers()["X-Customer-ID"] == "alice" and principal_from(ALICE.headers()) == ALICE


def test_the_tokens_file_finds_a_principal_by_a_digest_of_its_token(tmp_path):
    token, bakers = new_token(), new_token()
    path = tmp_path / "tokens"
    path.write_text("# name role digest\n\n" + token_line("alice", CUSTOMER, token)
                    + token_line("bea", BAKER, bakers))
    assert token not in path.read_text() and bakers not in path.read_text()
    book = TokenBook(path)
    assert book.principal_of(token) == ALICE and book.principal_of(bakers) == Principal("bea", BAKER)
    assert book.principal_of(token + "x") is None and book.principal_of("") is None


def test_a_line_written_before_roles_is_a_customers():
    token = new_token()
    old_line = token_line("alice", CUSTOMER, token).replace(" customer ", " ")
    assert list(parse_tokens(old_line).values()) == [ALICE]


def test_the_book_follows_the_file_when_it_changes_or_goes_away(tmp_path):
    path = tmp_path / "tokens"
    book = TokenBook(path)
    first, second = new_token(), new_token()
    assert book.principal_of(first) is None
    path.write_text(token_line("alice", CUSTOMER, first))
    assert book.principal_of(first) == ALICE
    path.write_text(token_line("alice", CUSTOMER, first) + token_line("bob", ADMIN, second))
    assert book.principal_of(second) == Principal("bob", ADMIN)
    path.unlink()
    assert book.principal_of(first) is None


@pytest.mark.parametrize("text", ["alice", "alice not-a-digest", "al ice " + "0" * 64, "-x " + "0" * 64,
                                  "alice root " + "0" * 64, "alice customer " + "0" * 63])
def test_a_broken_tokens_file_is_refused_with_its_line(text):
    with pytest.raises(ValueError, match="line 1"):
        parse_tokens(text)


@pytest.mark.parametrize("name, role", [("", CUSTOMER), ("a b", CUSTOMER), ("-alice", CUSTOMER),
                                        ("x" * 65, CUSTOMER), ("ali/ce", CUSTOMER), ("alice", "root")])
def test_a_principal_is_a_plain_name_with_a_known_role(name, role):
    with pytest.raises(ValueError):
        token_line(name, role, "t")


@pytest.mark.parametrize("method, path", list(EXPECTED))
@pytest.mark.parametrize("role", ROLES)
def test_a_role_is_refused_with_403_what_the_table_does_not_give_it(method, path, role):
    principal = Principal("someone", role)
    if role in EXPECTED[(method, path)]:
        check_access(method, path, principal)
    else:
        with pytest.raises(JsonError) as refused:
            check_access(method, path, principal)
        assert refused.value.http_status == 403 and role in refused.value.body["error"]


def test_the_access_table_covers_every_route():
    assert {prefix for prefix, _ in ACCESS} == {route.prefix for route in ROUTES}
    assert len(EXPECTED) == len({(m, route_of(p).prefix) for m, p in EXPECTED}) + 1  # /mypages list and row
    for method, path in EXPECTED:
        check_access(method, path, None)
    check_access("GET", "/health", ALICE)  # not a route: the service's own


def test_a_method_no_role_has_is_405_naming_the_ones_there_are():
    with pytest.raises(JsonError) as refused:
        check_access("PUT", "/orders/1", Principal("root", ADMIN))
    assert refused.value.http_status == 405 and refused.value.body["allowed"] == ["DELETE", "GET", "POST"]
    check_access("HEAD", "/mypages", ALICE)  # HEAD is a GET


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def test_the_rate_limit_is_a_token_bucket_that_says_how_long_to_wait():
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


def test_routes_match_whole_path_segments():
    assert route_of("/orders").service == "order" and route_of("/orders/7").service == "order"
    assert route_of("/ordersx") is None and route_of("/") is None
    assert route_of("/order-requests/r1").service == "order-worker"
    assert len({r.prefix for r in ROUTES}) == len(ROUTES)


def test_the_gateway_sends_to_ready_instances_first_in_turn():
    from api.gateway.proxy import Targets
    targets = Targets("order", ["http://a", "http://b", "http://c"])
    firsts = [targets.in_order()[0] for _ in range(6)]
    assert sorted(set(firsts)) == ["http://a", "http://b", "http://c"]  # round-robin
    targets.ready.discard("http://b")
    for _ in range(4):
        order = targets.in_order()
        assert order[-1] == "http://b" and sorted(order) == ["http://a", "http://b", "http://c"]
    targets.ready.clear()
    assert len(targets.in_order()) == 3  # none ready: try them all rather than refuse
