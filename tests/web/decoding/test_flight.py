"""SingleFlight: a key being computed is waited for, never computed twice at once."""

from __future__ import annotations

import threading

import pytest

from maskweb.masking.decoding.flight import SingleFlight


def test_a_second_caller_waits_for_the_running_computation_and_gets_its_result():
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> int:
        calls.append("slow")
        started.set()
        assert release.wait(10)
        return 42

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(flight.run("k", slow)))
    first.start()
    assert started.wait(10)
    assert flight.count() == 1 and flight.running("k") is not None
    second = threading.Thread(target=lambda: results.append(flight.run("k", lambda: 7)))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert results == [42, 42] and calls == ["slow"]
    assert flight.count() == 0 and flight.running("k") is None
    assert flight.run("k", lambda: 7) == 7, "a finished key is computed afresh"


def test_a_failure_reaches_the_waiters_and_the_key_is_free_again():
    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def broken() -> int:
        started.set()
        assert release.wait(10)
        raise RuntimeError("decoder fell over")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            flight.run("k", broken)
        except RuntimeError as exc:
            errors.append(exc)

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(10)
    running = flight.running("k")
    assert running is not None
    release.set()
    first.join(10)
    with pytest.raises(RuntimeError, match="fell over"):
        running.result(10)
    assert len(errors) == 1 and flight.count() == 0
    assert flight.run("k", lambda: 1) == 1


def test_other_keys_do_not_wait():
    flight: SingleFlight[str] = SingleFlight()
    inner: list[str] = []
    assert flight.run("a", lambda: inner.append(flight.run("b", lambda: "b")) or "a") == "a"
    assert inner == ["b"]


def test_a_waiter_waits_inside_its_waiting_context_and_the_owner_does_not():
    from contextlib import contextmanager

    flight: SingleFlight[int] = SingleFlight()
    started, release = threading.Event(), threading.Event()
    waited_in: list[str] = []

    @contextmanager
    def waiting():
        waited_in.append(threading.current_thread().name)
        yield

    def slow() -> int:
        started.set()
        assert release.wait(10)
        return 1

    owner = threading.Thread(target=lambda: flight.run("k", slow, waiting=waiting),
                             name="owner")
    owner.start()
    assert started.wait(10)
    waiter = threading.Thread(target=lambda: flight.run("k", lambda: 2, waiting=waiting),
                              name="waiter")
    waiter.start()
    waiter.join(0.2)
    release.set()
    owner.join(10)
    waiter.join(10)
    assert waited_in == ["waiter"]
