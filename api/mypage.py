"""Mypage's face (8084), Faust web views over the `mypages` table: the list in HAL shape, and one row."""
from faust.web import Request, Response, View

from agents.mypage.projection import page_of, row_view
from agents.mypage.worker import mypages, worker
from api.faustweb import base_url, error, serve_rows

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


@app.page("/mypages")
class MypageList(View):
    async def get(self, request: Request) -> Response:
        try:
            page, size = _page_params(request)
        except ValueError as exc:
            return error(self, 400, str(exc))
        return self.json(page_of(list(mypages.values()), page, size, base_url(request)))


serve_rows(app, mypages, "/mypages/{orderId}", "no mypage for order {orderId}", lambda row, request: row_view(row, base_url(request)))
