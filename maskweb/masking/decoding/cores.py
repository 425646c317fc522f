"""The decode cores of a web process: one decode per core at a time, held by a thread.

Each decoder runs on one thread, so more decodes at once than cores would share the cores
and finish together, later on average than one after the other (4 clicks at once on 2 cores:
all 4 done after 2 decode times, against 2 after 1 and 2 after 2).

A thread holds a core for a whole step, not only for the model call: a render that had to wait
for one reads the prompt log again once it has it, so the clicks that came while it waited are
decoded with it, in one step (see editing.render_current). That makes the batching of an
overloaded server depend on when a core frees up, not on how quickly the click path turns
around. Holding is reentrant within a thread: the decode inside such a render uses the render's
core instead of waiting for a second one.

A thread that waits on another thread's work (the decode of the same prompts, started by a
prefetch a moment earlier) lends its core meanwhile (``lent``): one decode never ties up two
cores while another session's click waits for one. A bench trace found that in 6% of clicks
at 4 sessions on 2 cores, and those clicks made the p95. A lent core is not taken back; what
needs a core after the wait (a decode) holds one again.

Cores are handed out first come, first served: a freed core goes to the thread that has waited
longest, never to one that just asked. With a plain semaphore a thread that had just finished
a step and asked again (without blocking, to know whether it had to wait) took the core before
the threads already blocked on it; under overload (16 pages clicking every 300 ms) some
pages' renders lost that race for 14 s while others were drawn every round. A thread that
only wants a core if one is free (a prefetch) never takes one while others wait.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Cores:
    def __init__(self, count: int) -> None:
        self._mine = threading.local()
        self._lock = threading.Lock()
        self._free = count
        self._busy = 0
        self._waiting: deque[threading.Event] = deque()  # oldest first

    def held(self) -> bool:
        """Whether this thread holds a core."""
        return bool(getattr(self._mine, "held", False))

    def waiting(self) -> int:
        """How many threads wait for a core (a hint)."""
        with self._lock:
            return len(self._waiting)

    def busy(self) -> int:
        """How many cores are held now (a hint: it can change at once)."""
        with self._lock:
            return self._busy

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Holds a core, waiting for one if need be; yields whether it had to wait."""
        if self.held():
            yield False
            return
        waited = not self._take(wait=True)
        with self._holding():
            yield waited

    @contextmanager
    def hold_if_free(self) -> Iterator[bool]:
        """Holds a core only if one is free now; yields whether it does."""
        if self.held():
            yield True
            return
        if not self._take(wait=False):
            yield False
            return
        with self._holding():
            yield True

    @contextmanager
    def lent(self) -> Iterator[None]:
        """For a wait on another thread: frees this thread's core, if it holds one, for good.

        Not taken back at the end, as the wait may have brought all that was needed (then the
        thread would only wait for a core to give it up again); a later ``hold`` takes one.
        """
        if self.held():
            self._release()
        yield

    def _take(self, wait: bool) -> bool:
        """Takes a core: True when one was free (and nobody waited before this thread); with
        ``wait``, else waits its turn and returns False once handed one."""
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                self._busy += 1
                return True
            if not wait:
                return False
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # _release hands this thread its core (and counts it busy)
        return False

    @contextmanager
    def _holding(self) -> Iterator[None]:
        """After taking a core: marks it this thread's until the block ends, then frees it
        (unless it was lent meanwhile)."""
        self._mine.held = True
        try:
            yield
        finally:
            if self.held():
                self._release()

    def _release(self) -> None:
        """Hands the core to the thread that has waited longest, or frees it."""
        self._mine.held = False
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()  # still busy: now that thread's
            else:
                self._busy -= 1
                self._free += 1
