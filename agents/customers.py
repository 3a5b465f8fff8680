"""Who a customer is, as the gateway tells the services, and what a customer may see.

With authentication on, the gateway resolves the caller's bearer token to a customer id and passes it in
`X-Customer-ID` (after dropping any such header the caller sent); services behind it trust that header
only because they are reachable only through the gateway (ClusterIP services on Kubernetes).
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Any, Mapping

HTTP_HEADER = "X-Customer-ID"
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def may_see(order: Mapping[str, Any], customer: str | None) -> bool:
    """Without a customer (authentication off, or an internal caller) everything; else only one's own orders."""
    return customer is None or order.get("customerId") == customer


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_line(customer: str, token: str) -> str:
    """The tokens file keeps only a digest of each token: the file (a Secret) never holds a usable token."""
    if not CUSTOMER_ID.match(customer):
        raise ValueError("a customer id is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return f"{customer} {token_digest(token)}\n"


def parse_tokens(text: str) -> dict[str, str]:
    """digest -> customer id, from lines `<customer> <sha256 of token>` (blank lines and # comments skipped)."""
    book = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not CUSTOMER_ID.match(parts[0]) or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
            raise ValueError(f"tokens file line {number}: expected '<customer> <sha256 hex of the token>'")
        book[parts[1]] = parts[0]
    return book


class TokenBook:
    """The tokens file, read again whenever it changes (a rotated Kubernetes Secret shows up without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._book: dict[str, str] = {}

    def customer_of(self, token: str) -> str | None:
        self._reload_if_changed()
        # Looked up by digest: timing can tell an attacker nothing about a token, only about its hash.
        return self._book.get(token_digest(token))

    def _reload_if_changed(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._book = None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._book = parse_tokens(self.path.read_text(encoding="utf-8"))
            self._stamp = stamp
