"""The gateway's own pages: bread's web page at / (api/web/: the customer's and the baker's views), and the public
API's OpenAPI document at /openapi.json (api/openapi.yaml) with a Swagger UI page at /docs — served with no network
to the outside (Swagger UI's files come from the swagger-ui-bundle package)."""
from __future__ import annotations

from pathlib import Path

import yaml
from aiohttp import web
from swagger_ui_bundle import swagger_ui_path

from api.http import JsonError

PACKAGE_DATA = Path(__file__).parent.parent  # api/, whose data files are in the image too
DOCS_ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript",
               "favicon-32x32.png": "image/png"}
PAGE_DIR = PACKAGE_DATA / "web"
PAGE_ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
OPENAPI = PACKAGE_DATA / "openapi.yaml"
# What anyone may fetch: no token, no rate limit.
OPEN_PAGES = {"/openapi.json", "/docs", "/", *(f"/docs/{asset}" for asset in DOCS_ASSETS),
              *(f"/ui/{asset}" for asset in PAGE_ASSETS)}
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bread API</title>
<link rel="icon" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
API_DOCUMENT = web.AppKey("api_document", dict)


def mount(app: web.Application) -> None:
    app[API_DOCUMENT] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/{asset}", docs_asset)
    app.router.add_get("/", page)
    app.router.add_get("/ui/{asset}", page_asset)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[API_DOCUMENT])


async def docs(_: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name not in DOCS_ASSETS:
        raise JsonError(404, f"no such file of the API docs: {name}")
    return web.FileResponse(swagger_ui_path / name, headers={"Content-Type": DOCS_ASSETS[name],
                                                             "Cache-Control": "public, max-age=86400"})


async def page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8",
                                                              "Cache-Control": "no-cache"})


async def page_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    if name not in PAGE_ASSETS:
        raise JsonError(404, f"no such file of the web page: {name}")
    return web.FileResponse(PAGE_DIR / name, headers={"Content-Type": PAGE_ASSETS[name], "Cache-Control": "no-cache"})
