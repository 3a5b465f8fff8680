"""The Idempotency-Key a client sends to make a request safe to repeat."""
from __future__ import annotations

HEADER = "Idempotency-Key"
MAX_LENGTH = 100


def check_key(key: str | None) -> str | None:
    """The key, if it is 1 to 100 printable characters without '/'; absent is fine. ValueError otherwise."""
    if key is not None and not (0 < len(key) <= MAX_LENGTH and key.isprintable() and "/" not in key):
        raise ValueError(f"the {HEADER} must be 1 to {MAX_LENGTH} printable characters, without '/'")
    return key
