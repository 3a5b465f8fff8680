"""What every context's refusals share: a refusal says in the domain's words what was asked that its rules do not
allow, and carries the facts the asker may want beside it (the order, its status). Each face turns a kind of
refusal into an answer of its own (api/http.py for HTTP); the rules know nothing of those answers."""
from __future__ import annotations

from typing import Any


class Refusal(ValueError):
    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details
