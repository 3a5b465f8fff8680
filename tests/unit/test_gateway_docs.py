"""The gateway's API docs page works offline: every file the page loads comes from the gateway itself (Swagger
UI from the swagger-ui-bundle package), open without a token like the page, and nothing from another origin."""
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.settings import Settings
from api.gateway import init_app


@pytest.fixture
async def gateway(tmp_path):
    settings = Settings.from_env({"GATEWAY_AUTH": "on", "GATEWAY_TOKENS_FILE": str(tmp_path / "tokens"),
                                  "ORDER_ADMISSION": "off"})
    client = TestClient(TestServer(init_app(settings)))
    await client.start_server()
    yield client
    await client.close()


async def test_the_docs_page_loads_only_files_the_gateway_serves_without_a_token(gateway):
    page = await gateway.get("/docs")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "://" not in html, "the page must not load anything from another origin"
    loaded = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js"} <= set(loaded)
    for path in loaded:
        asset = await gateway.get(path)
        assert asset.status == 200, path
        assert len(await asset.read()) > 500, path
    assert (await gateway.get("/docs/swagger-ui-bundle.js")).content_type == "text/javascript"
    document = await gateway.get("/openapi.json")
    assert document.status == 200 and (await document.json())["openapi"].startswith("3.0")


async def test_no_other_file_is_served_from_the_docs_folder(gateway):
    for path in ("/docs/index.html", "/docs/..%2F..%2Fpyproject.toml", "/docs/swagger-ui.js.map"):
        answer = await gateway.get(path)
        assert answer.status in (401, 404), path
