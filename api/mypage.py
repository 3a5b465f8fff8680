"""Mypage's face (8084), Faust web views over the `mypages` table: the list in HAL shape, and one row."""
import asyncio

import aiohttp
from faust.web import Request, Response

from agents.mypage.projection import page_of, row_view
from agents.mypage.worker import mypages, worker
from agents.principals import may_see
from api.faustweb import GuardedView, base_url, error, is_this_worker, serve_rows
from api.routes import principal_of

app = worker.app
MAX_PAGE_SIZE = 1000


def _page_params(request: Request) -> tuple[int, int]:
    try:
        page, size = int(request.query.get("page", 0)), int(request.query.get("size", 20))
    except ValueError:
        raise ValueError("'page' and 'size' must be whole numbers") from None
    if page < 0 or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"'page' must be 0 or more and 'size' between 1 and {MAX_PAGE_SIZE}")
    return page, size


async def all_rows() -> list[dict]:
    """Every row, from every worker that holds a share of the table (each answers for its own partitions)."""
    rows: list[dict] = []
    for owner in app.router.table_metadata(mypages.name):
        if is_this_worker(app, owner):
            rows.extend(mypages.values())
            continue
        async with app.http_client.get(f"{owner}/mypages", params={"scope": "local"},
                                       timeout=aiohttp.ClientTimeout(total=10)) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"{owner} answered {response.status}")
            rows.extend((await response.json())["rows"])
    return rows


@app.page("/mypages")
class MypageList(GuardedView):
    async def get(self, request: Request) -> Response:
        if request.query.get("scope") == "local":  # another mypage worker gathering the list
            return self.json({"rows": [row for row in mypages.values() if may_see(row, principal_of(request))]})
        try:
            page, size = _page_params(request)
        except ValueError as exc:
            return error(self, 400, str(exc))
        try:
            rows = await all_rows()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return error(self, 503, f"a mypage worker is unavailable: {exc or 'timeout'}")
        rows = [row for row in rows if may_see(row, principal_of(request))]
        return self.json(page_of(rows, page, size, base_url(request)))


serve_rows(app, mypages, "/mypages/{orderId}", "no mypage for order {orderId}", lambda row, request: row_view(row, base_url(request)))
