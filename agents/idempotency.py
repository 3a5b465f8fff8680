"""The Idempotency-Key a client sends to make a request safe to repeat."""
from __future__ import annotations

import re

HEADER = "Idempotency-Key"
# It names a path (/order-requests/{key}) and a Kafka key: plain URL-safe characters only, as the OpenAPI
# document says (api/openapi.yaml).
KEY = re.compile(r"^[A-Za-z0-9._:=+~-]{1,100}$")


def parse_key(key: str | None) -> str | None:
    """The key, if it is 1 to 100 letters, digits or . _ : = + ~ -; absent is fine. ValueError otherwise."""
    if key is not None and not KEY.match(key):
        raise ValueError(f"the {HEADER} must be 1 to 100 letters, digits or . _ : = + ~ -")
    return key
