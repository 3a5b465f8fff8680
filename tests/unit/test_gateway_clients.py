"""Who the gateway takes a caller to be: the direct peer, or behind a trusted proxy the client it forwards for
— for the rate limit and the access log. The rules, and the gateway in-process (aiohttp's test client)."""
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.settings import Settings, networks
from api.gateway import init_app
from api.gateway.guard import client_address

PROXIES = networks("10.0.0.0/8, 192.0.2.7")


@pytest.mark.parametrize("peer, forwarded_for, client", [
    ("203.0.113.5", None, "203.0.113.5"),                          # no proxy
    ("203.0.113.5", "198.51.100.1", "203.0.113.5"),                 # an untrusted peer's header is not believed
    ("10.1.2.3", "198.51.100.1", "198.51.100.1"),                   # behind the ingress controller
    ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),          # what the client wrote itself does not count
    ("10.1.2.3", "198.51.100.1, 192.0.2.7", "198.51.100.1"),        # two trusted proxies in a row
    ("10.1.2.3", None, "10.1.2.3"),                                  # a trusted proxy forwarding for nobody
    ("10.1.2.3", "10.9.9.9", "10.9.9.9"),                            # only trusted hops: the farthest
    ("10.1.2.3", "not-an-address", "not-an-address"),
    (None, None, "unknown"),
])
def test_the_client_is_the_nearest_address_no_trusted_proxy_vouches_for(peer, forwarded_for, client):
    assert client_address(peer, forwarded_for, PROXIES) == client


def test_trusted_proxies_are_none_unless_set_well():
    assert Settings().gateway_trusted_proxies == ()
    with pytest.raises(SystemExit, match="GATEWAY_TRUSTED_PROXIES"):
        Settings.from_env({"GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, the-ingress"})


async def answers(trusted: str, forwarded_for: list[str]) -> list[int]:
    """The statuses of one POST /orders per X-Forwarded-For value, sent from 127.0.0.1, allowed one request
    per client; nothing listens behind the gateway, so what gets past the limit answers 502 or 503."""
    settings = Settings.from_env({"GATEWAY_TRUSTED_PROXIES": trusted, "GATEWAY_RATE_LIMIT_RPS": "0.001",
                                  "GATEWAY_RATE_LIMIT_BURST": "1",
                                  "ORDER_URL": "http://127.0.0.1:9"})  # discard port: nobody there
    client = TestClient(TestServer(init_app(settings)))
    await client.start_server()
    try:
        statuses = []
        for address in forwarded_for:
            response = await client.post("/orders", json={"item": "cake", "qty": 1},
                                         headers={"X-Forwarded-For": address})
            statuses.append(response.status)
        return statuses
    finally:
        await client.close()


async def test_behind_a_trusted_proxy_each_client_has_its_own_rate_limit():
    statuses = await answers("127.0.0.1", ["198.51.100.1", "198.51.100.2", "198.51.100.1"])
    assert statuses[2] == 429 and 429 not in statuses[:2]


async def test_without_trusted_proxies_a_forwarded_for_header_changes_nothing():
    statuses = await answers("", ["198.51.100.1", "198.51.100.2"])
    assert statuses[1] == 429 and statuses[0] != 429
