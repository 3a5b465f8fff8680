"""The gateway's bearer tokens: who each one stands for, and with what role.

The tokens file (a Secret on Kubernetes) holds one `<name> <role> <sha256 of the token>` per line, so it never
holds a usable token. Lines written before roles existed, `<name> <sha256>`, still count: a customer's.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

from agents.principals import CUSTOMER, BadPrincipal, Principal, parse_principal

DIGEST = re.compile(r"^[0-9a-f]{64}$")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_line(name: str, role: str, token: str) -> str:
    principal = parse_principal(name, role)
    return f"{principal.name} {principal.role} {token_digest(token)}\n"


def parse_tokens(text: str) -> dict[str, Principal]:
    """digest -> principal (blank lines and # comments skipped)."""
    book = {}
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) == 2:  # written before roles
            parts = [parts[0], CUSTOMER, parts[1]]
        try:
            if len(parts) != 3 or not DIGEST.match(parts[2]):
                raise BadPrincipal("expected '<name> <role> <sha256 hex of the token>'")
            book[parts[2]] = parse_principal(parts[0], parts[1])
        except BadPrincipal as exc:
            raise ValueError(f"tokens file line {number}: {exc}") from None
    return book


class TokenBook:
    """The tokens file, read again whenever it changes (a rotated Kubernetes Secret shows up without a restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._book: dict[str, Principal] = {}

    def principal_of(self, token: str) -> Principal | None:
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
