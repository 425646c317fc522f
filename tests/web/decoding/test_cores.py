"""Cores: one decode per core, held by a thread for a whole step, reentrantly."""

from __future__ import annotations

import threading
import time

from maskweb.masking.decoding.cores import Cores


def hold_in_thread(cores: Cores) -> tuple[threading.Thread, threading.Event]:
    """A thread that holds one core until the returned event is set."""
    holding, release = threading.Event(), threading.Event()

    def run() -> None:
        with cores.hold():
            holding.set()
            assert release.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(10)
    return thread, release


def test_a_free_core_is_held_without_waiting_and_counted_busy_until_the_block_ends():
    cores = Cores(2)
    with cores.hold() as waited:
        assert not waited and cores.held() and cores.busy() == 1
    assert not cores.held() and cores.busy() == 0


def test_holding_again_in_the_same_thread_takes_no_second_core():
    cores = Cores(1)
    with cores.hold(), cores.hold() as waited, cores.hold_if_free() as free:
        assert not waited and free and cores.busy() == 1
    assert cores.busy() == 0


def test_with_every_core_held_elsewhere_hold_if_free_declines_and_hold_waits():
    cores = Cores(1)
    holder, release = hold_in_thread(cores)
    with cores.hold_if_free() as free:
        assert not free and not cores.held()
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(_hold_and_report(cores)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "took a core that another thread holds"
    release.set()
    holder.join(10)
    waiter.join(10)
    assert outcome == [True], "it had to wait, and says so"
    assert cores.busy() == 0


def _hold_and_report(cores: Cores) -> bool:
    with cores.hold() as waited:
        return waited


def test_a_core_is_freed_when_the_block_raises():
    cores = Cores(1)
    try:
        with cores.hold():
            raise RuntimeError("decoder fell over")
    except RuntimeError:
        pass
    with cores.hold_if_free() as free:
        assert free


def test_a_lent_core_is_free_for_others_during_the_wait_and_not_taken_back():
    cores = Cores(1)
    with cores.hold():
        with cores.lent():
            assert not cores.held() and cores.busy() == 0
            holder, release = hold_in_thread(cores)  # would block were the core still held
            release.set()
            holder.join(10)
        assert not cores.held() and cores.busy() == 0, "taken back after the wait"
        with cores.hold() as waited:  # what needs a core after the wait takes one again
            assert not waited and cores.held() and cores.busy() == 1
        assert cores.busy() == 0
    assert cores.busy() == 0
    holder, release = hold_in_thread(cores)
    with cores.hold_if_free() as free:
        assert not free, "the block's end freed the lent core a second time: two holders"
    release.set()
    holder.join(10)


def test_lending_without_a_core_changes_nothing():
    cores = Cores(1)
    with cores.lent():
        assert cores.busy() == 0
    holder, release = hold_in_thread(cores)
    with cores.hold_if_free() as free:
        assert not free
    release.set()
    holder.join(10)


def test_a_freed_core_goes_to_the_thread_that_waited_longest_not_to_one_asking_again():
    """Under overload a thread that finishes a step and asks again must queue behind the
    threads already waiting (with a plain semaphore it took the core first, and a page's
    render could lose that race round after round)."""
    cores = Cores(1)
    order: list[str] = []
    first_holds, release_first = threading.Event(), threading.Event()

    def first() -> None:
        with cores.hold():
            first_holds.set()
            assert release_first.wait(10)
        with cores.hold() as waited:  # straight back for another step
            order.append(f"first again (waited {waited})")

    def second() -> None:
        with cores.hold():
            order.append("second")

    a = threading.Thread(target=first)
    a.start()
    assert first_holds.wait(10)
    b = threading.Thread(target=second)
    b.start()
    deadline = time.monotonic() + 10
    while cores.waiting() < 1:  # the second thread is queued for the core
        assert time.monotonic() < deadline
        threading.Event().wait(0.005)
    release_first.set()
    a.join(10)
    b.join(10)
    assert order == ["second", "first again (waited True)"]
    assert cores.busy() == 0 and cores.waiting() == 0
