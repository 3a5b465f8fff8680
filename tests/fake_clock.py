"""A clock a test moves by hand, for the rules that read the time (breaker, bulkhead, door, stalls)."""


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
