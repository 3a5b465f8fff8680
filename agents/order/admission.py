"""Admission at the order edge: take new orders only as fast as the saga can see them through.

Past its capacity bread would otherwise take every order and let each wait longer than the one before: the
contexts downstream fall behind, and every customer waits for a confirmation that comes later and later. So
the edge watches how far behind they run (the delay of the events they handle) and, once that passes
`shed_from_s`, refuses a share of new orders at once — 503 with Retry-After and the reason — growing to every
new order at `shed_all_s`. Between the two the share refused grows in step with the delay, so the delay
settles where the orders taken are as many as the contexts handle, instead of swinging between all and none.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


class Busy(Exception):
    """A new order refused because the saga runs too far behind; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Admission:
    shed_from_s: float
    shed_all_s: float

    def share_refused(self, delay_s: float) -> float:
        """The share of new orders to refuse when the contexts run `delay_s` behind: 0 up to `shed_from_s`,
        1 from `shed_all_s`, in proportion between."""
        if delay_s <= self.shed_from_s:
            return 0.0
        if delay_s >= self.shed_all_s:
            return 1.0
        return (delay_s - self.shed_from_s) / (self.shed_all_s - self.shed_from_s)


def check_admitted(admission: Admission, delay_s: float, draw: float) -> None:
    """Refuse (Busy) a new order when `draw`, uniform in [0, 1), falls in the share to refuse."""
    if draw < admission.share_refused(delay_s):
        raise Busy(f"bread is busy: orders take {delay_s:.1f}s longer than usual to be confirmed; "
                   "this order was not taken, try again later", retry_after=max(1, math.ceil(delay_s)))
