"""Helpers for the Faust web views of bread's workers."""
from __future__ import annotations

from typing import Any, Callable

import faust
from faust.web import Request, Response, View
from yarl import URL


def base_url(request: Request) -> str:
    """The origin the caller used: the gateway's when it forwarded the request, else this worker's."""
    host = request.headers.get("X-Forwarded-Host") or request.headers.get("Host") or request.url.host
    proto = request.headers.get("X-Forwarded-Proto") or request.url.scheme
    return f"{proto}://{host}"


def error(view: View, status: int, message: str, **extra: Any) -> Response:
    return view.json({"error": message, **extra}, status=status)


def serve_rows(app: faust.App, table: faust.Table, path: str, not_found: str,
               render: Callable[[dict[str, Any], Request], dict[str, Any]]) -> None:
    """GET `path` (with an {orderId} in it): the table's row for that order, from whichever worker owns it."""

    class RowView(View):
        @app.table_route(table=table, match_info="orderId")
        async def get(self, request: Request, orderId: str) -> Response:  # noqa: N803 - the route's name
            row = table.get(orderId)
            if row is None:
                return error(self, 404, not_found.format(orderId=orderId))
            return self.json(render(row, request))

    app.page(path, name=f"{table.name}-row")(RowView)


def is_this_worker(app: faust.App, url: URL | str) -> bool:
    url, me = URL(str(url)), URL(app.conf.canonical_url)
    return (url.host, url.port) == (me.host, me.port)


async def forward_to_owner(app: faust.App, table: faust.Table, key: str, request: Request, body: bytes) -> Response | None:
    """Send a request with a body to the worker owning `key` in `table`; None when that is this worker.

    Faust's own table_route forwards without the body, so it serves GETs only.
    """
    owner = app.router.key_store(table.name, key)
    if is_this_worker(app, owner):
        return None
    async with app.http_client.request(
        request.method, request.url.with_host(owner.host).with_port(owner.port), data=body,
        headers={"Content-Type": "application/json", **{k: v for k, v in request.headers.items()
                                                         if k.lower().startswith("x-")}},
    ) as response:
        return app.web.text(await response.text(), content_type=response.content_type, status=response.status)
