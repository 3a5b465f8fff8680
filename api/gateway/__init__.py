"""The gateway (8088): one entry point that passes each request through to the service owning its path, in
three parts — the proxy and the instances it sends to (proxy.py), who may pass and how often (guard.py: tokens
and roles, body and rate limits, the access log), and the gateway's own pages (pages.py: the web page, the API
document and its docs). The admission of new orders (api/admission.py) is a hook on the order route."""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager, nullcontext

from aiohttp import web

from agents.idempotency import HEADER as IDEMPOTENCY_HEADER
from agents.settings import Settings
from api.admission import admitted, watch_the_pipeline
from api.gateway import pages
from api.gateway.guard import LIMITER, TOKENS, RateLimiter, guard, log_access, me
from api.gateway.proxy import HOOKS, HTTP, TARGETS, Targets, pass_through, resources
from api.http import Resources, service_app
from api.routes import ROUTES
from api.tokens import TokenBook


def new_orders_wait_their_turn(request: web.Request) -> AbstractAsyncContextManager[None]:
    """New orders wait their turn here, or are refused here: a busy bread spends no second hop on them. A keyed
    request goes on (the edge answers one placed before however busy bread is)."""
    return nullcontext() if IDEMPOTENCY_HEADER in request.headers else admitted(request)


async def ready(app: web.Application) -> list[str]:
    return [] if HTTP in app else ["HTTP client not started"]


def init_app(settings: Settings, watch: Resources = watch_the_pipeline) -> web.Application:
    """The gateway; `watch` opens its watch on how far behind the contexts run (a fake, in tests)."""
    app = service_app("gateway", settings, ready, resources, outer=(log_access,), inner=(guard,))
    app.cleanup_ctx.append(watch)
    app[TOKENS] = TokenBook(settings.tokens_path) if settings.gateway_auth else None
    rate = settings.gateway_rate_limit_rps
    app[LIMITER] = RateLimiter(rate, settings.rate_limit_burst) if rate > 0 else None
    app[TARGETS] = {route.service: Targets(route.service, list(settings.service_urls(route.service)))
                    for route in ROUTES}
    app[HOOKS] = {("POST", "/orders"): new_orders_wait_their_turn}
    pages.mount(app)
    app.router.add_get("/me", me)
    app.router.add_route("*", "/{tail:.*}", pass_through)
    return app
