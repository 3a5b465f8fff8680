"""The supervisor that keeps bread's processes running: restarts with a growing back-off, on a fake clock."""
import subprocess
import sys

from ops.supervisor import HUNG_S, MAX_BACKOFF_S, PROBE_EVERY_S, STEADY_S, Supervisor, restart_delay


def test_the_back_off_doubles_up_to_its_limit():
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert restart_delay(50) == MAX_BACKOFF_S


def exits_with(code: int):
    return lambda: subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])


def lives_on():
    """A process that runs until it is stopped (it waits for input that never comes)."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_process_that_dies_is_started_again_after_its_back_off():
    said, clock = [], Clock()
    supervisor = Supervisor(said.append, clock)
    supervisor.start("pay", exits_with(3)).wait()
    supervisor.tend()
    assert said == ["pay exited with code 3; starting it again in 1s"]
    clock.now = 0.5
    supervisor.tend()
    assert supervisor.restarts("pay") == 0  # still waiting
    clock.now = 1.0
    supervisor.tend()
    assert supervisor.restarts("pay") == 1 and said[-1] == "pay started again (restart 1)"
    supervisor.process("pay").wait()
    supervisor.tend()
    assert said[-1] == "pay exited with code 3; starting it again in 2s"  # died again at once: twice the wait


def test_a_process_that_ran_steadily_is_restarted_after_the_shortest_wait():
    said, clock = [], Clock()
    supervisor = Supervisor(said.append, clock)
    supervisor.start("bakery", exits_with(1)).wait()
    for now in (0.0, 1.0):
        clock.now = now
        supervisor.tend()
    supervisor.process("bakery").wait()
    clock.now = 1.0 + STEADY_S
    supervisor.tend()
    assert said[-1] == "bakery exited with code 1; starting it again in 1s"


def test_a_stopped_process_is_not_started_again():
    said, clock = [], Clock()
    supervisor = Supervisor(said.append, clock)
    supervisor.start("pay", lives_on)
    assert supervisor.stop("pay") == -15
    supervisor.tend()
    assert said == [] and supervisor.processes() == {}


def test_a_process_that_stops_answering_its_liveness_check_is_killed():
    said, clock, answers = [], Clock(), []
    supervisor = Supervisor(said.append, clock)
    supervisor.start("order-worker", lives_on, alive=lambda: answers.pop(0))
    answers.extend([False, True, False, False])  # starting, alive, then it hangs
    for now in (0.0, PROBE_EVERY_S, 2 * PROBE_EVERY_S):
        clock.now = now
        supervisor.tend()
    assert said == [] and supervisor.process("order-worker").poll() is None
    clock.now = 2 * PROBE_EVERY_S + HUNG_S
    supervisor.tend()
    assert said == [f"order-worker has not been alive for {HUNG_S:.0f}s; killing it"]
    supervisor.tend()
    assert said[-1] == "order-worker exited with code -9; starting it again in 1s"
    supervisor.stop_all(["order-worker"], grace=5)


def test_a_process_still_starting_is_not_judged_by_its_liveness():
    said, clock = [], Clock()
    supervisor = Supervisor(said.append, clock)
    supervisor.start("mypage", lives_on, alive=lambda: False)
    for step in range(100):
        clock.now = step * PROBE_EVERY_S
        supervisor.tend()
    assert said == [] and supervisor.process("mypage").poll() is None
    supervisor.stop_all(["mypage"], grace=5)
