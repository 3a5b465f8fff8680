"""bread's public routes: which service owns each path, and which roles may call it with which method.

The gateway passes requests on by the first table and refuses by the second; each service checks the second
again for the principal the gateway named (`authorized`, `checked_caller`), so a request that went around the
gateway gains nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping

from aiohttp import web

from agents.principals import ADMIN, BAKER, CUSTOMER, ROLES, SERVICE, BadPrincipal, Principal, principal_from
from api.http import JsonError


@dataclass(frozen=True)
class Route:
    prefix: str
    service: str  # its timeout: GATEWAY_TIMEOUT_<PREFIX>_S (agents/settings.py)


ROUTES = (
    Route("/orders", "order"),
    Route("/payments", "pay"),
    Route("/bakeries", "bakery"),
    Route("/mypages", "mypage"),
    Route("/order-requests", "order-worker"),
    Route("/menu", "order"),
    Route("/sagas", "order-worker"),
    Route("/dead-letters", "order-worker"),
)

# Who may do what, per route and method. A customer reaches only their own orders (the services filter by the
# principal); money moves only through the saga, so pay's routes are for operations, and a refund of an order
# the bakery confirmed is an admin's alone, with a reason (pay checks that, as only it knows the order's state).
ACCESS: Mapping[tuple[str, str], frozenset[str]] = {
    ("/orders", "POST"): frozenset({CUSTOMER, SERVICE, ADMIN}),
    ("/orders", "GET"): frozenset({CUSTOMER, SERVICE, ADMIN}),
    ("/orders", "DELETE"): frozenset({CUSTOMER, SERVICE, ADMIN}),
    ("/order-requests", "GET"): frozenset({CUSTOMER, SERVICE, ADMIN}),
    ("/menu", "GET"): frozenset(ROLES),
    ("/mypages", "GET"): frozenset({CUSTOMER, SERVICE, ADMIN}),
    ("/bakeries", "GET"): frozenset({BAKER, SERVICE, ADMIN}),
    ("/bakeries", "POST"): frozenset({BAKER, ADMIN}),
    ("/payments", "GET"): frozenset({SERVICE, ADMIN}),
    ("/payments", "POST"): frozenset({SERVICE, ADMIN}),
    ("/sagas", "GET"): frozenset({SERVICE, ADMIN}),  # the operators' view of every order
    ("/dead-letters", "GET"): frozenset({SERVICE, ADMIN}),
    ("/dead-letters", "POST"): frozenset({ADMIN}),  # a replay sends a message again: a person decides it
}


def roles_table() -> str:
    """The access table as Markdown, one row per route and method (the README shows it)."""
    lines = ["| route | method | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
    for (prefix, method), roles in ACCESS.items():
        lines.append(f"| `{prefix}` | {method} | " + " | ".join("yes" if r in roles else "—" for r in ROLES) + " |")
    return "\n".join(lines)


def route_of(path: str) -> Route | None:
    for route in ROUTES:
        if path == route.prefix or path.startswith(route.prefix + "/"):
            return route
    return None


def check_access(method: str, path: str, principal: Principal | None) -> None:
    """Answer 403 (405 for a method no role has) unless the principal may call `method path`. Without a
    principal (authentication off, or a caller from inside) every route is open, as before roles."""
    route = route_of(path)
    if principal is None or route is None:
        return
    method = "GET" if method == "HEAD" else method
    methods = sorted(m for (prefix, m) in ACCESS if prefix == route.prefix)
    roles = ACCESS.get((route.prefix, method))
    if roles is None:
        raise JsonError(405, f"{route.prefix} takes {', '.join(methods)}, not {method}", allowed=methods)
    if principal.role not in roles:
        raise JsonError(403, f"a {principal.role} may not {method} {route.prefix}", role=principal.role,
                        allowedRoles=sorted(roles))


PRINCIPAL = web.RequestKey("principal", Principal | None)  # who the gateway said is calling


def checked_caller(method: str, path: str, headers: Mapping[str, str]) -> Principal | None:
    """A service's own check of the principal the gateway named, against the same access table."""
    try:
        principal = principal_from(headers)
    except BadPrincipal as exc:
        raise JsonError(400, str(exc)) from None
    check_access(method, path, principal)
    return principal


def principal_of(request: web.Request) -> Principal | None:
    return request[PRINCIPAL]


@web.middleware
async def authorized(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    request[PRINCIPAL] = checked_caller(request.method, request.path, request.headers)
    return await handler(request)
