"""Who is calling, as the gateway tells the services, and what each kind of caller may see.

With authentication on, the gateway resolves the caller's bearer token to a principal — a name and a role —
and passes both in `X-Principal` and `X-Principal-Role`, after dropping any such headers the caller sent.
Without them a request comes from inside (a service calling another) or through a gateway with authentication
off (locally, the seed's calls): it may do everything, as before roles existed. Services are reachable only
through the gateway and from each other (a NetworkPolicy on Kubernetes), so the headers cannot be forged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

PRINCIPAL_HEADER = "X-Principal"
ROLE_HEADER = "X-Principal-Role"
# The name the principal header had before roles: still dropped from callers and still sent, same value.
CUSTOMER_HEADER = "X-Customer-ID"
HEADERS = (PRINCIPAL_HEADER, ROLE_HEADER, CUSTOMER_HEADER)

CUSTOMER, BAKER, SERVICE, ADMIN = "customer", "baker", "service", "admin"
ROLES = (CUSTOMER, BAKER, SERVICE, ADMIN)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
NAME_RULE = "1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    def headers(self) -> dict[str, str]:
        return {PRINCIPAL_HEADER: self.name, ROLE_HEADER: self.role, CUSTOMER_HEADER: self.name}


class BadPrincipal(ValueError):
    """The principal headers a service got are not ones the gateway sends."""


def parse_principal(name: str, role: str) -> Principal:
    if not NAME.match(name):
        raise BadPrincipal(f"a principal's name is {NAME_RULE}")
    if role not in ROLES:
        raise BadPrincipal(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    return Principal(name, role)


def principal_from(headers: Mapping[str, str]) -> Principal | None:
    """The caller the gateway named, or None for a caller from inside (or with authentication off).
    Half a principal (a name without a role, or the other way round) is refused: no gateway sends one."""
    name, role = headers.get(PRINCIPAL_HEADER), headers.get(ROLE_HEADER)
    if name is None and role is None:
        return None
    if name is None or role is None:
        raise BadPrincipal(f"{PRINCIPAL_HEADER} and {ROLE_HEADER} come together, or neither")
    return parse_principal(name, role)


def may_see(order: Mapping[str, Any], principal: Principal | None) -> bool:
    """A customer sees only their own orders; every other caller (a baker at a ticket, a service, an admin,
    anyone with authentication off) sees what the routes let them reach."""
    return principal is None or principal.role != CUSTOMER or order.get("customerId") == principal.name

