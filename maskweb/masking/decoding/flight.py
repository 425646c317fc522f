"""One computation per key at a time: a caller that asks for a key while another thread is
computing it waits for that result instead of computing it again.

A click's decode starts while its prompt is still being written to the database (see
``render.prefetch``); the render that follows asks for the same prediction and waits for the
running decode instead of starting a second one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Future[V]] = {}

    def running(self, key: Hashable) -> Future[V] | None:
        """The computation of ``key`` in progress, if any (its ``result()`` waits for it)."""
        with self._lock:
            return self._running.get(key)

    def count(self) -> int:
        with self._lock:
            return len(self._running)

    def run(self, key: Hashable, compute: Callable[[], V],
            waiting: Callable[[], AbstractContextManager[object]] = nullcontext) -> V:
        """``compute()``, unless ``key`` is being computed already: then that result (or its
        exception), waited for inside ``waiting()``. ``compute`` should store its result where
        later callers look first (a cache): the key stops counting as running as soon as it
        returns."""
        with self._lock:
            future = self._running.get(key)
            owner = future is None
            if future is None:
                future = self._running[key] = Future()
        if not owner:
            with waiting():
                return future.result()
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._running[key]
        future.set_result(value)
        return value
