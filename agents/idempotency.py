"""The Idempotency-Key a client sends to make a request safe to repeat."""
from __future__ import annotations

import re

from agents.refusal import Refusal

HEADER = "Idempotency-Key"
# It names a path (/order-requests/{key}) and a Kafka key: plain URL-safe characters only, as the OpenAPI
# document says (api/openapi.yaml).
KEY = re.compile(r"^[A-Za-z0-9._:=+~-]{1,100}$")


class InvalidKey(Refusal):
    """An Idempotency-Key that cannot be one."""


def parse_key(key: str | None) -> str | None:
    """The key, if it is 1 to 100 letters, digits or . _ : = + ~ -; absent is fine. InvalidKey otherwise."""
    if key is not None and not KEY.match(key):
        raise InvalidKey(f"the {HEADER} must be 1 to 100 letters, digits or . _ : = + ~ -")
    return key


class KeyUsedBefore(Refusal):
    """An Idempotency-Key sent before with another request: the first one stands, this one is refused."""
