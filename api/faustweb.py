"""Helpers for the Faust web views of bread's workers."""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import faust
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from yarl import URL

from agents.principals import may_see
from api.http import JsonError
from api.routes import PRINCIPAL, checked_caller, principal_of


def base_url(request: Request) -> str:
    """The origin the caller used: the gateway's when it forwarded the request, else this worker's."""
    host = request.headers.get("X-Forwarded-Host") or request.headers.get("Host") or request.url.host
    proto = request.headers.get("X-Forwarded-Proto") or request.url.scheme
    return f"{proto}://{host}"


def error(view: View, status: int, message: str, **extra: Any) -> Response:
    return view.json({"error": message, **extra}, status=status)


class GuardedView(View):
    """A view that checks the principal the gateway named against the access table before anything else."""

    async def dispatch(self, request: Any) -> Any:
        try:
            request[PRINCIPAL] = checked_caller(request.method, request.path, request.headers)
        except JsonError as exc:
            return self.json(exc.body, status=exc.http_status)
        return await super().dispatch(request)


MAX_WAIT_S = 30.0


def serve_rows(app: faust.App, table: faust.Table, path: str, not_found: str,
               render: Callable[[dict[str, Any], Request], dict[str, Any]], key: str = "orderId",
               customers_own_rows: bool = True, wait_for: Callable[[str, float], Awaitable[None]] | None = None,
               waited: Callable[[dict | None], bool] | None = None) -> None:
    """GET `path` (with a {key} in it): the table's row for that key, from whichever worker owns it. Where
    rows belong to customers, a customer named by the gateway sees only their own; others' are not found.
    With `wait_for`, `?wait=S` holds the answer until `wait_for(key, S)` returns: a row `waited` is looking for
    has come, or the time is up."""

    class RowView(GuardedView):
        async def get(self, request: Request, **match: str) -> Response:
            # What Faust's table_route does, and a JSON 503 where the owner cannot be reached (it left,
            # and the group has not rebalanced yet) instead of a bare 500.
            try:
                return await app.router.route_req(table.name, match[key], self.web, request)
            except SameNode:
                pass
            except Exception as exc:  # noqa: BLE001 - starting, rebalancing, or the owner is gone: all transient
                return error(self, 503, f"the worker holding {key} {match[key]} is unavailable "
                                        f"({type(exc).__name__}: {exc}); try again")
            if wait_for is not None and "wait" in request.query:
                try:
                    seconds = float(request.query["wait"])
                except ValueError:
                    seconds = -1.0
                if not 0 <= seconds <= MAX_WAIT_S:
                    return error(self, 400, f"'wait' must be seconds from 0 to {MAX_WAIT_S:.0f}")
                if waited is None or not waited(table.get(match[key])):
                    await wait_for(match[key], seconds)
            row = table.get(match[key])
            if row is None or (customers_own_rows and not may_see(row, principal_of(request))):
                return error(self, 404, not_found.format(**match))
            return self.json(render(row, request))

    app.page(path, name=f"{path.strip('/').split('/')[0]}-row")(RowView)


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
