"""Helpers for the Faust web views of bread's workers."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import aiohttp
import faust
from aiohttp import web
from faust.exceptions import SameNode
from faust.web import Request, Response, View
from yarl import URL

from agents.principals import HEADERS as PRINCIPAL_HEADERS
from agents.principals import Principal, may_see
from agents.refusal import Refusal
from agents.runtime import tracing
from agents.runtime.feed import BadPosition, Change, ChangelogFeed, Position, parse_position, position_text, stream
from agents.runtime.rows import Rows
from api.http import JsonError, matched_route, refusal
from api.routes import PRINCIPAL, checked_caller, principal_of


def base_url(request: Request) -> str:
    """The origin the caller used: the gateway's when it forwarded the request, else this worker's."""
    host = request.headers.get("X-Forwarded-Host") or request.headers.get("Host") or request.url.host
    proto = request.headers.get("X-Forwarded-Proto") or request.url.scheme
    return f"{proto}://{host}"


class GuardedView(View):
    """A view that checks the principal the gateway named against the access table before anything else, and
    answers what its handler raised — a JsonError, or a refusal by a context's rules — as the aiohttp services
    do (api/http.py)."""

    async def dispatch(self, request: Any) -> Any:
        with tracing.span(f"{request.method} {matched_route(request)}", "server", request.headers):
            try:
                request[PRINCIPAL] = checked_caller(request.method, request.path, request.headers)
                return await super().dispatch(request)
            except JsonError as exc:
                return self.json(exc.body, status=exc.http_status, headers=exc.headers)
            except Refusal as refused:
                answer = refusal(refused)
                return self.json(answer.body, status=answer.http_status)


MAX_WAIT_S = 30.0


def serve_rows(app: faust.App, rows: Rows, path: str, not_found: str,
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
                return await app.router.route_req(rows.table.name, match[key], self.web, request)
            except SameNode:
                pass
            except Exception as exc:  # noqa: BLE001 - starting, rebalancing, or the owner is gone: all transient
                raise JsonError(503, f"the worker holding {key} {match[key]} is unavailable "
                                f"({type(exc).__name__}: {exc}); try again") from None
            if wait_for is not None and "wait" in request.query:
                try:
                    seconds = float(request.query["wait"])
                except ValueError:
                    seconds = -1.0
                if not 0 <= seconds <= MAX_WAIT_S:
                    raise JsonError(400, f"'wait' must be seconds from 0 to {MAX_WAIT_S:.0f}")
                if waited is None or not waited(rows.get(match[key])):
                    await wait_for(match[key], seconds)
            row = rows.get(match[key])
            if row is None or (customers_own_rows and not may_see(row, principal_of(request))):
                raise JsonError(404, not_found.format(**match))
            return self.json(render(row, request))

    app.page(path, name=f"{path.strip('/').split('/')[0]}-row")(RowView)


def is_this_worker(app: faust.App, url: URL | str) -> bool:
    url, me = URL(str(url)), URL(app.conf.canonical_url)
    return (url.host, url.port) == (me.host, me.port)


async def forward_to_owner(app: faust.App, rows: Rows, key: str, request: Request, body: bytes) -> Response | None:
    """Send a request with a body to the worker owning `key` in the table; None when that is this worker.

    Faust's own table_route forwards without the body, so it serves GETs only.
    """
    owner = app.router.key_store(rows.table.name, key)
    if is_this_worker(app, owner):
        return None
    async with app.http_client.request(
        request.method, request.url.with_host(owner.host).with_port(owner.port), data=body,
        headers={"Content-Type": "application/json", **{k: v for k, v in request.headers.items()
                                                         if k.lower().startswith("x-")}},
    ) as response:
        return app.web.text(await response.text(), content_type=response.content_type, status=response.status)


RECONNECT_AFTER_MS = 1000
STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                  "X-Accel-Buffering": "no"}  # nginx (an ingress) would hold the events back otherwise


def server_sent(position: Position, event: str | None = None, data: Any = None) -> bytes:
    """One server-sent event. Without `event`, only the position: the client's Last-Event-ID moves on, and
    nothing is dispatched (the stream's heartbeat)."""
    lines = [f"id: {position_text(position)}"]
    if event is not None:
        lines += [f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


def serve_changes(app: faust.App, feed: ChangelogFeed, path: str, heartbeat_s: float,
                  visible: Callable[[dict[str, Any], Principal | None], bool],
                  render: Callable[[dict[str, Any], Request], dict[str, Any]]) -> None:
    """GET `path`: the table's changes as server-sent events, each row the caller may see as `row` (rendered),
    a deleted one as `deleted`. Every event's id is the caller's position; sent back as Last-Event-ID (or
    `?after=`), the stream goes on from there with nothing missed. `reload` says the client starts afresh (its
    first connection, or a position the feed no longer holds): load the rows, then apply what follows."""

    class ChangesView(GuardedView):
        async def get(self, request: Request) -> web.StreamResponse:
            since = request.headers.get("Last-Event-ID") or request.query.get("after")
            try:
                position = parse_position(since) if since else None
            except BadPosition as exc:
                raise JsonError(400, str(exc)) from None
            principal = principal_of(request)
            changes = stream(feed, position, heartbeat_s)
            try:
                first = await anext(changes)
            except Exception as exc:  # noqa: BLE001 - the feed could not read its topic: a transient state
                raise JsonError(503, f"the feed of changes is unavailable ({type(exc).__name__}: {exc}); "
                                "try again") from None
            response = web.StreamResponse(headers=STREAM_HEADERS)
            await response.prepare(request)
            await response.write(f"retry: {RECONNECT_AFTER_MS}\n\n".encode())
            try:
                await response.write(_as_event(first, principal, request))
                async for seen in changes:
                    await response.write(_as_event(seen, principal, request))
            except ConnectionError:
                pass  # the client left
            finally:
                await changes.aclose()
            return response

    def _as_event(seen: tuple[str, Change | None, Position], principal: Principal | None,
                  request: Request) -> bytes:
        kind, change, position = seen
        if kind == "afresh":
            return server_sent(position, "reload", {})
        if change is None:
            return server_sent(position)
        if not visible(change.row if change.row is not None else {}, principal):
            return b""  # a deletion shows only to those who see every row
        if change.row is None:
            return server_sent(position, "deleted", {"key": change.key})
        return server_sent(position, "row", render(change.row, request))

    app.page(path, name=f"{path.strip('/').replace('/', '-')}")(ChangesView)


async def gather(app: faust.App, rows: Rows, request: Request, params: dict[str, str],
                 local: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every worker's share of a query over a table (each answers for its own partitions), as the JSON a worker
    answers the same path with `scope=local`: this one's from `local()`, the others' asked so, passing on who is
    asking. Raises aiohttp.ClientError or asyncio.TimeoutError when one cannot answer."""
    found = []
    for owner in app.router.table_metadata(rows.table.name):
        if is_this_worker(app, owner):
            found.append(local())
            continue
        async with app.http_client.get(
            f"{owner}{request.path}", params={**params, "scope": "local"},
            headers={k: v for k, v in request.headers.items() if k in PRINCIPAL_HEADERS},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"{owner} answered {response.status}")
            found.append(await response.json())
    return found
