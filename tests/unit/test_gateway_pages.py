"""The gateway's own pages work offline: the web page and the API docs load every file from the gateway itself
(Swagger UI from the swagger-ui-bundle package), open without a token, nothing from another origin; /me says
who a token is; event streams pass through for as long as they last."""
import asyncio
import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.settings import Settings
from api.gateway import init_app
from api.http import STOPPING
from api.tokens import token_line

BAKER_TOKEN = "baker-token-" + "x" * 20


@pytest.fixture
async def gateway(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line("bea", "baker", BAKER_TOKEN))
    settings = Settings.from_env({"GATEWAY_AUTH": "on", "GATEWAY_TOKENS_FILE": str(tokens),
                                  "ORDER_ADMISSION": "off"})
    client = TestClient(TestServer(init_app(settings)))
    await client.start_server()
    yield client
    await client.close()


async def files_of_page(gateway: TestClient, path: str) -> set[str]:
    """The files a page loads, each checked served (without a token); the page names no other origin."""
    page = await gateway.get(path)
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "://" not in html, "the page must not load anything from another origin"
    loaded = {path for path in re.findall(r'(?:src|href)="([^"]+)"', html) if not path.startswith("data:")}
    for file in loaded:
        asset = await gateway.get(file)
        assert asset.status == 200 and len(await asset.read()) > 500, file
    return loaded


async def test_the_web_page_loads_only_files_the_gateway_serves_without_a_token(gateway):
    assert await files_of_page(gateway, "/") == {"/ui/style.css", "/ui/app.js"}
    script = await (await gateway.get("/ui/app.js")).text()
    assert not re.search(r"""(?:fetch|import)\s*\(\s*["'`]https?://""", script), "calls go to the page's own origin"
    assert (await gateway.get("/ui/app.js")).content_type == "text/javascript"


async def test_me_says_who_the_token_is(gateway):
    assert (await gateway.get("/me")).status == 401
    answer = await gateway.get("/me", headers={"Authorization": f"Bearer {BAKER_TOKEN}"})
    assert await answer.json() == {"authentication": "on", "principal": "bea", "role": "baker"}


async def test_with_authentication_off_me_says_so():
    client = TestClient(TestServer(init_app(Settings.from_env({"ORDER_ADMISSION": "off"}))))
    await client.start_server()
    try:
        assert await (await client.get("/me")).json() == {"authentication": "off"}
    finally:
        await client.close()


async def test_the_docs_page_loads_only_files_the_gateway_serves_without_a_token(gateway):
    assert {"/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"} <= await files_of_page(gateway, "/docs")
    assert (await gateway.get("/docs/swagger-ui-bundle.js")).content_type == "text/javascript"
    document = await gateway.get("/openapi.json")
    assert document.status == 200 and (await document.json())["openapi"].startswith("3.0")


async def test_no_other_file_is_served_from_the_page_or_docs_folders(gateway):
    for path in ("/docs/index.html", "/docs/..%2F..%2Fpyproject.toml", "/docs/swagger-ui.js.map",
                 "/ui/index.html", "/ui/..%2Fgateway.py"):
        answer = await gateway.get(path)
        assert answer.status in (401, 404), path


async def slow_events(request: web.Request) -> web.StreamResponse:
    """A Mypage stand-in whose answer takes longer than the route's timeout, a piece every 0.2 s."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for n in range(8):
        await response.write(f"id: 0:{n}\nevent: row\ndata: {{\"n\": {n}}}\n\n".encode())
        await asyncio.sleep(0.2)  # ok-sleep: the stand-in's pace, what the test is about
    return response


@pytest.fixture
async def behind_a_slow_mypage():
    upstream = TestServer(web.Application())
    upstream.app.router.add_get("/mypages/stream", slow_events)
    await upstream.start_server()
    settings = Settings.from_env({"ORDER_ADMISSION": "off", "MYPAGE_URL": str(upstream.make_url("")).rstrip("/"),
                                  "GATEWAY_TIMEOUT_MYPAGES_S": "0.5", "STREAM_HEARTBEAT_S": "0.5"})
    client = TestClient(TestServer(init_app(settings)))
    await client.start_server()
    yield client
    await client.close()
    await upstream.close()


async def test_an_event_stream_passes_through_as_long_as_it_lasts(behind_a_slow_mypage):
    answer = await behind_a_slow_mypage.get("/mypages/stream", headers={"Accept": "text/event-stream"})
    assert answer.status == 200 and answer.content_type == "text/event-stream"
    first = await answer.content.readuntil(b"\n\n")
    assert first.startswith(b"id: 0:0\n")  # passed on as it came, not when the answer ended
    rest = await answer.read()
    assert rest.count(b"event: row") == 7  # 1.6 s in all, past the route's 0.5 s


async def test_a_request_for_no_stream_keeps_the_routes_timeout(behind_a_slow_mypage):
    answer = await behind_a_slow_mypage.get("/mypages/stream")
    with pytest.raises(aiohttp.ClientPayloadError):  # cut off mid-answer at the route's 0.5 s
        await answer.read()


async def test_an_event_stream_ends_when_the_gateway_begins_to_stop(behind_a_slow_mypage):
    answer = await behind_a_slow_mypage.get("/mypages/stream", headers={"Accept": "text/event-stream"})
    await answer.content.readuntil(b"\n\n")
    behind_a_slow_mypage.app[STOPPING].set()  # SIGTERM: the watchers go on at another instance
    rest = await answer.read()
    assert rest.count(b"event: row") < 7  # ended, not held open until the stream's own end
