"""maskweb.runner.Supervisor: a child that dies is started again after a pause that doubles
while it keeps dying, and every death and restart is logged. Real child processes; the clock
is the test's, so the pauses are checked without waiting for them."""

from __future__ import annotations

import subprocess
import sys

from maskweb import runner


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def short_lived() -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait(timeout=30)
    return process


def test_a_dying_child_is_started_again_with_a_doubling_pause_and_logged():
    clock, log = Clock(), []
    supervisor = runner.Supervisor(log.append, clock)
    starts: list[float] = []

    def start() -> subprocess.Popen[bytes]:
        starts.append(clock.now)
        return short_lived()

    supervisor.add("flaky", start)
    for pause in (1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0):
        died_at = clock.now
        supervisor.check()  # notices the death
        assert f"flaky exited with status 3 after 0.0 s; starting it again in {pause:.0f} s" \
            in log[-1]
        count = len(starts)
        clock.now = died_at + pause - 0.01
        supervisor.check()
        assert len(starts) == count, "not before its pause"
        clock.now = died_at + pause
        supervisor.check()
        assert starts[-1] == clock.now
        assert "flaky started again" in log[-1]
    assert len(starts) == 8


def test_a_child_that_ran_a_while_starts_counting_again():
    clock, log = Clock(), []
    supervisor = runner.Supervisor(log.append, clock)
    supervisor.add("steady", short_lived)
    supervisor.check()
    clock.now = 1.0
    supervisor.check()  # restarted after 1 s
    supervisor.check()
    assert "again in 2 s" in log[-1], "a second quick death waits twice as long"
    clock.now = 3.0
    supervisor.check()
    clock.now = 3.0 + runner.Supervisor.STABLE_SECONDS  # it ran a minute before dying
    supervisor.check()
    assert "again in 1 s" in log[-1]


def test_a_child_that_cannot_start_is_tried_again_later_not_in_a_loop():
    clock, log = Clock(), []
    supervisor = runner.Supervisor(log.append, clock)
    attempts: list[float] = []

    def start() -> subprocess.Popen[bytes]:
        attempts.append(clock.now)
        if len(attempts) > 1:
            raise RuntimeError("port in use")
        return short_lived()

    supervisor.add("stuck", start)
    supervisor.check()
    clock.now = 1.0
    supervisor.check()
    assert "did not start again (port in use); trying in 2 s" in log[-1]
    supervisor.check()
    assert attempts == [0.0, 1.0]
    clock.now = 3.0
    supervisor.check()
    assert attempts == [0.0, 1.0, 3.0] and "trying in 4 s" in log[-1]


def test_stopping_a_child_stops_it_for_good():
    clock, log = Clock(), []
    supervisor = runner.Supervisor(log.append, clock)
    child = supervisor.add("sleeper", lambda: subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"]))
    supervisor.stop("sleeper")
    assert child.process is not None and child.process.poll() is not None
    assert runner.describe_exit(child.process.returncode) == "signal SIGTERM"
    clock.now = 100.0
    supervisor.check()
    assert log == [], "a child stopped on purpose is not started again"


def test_children_get_the_allocator_settings_unless_the_environment_has_its_own(tmp_path):
    """Two malloc arenas (runner.MALLOC_ENV); an operator's own value wins."""
    code = "import os; print(os.environ['MALLOC_ARENA_MAX'])"
    log = tmp_path / "out.log"
    runner.spawn([sys.executable, "-c", code], {}, tmp_path, log).wait(timeout=30)
    assert log.read_text().split() == ["2"]
    log.unlink()
    runner.spawn([sys.executable, "-c", code], {"MALLOC_ARENA_MAX": "4"}, tmp_path,
                 log).wait(timeout=30)
    assert log.read_text().split() == ["4"]
