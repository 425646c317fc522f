"""The web process's thread pools for the sockets: prompt writes never wait behind decodes.

A socket's work runs off the event loop in worker threads. With one shared pool (the loop's
default, six threads on two cores) an overloaded server had every thread waiting for a decode
core, and each new prompt's database write queued behind those decodes: 16 pages clicking
twice as fast as two cores decode got only 1336 of 3193 prompts stored, 115 messages per page
still unread when the page closed. So the work is split by what it waits for:

- ``writes``: a prompt's write (and other short database work of a socket). Its threads never
  decode, so a write waits at most for other writes.
- ``renders``: drawing a socket's newest prompt log, which may decode and so wait for a core
  (maskweb.masking.decoding.cores). A socket runs at most one render at a time (its render loop), so
  this pool's queue holds at most one job per socket; a render that waited in it draws the
  socket's newest log when it starts, not the one it was asked for (see the consumer).

The HTTP views keep the loop's default pool; downloads have their own
(maskweb.masking.api.download_jobs). Each pool counts the jobs handed to it and not yet finished,
so the consumer can tell whether a render would start at once (``idle``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T")
CORES = os.cpu_count() or 1


class Pool:
    def __init__(self, name: str, threads: int) -> None:
        self.name, self.threads = name, threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._taken = 0

    def taken(self) -> int:
        """Jobs handed over and not finished (running or queued)."""
        with self._lock:
            return self._taken

    def idle(self) -> bool:
        """Whether a job handed over now would start at once."""
        return self.taken() < self.threads

    def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """``func(*args, **kwargs)`` in one of this pool's threads, as a future of the event
        loop. Counted from this call (not from when the thread starts), so ``idle`` already
        knows about it; database connections are handled as Channels' database_sync_to_async
        does."""
        with self._lock:
            self._taken += 1
        call = database_sync_to_async(func, thread_sensitive=False, executor=self._executor)
        future: asyncio.Future[T] = asyncio.ensure_future(call(*args, **kwargs))
        future.add_done_callback(self._done)
        return future

    def _done(self, _: asyncio.Future[Any]) -> None:
        with self._lock:
            self._taken -= 1


# Writes are short and serialised by the database anyway: a few threads keep one socket's slow
# write (a lock wait) from holding up the others.
writes = Pool("socket-write", 4)
# Renders mostly wait for a core: more threads than cores let a render whose prediction is
# cached (an undo, a frame drawn at connect) pass renders that wait to decode.
renders = Pool("socket-render", max(4, 2 * CORES))
