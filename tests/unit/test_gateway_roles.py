"""Roles in-process (aiohttp's test client): the gateway with authentication on in front of a service that
echoes what reached it, and a service's own check of the principal headers."""
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.principals import ROLES
from agents.settings import Settings, url_variable
from api.gateway import init_app
from api.http import json_response, service_app
from api.routes import authorized, principal_of
from api.tokens import token_line
from ops.cli import SERVICES
from tests.roles import EXPECTED

TOKENS = {role: f"{role}-token-{'x' * 20}" for role in ROLES}


async def echo(request: web.Request) -> web.Response:
    """What a service behind the gateway got: the request and the principal headers."""
    return json_response({"method": request.method, "path": request.path,
                          "headers": {k: v for k, v in request.headers.items() if k.startswith("X-")}})


@pytest.fixture
async def gateway(tmp_path):
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(upstream)
    await server.start_server()
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(token_line(f"the-{role}", role, token) for role, token in TOKENS.items()))
    settings = Settings.from_env({
        **{url_variable(s): str(server.make_url("")).rstrip("/") for s in SERVICES if s != "gateway"},
        "GATEWAY_AUTH": "on", "GATEWAY_TOKENS_FILE": str(tokens), "GATEWAY_RATE_LIMIT_RPS": "0"})
    client = TestClient(TestServer(init_app(settings)))
    await client.start_server()
    yield client
    await client.close()
    await server.close()


def bearer(role: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}", **more}


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_reaches_only_what_the_table_allows(gateway, role):
    for (method, path), roles in EXPECTED.items():
        response = await gateway.request(method, path, headers=bearer(role),
                                         json={"orderId": 1} if method == "POST" else None)
        body = await response.json()
        if role in roles:
            assert response.status == 200 and body["path"] == path, (method, path, body)
        else:
            assert response.status == 403, (method, path, body)
            assert body["role"] == role and set(body["allowedRoles"]) == roles and role in body["error"]


async def test_only_the_gateway_says_who_is_calling(gateway):
    forged = {"X-Principal": "the-admin", "X-Principal-Role": "admin", "X-Customer-ID": "the-admin"}
    response = await gateway.get("/mypages", headers=bearer("customer", **forged))
    seen = (await response.json())["headers"]
    assert (seen["X-Principal"], seen["X-Principal-Role"], seen["X-Customer-ID"]) == (
        "the-customer", "customer", "the-customer")
    assert "Authorization" not in seen


async def test_a_call_without_a_known_token_or_a_known_method_is_refused(gateway):
    for headers in ({}, {"Authorization": "Bearer nobody"}):
        response = await gateway.post("/orders", json={}, headers=headers)
        assert response.status == 401 and "bearer token" in (await response.json())["error"]
    response = await gateway.put("/orders/1", headers=bearer("admin"))
    assert response.status == 405 and (await response.json())["allowed"] == ["DELETE", "GET", "POST"]


async def test_without_authentication_nobody_is_named():
    upstream = web.Application()
    upstream.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(upstream)
    await server.start_server()
    client = TestClient(TestServer(init_app(Settings.from_env({"PAY_URL": str(server.make_url("")).rstrip("/")}))))
    await client.start_server()
    try:
        response = await client.post("/payments", json={}, headers={"X-Principal": "x", "X-Principal-Role": "admin"})
        assert response.status == 200
        assert not {"X-Principal", "X-Principal-Role", "X-Customer-ID"} & set((await response.json())["headers"])
    finally:
        await client.close()
        await server.close()


async def service_answer(headers: dict[str, str], method: str = "POST", path: str = "/payments") -> tuple[int, dict]:
    """A service's answer with bread's middleware and its own principal check (as pay and order have)."""
    async def who(request: web.Request) -> web.Response:
        principal = principal_of(request)
        return json_response({"principal": principal and [principal.name, principal.role]})

    async def ready(_: web.Application) -> list[str]:
        return []

    app = service_app("pay", Settings(), ready, inner=(authorized,))
    app.router.add_route("*", "/payments", who)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        response = await client.request(method, path, headers=headers)
        return response.status, await response.json()
    finally:
        await client.close()


@pytest.mark.parametrize("headers, status, said", [
    ({}, 200, None),                                                               # from inside, or auth off
    ({"X-Principal": "ops", "X-Principal-Role": "service"}, 200, "ops"),
    ({"X-Principal": "alice", "X-Principal-Role": "customer"}, 403, "customer"),  # went around the gateway
    ({"X-Principal": "alice"}, 400, "together"),
    ({"X-Principal": "alice", "X-Principal-Role": "root"}, 400, "role"),
    ({"X-Principal": "al ice", "X-Principal-Role": "admin"}, 400, "name"),
])
async def test_a_service_checks_the_principal_headers_it_relies_on(headers, status, said):
    answered, body = await service_answer(headers)
    assert answered == status, body
    if status == 200:
        assert body["principal"] == (said and [said, headers["X-Principal-Role"]])
    else:
        assert said in body["error"]
