"""Mypage's face (8084), Faust web views over the `mypages` table: the list in HAL shape, one row, and the live
stream of the rows' changes."""
import asyncio
from typing import Any

import aiohttp
from faust.web import Request, Response

from agents.events import MAX_ORDER_ID
from agents.mypage.projection import MypageRow, Share, page_of, row_view, share_of
from agents.principals import may_see
from agents.runtime.context_app import ContextApp
from agents.runtime.mypage import MypageAgents
from agents.settings import Settings
from api.faustweb import GuardedView, base_url, gather, serve_changes, serve_rows
from api.http import JsonError
from api.routes import principal_of

MAX_PAGE_SIZE = 1000


def _page_params(request: Request) -> tuple[int, int]:
    try:
        page, size = int(request.query.get("page", 0)), int(request.query.get("size", 20))
    except ValueError:
        raise ValueError("'page' and 'size' must be whole numbers") from None
    if not 0 <= page <= MAX_ORDER_ID or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"'page' must be from 0 to {MAX_ORDER_ID} and 'size' between 1 and {MAX_PAGE_SIZE}")
    return page, size


def as_json(share: Share) -> dict[str, Any]:
    """A worker's share of a page as it answers another worker gathering one."""
    rows, total = share
    return {"rows": [row.to_json() for row in rows], "total": total}


def build(settings: Settings) -> ContextApp:
    """The Mypage worker with its web views."""
    mypage = MypageAgents(settings)
    app, mypages = mypage.context_app.app, mypage.mypages

    def local_share(request: Request, wanted: int) -> Share:
        """This worker's share of a page: the newest rows the caller may see, and how many there are."""
        principal = principal_of(request)
        return share_of((MypageRow.from_json(row) for row in mypages.values() if may_see(row, principal)), wanted)

    @app.page("/mypages")
    class MypageList(GuardedView):
        async def get(self, request: Request) -> Response:
            try:
                page, size = _page_params(request)
            except ValueError as exc:
                raise JsonError(400, str(exc)) from None
            if request.query.get("scope") == "local":  # another mypage worker gathering a page
                return self.json(as_json(local_share(request, (page + 1) * size)))
            try:
                gathered = await gather(app, mypages, request, {"page": str(page), "size": str(size)},
                                        lambda: as_json(local_share(request, (page + 1) * size)))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise JsonError(503, f"a mypage worker is unavailable: {exc or 'timeout'}") from None
            shares = [(list(map(MypageRow.from_json, share["rows"])), share["total"]) for share in gathered]
            return self.json(page_of(shares, page, size, base_url(request)))

    serve_changes(app, mypage.context_app.feed(mypages), "/mypages/stream", settings.stream_heartbeat_s,
                  may_see, lambda row, request: row_view(MypageRow.from_json(row), base_url(request)))
    serve_rows(app, mypages, "/mypages/{orderId}", "no mypage for order {orderId}",
               lambda row, request: row_view(MypageRow.from_json(row), base_url(request)))
    return mypage.context_app
