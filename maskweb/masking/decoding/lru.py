"""A thread-safe least-recently-used cache bounded by bytes, not by entries.

The web process keeps embeddings and predictions of active sessions in memory so that a click
never waits on a multi-megabyte Redis read or a replay of the prompt chain. Their sizes vary by
two orders of magnitude (a 480 px DAVIS frame against a 2048 px photo with four candidate
masks), so a budget in entries is either wasteful or too small: with 16 sessions clicking, a
16-entry prediction cache lost every session's last prediction between two of its clicks, and
each click replayed the whole chain (bench.latency: p50 13.8 s).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    """Keeps the most recently used values while their total size fits ``budget()`` bytes.

    ``budget`` is read on every insertion, so a changed setting applies at once. The newest
    value is always kept, even alone over the budget: the caller is about to use it.
    """

    def __init__(self, budget: Callable[[], int], size_of: Callable[[V], int]) -> None:
        self._budget, self._size_of = budget, size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: V) -> None:
        size = self._size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            budget = self._budget()
            while self._bytes > budget and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def discard(self, key: Hashable) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes
