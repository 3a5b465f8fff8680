"""Keeping bread's processes running, as Kubernetes would: a process that dies is started again, after a
back-off that grows while it keeps dying; one that was alive and stops answering its liveness check (it
hangs) is killed, and so started again; every exit, kill and restart is said.

`bread up` supervises the local broker and every service with it; the end-to-end tests supervise their own
system with it while they kill processes.
"""
from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STEADY_S = 60.0  # a process that ran this long counts as healthy again: its next restart waits the least
PROBE_EVERY_S = 2.0
HUNG_S = 30.0    # how long a process that was alive may fail its liveness check before it is killed

Launch = Callable[[], subprocess.Popen]
Alive = Callable[[], bool]


def restart_delay(crashes: int) -> float:
    """How long to wait before starting a process again after its `crashes`-th exit in a row (1, 2, 3 …)."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, crashes - 1))


def answers_live(url: str) -> Alive:
    """A liveness check: the service answers `url` (its /live) with 200 within two seconds."""
    def alive() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False
    return alive


@dataclass
class Child:
    name: str
    launch: Launch
    process: subprocess.Popen
    started_at: float
    alive: Alive | None = None  # its liveness check, if it has one
    crashes: int = 0            # exits in a row, each within STEADY_S of its start
    restart_at: float | None = None
    restarts: int = 0
    probed_at: float = float("-inf")
    was_alive: bool = False     # since its last start: a process still starting is not judged
    failing_since: float | None = None

    def started(self, process: subprocess.Popen, now: float) -> None:
        self.process, self.started_at, self.restart_at = process, now, None
        self.was_alive, self.failing_since = False, None


class Supervisor:
    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._say = say
        self._clock = clock
        self._children: dict[str, Child] = {}

    def start(self, name: str, launch: Launch, alive: Alive | None = None) -> subprocess.Popen:
        """Start a process and keep it running (and, with `alive`, answering) from now on."""
        self._children[name] = Child(name, launch, launch(), self._clock(), alive)
        return self._children[name].process

    def process(self, name: str) -> subprocess.Popen:
        return self._children[name].process

    def processes(self) -> dict[str, subprocess.Popen]:
        return {name: child.process for name, child in self._children.items()}

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    def tend(self) -> None:
        """Notice the processes that died or hang, and start those whose back-off has passed. Call it often."""
        now = self._clock()
        for child in self._children.values():
            code = child.process.poll()
            if code is None:
                self._check_alive(child, now)
            elif child.restart_at is None:
                child.crashes = 1 if now - child.started_at >= STEADY_S else child.crashes + 1
                child.restart_at = now + restart_delay(child.crashes)
                self._say(f"{child.name} exited with code {code}; starting it again in "
                          f"{restart_delay(child.crashes):.0f}s")
            elif now >= child.restart_at:
                child.started(child.launch(), now)
                child.restarts += 1
                self._say(f"{child.name} started again (restart {child.restarts})")

    def _check_alive(self, child: Child, now: float) -> None:
        if child.alive is None or now - child.probed_at < PROBE_EVERY_S:
            return
        child.probed_at = now
        if child.alive():
            child.was_alive, child.failing_since = True, None
            return
        if not child.was_alive:
            return
        if child.failing_since is None:
            child.failing_since = now
        elif now - child.failing_since >= HUNG_S:
            self._say(f"{child.name} has not been alive for {now - child.failing_since:.0f}s; killing it")
            child.process.kill()
            child.process.wait()

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
