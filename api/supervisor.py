"""Keeping bread's processes running, as Kubernetes would: a process that dies is started again, after a
back-off that grows while it keeps dying, and every exit and restart is said.

`bread up` supervises the local broker and every service with it; the end-to-end tests supervise their own
system with it while they kill processes.
"""
from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STEADY_S = 60.0  # a process that ran this long counts as healthy again: its next restart waits the least

Launch = Callable[[], subprocess.Popen]


def restart_delay(crashes: int) -> float:
    """How long to wait before starting a process again after its `crashes`-th exit in a row (1, 2, 3 …)."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, crashes - 1))


@dataclass
class Child:
    name: str
    launch: Launch
    process: subprocess.Popen
    started_at: float
    crashes: int = 0            # exits in a row, each within STEADY_S of its start
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._say = say
        self._clock = clock
        self._children: dict[str, Child] = {}

    def start(self, name: str, launch: Launch) -> subprocess.Popen:
        """Start a process and keep it running from now on."""
        self._children[name] = Child(name, launch, launch(), self._clock())
        return self._children[name].process

    def process(self, name: str) -> subprocess.Popen:
        return self._children[name].process

    def processes(self) -> dict[str, subprocess.Popen]:
        return {name: child.process for name, child in self._children.items()}

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    def tend(self) -> None:
        """Notice the processes that died and start those whose back-off has passed. Call it often."""
        now = self._clock()
        for child in self._children.values():
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_at is None:
                child.crashes = 1 if now - child.started_at >= STEADY_S else child.crashes + 1
                child.restart_at = now + restart_delay(child.crashes)
                self._say(f"{child.name} exited with code {code}; starting it again in "
                          f"{restart_delay(child.crashes):.0f}s")
            elif now >= child.restart_at:
                child.process, child.started_at, child.restart_at = child.launch(), now, None
                child.restarts += 1
                self._say(f"{child.name} started again (restart {child.restarts})")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop a process and supervise it no more; its exit code. SIGKILL after `timeout` (TimeoutError)."""
        process = self._children.pop(name).process
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise TimeoutError(f"{name} did not stop within {timeout}s of signal {sig}") from None

    def stop_all(self, names: list[str], grace: float) -> None:
        """Stop the named processes together, each SIGTERM then SIGKILL past `grace`; supervise them no more."""
        processes = [self._children.pop(n).process for n in names if n in self._children]
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = self._clock() + grace
        for process in processes:
            try:
                process.wait(max(0.1, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
