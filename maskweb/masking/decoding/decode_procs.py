"""The web process's decodes in child processes: one per decode core, so two decodes truly
run at once.

Decoded in the web process's threads, the decodes' Python and NumPy steps (grabCut's seeds and
edge clean-up, the interactive wrapper's merge) took turns on the GIL: with 2 decode cores
the p95 of 4 pages clicking every 300 ms was about what 1 core gave (bench.soak: 6.1x the
bare decoder; py-spy: each render thread waited ~27% of its samples for a core and ran the
rest under the GIL, the web process using 0.73-0.96 of the 2 cores). A decode's thread now
holds its core as before (maskweb.masking.decoding.cores keeps the order, single flight and
coalescing as they were) and hands the decode to an idle child: the model, the prompts and
the previous prediction go down a pipe, the prediction comes back; the thread waits on the
pipe without the GIL.

- The embedding is sent by key: a child keeps the embeddings it was given in an LRU of its
  own (MASKWEB_EMBEDDING_CACHE_MB) and asks for the array only when it lacks it, so a click
  on a photo the child has seen sends a few hundred bytes of prompts plus the previous mask.
- A child that dies (killed, out of memory) costs no click: its decode is sent again to a
  new child, and after ``ATTEMPTS`` dead children in a row it is decoded in this process.
  A decode that fails in the model raises here, as it would in-process.
- Children die with the web process, however it ends: each reads its requests from a pipe
  whose end it sees close, and watches its parent's pid (a SIGKILLed web process leaves
  no orphan). ``prctl(PR_SET_PDEATHSIG)`` is not used: it fires when the spawning *thread*
  ends, and the pool is started from a short-lived warm-up thread.
- Only Daphne starts the pool (maskweb.asgi calls ``start``); elsewhere (the worker, tests
  that run Django in-process, whose settings the children would not see) ``active()`` is
  None and render decodes in the thread.
  MASKWEB_DECODE_PROCESSES=0 turns it off in the web process too.
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from maskweb.segment.types import Embedding, Prediction, Prompts

log = logging.getLogger(__name__)

# A decode is sent to at most this many children in turn (each dying under it) before it is
# decoded in this process.
ATTEMPTS = 3
_HEADER = struct.Struct(">Q")


class ChildDied(Exception):
    """The child's pipe closed: it exited or was killed."""


def send_frame(stream: IO[bytes], message: Any) -> None:
    send_raw(stream, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def send_raw(stream: IO[bytes], data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next message, or EOFError when the other end closed."""
    head = _read_exactly(stream, _HEADER.size)
    (length,) = _HEADER.unpack(head)
    return pickle.loads(_read_exactly(stream, length))


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) < size:
        raise EOFError
    return bytes(data)


class Child:
    """One decode process; used by one thread at a time (the pool hands it out)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "maskweb.masking.decoding.decode_child", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        self._ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def decode(self, model_id: str, key: str, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None) -> Prediction:
        answer = self._call(("decode", model_id, key, None, prompts, previous))
        if answer[0] == "missing":
            answer = self._call(("decode", model_id, key, embedding, prompts, previous))
        if answer[0] == "error":
            raise answer[1]
        assert answer[0] == "ok", answer[0]
        return answer[1]

    def wait_ready(self) -> None:
        if not self._ready:
            assert self.process.stdout is not None
            try:
                answer = read_frame(self.process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                raise ChildDied(self.pid) from exc
            assert answer[0] == "ready", answer
            self._ready = True

    def _call(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.wait_ready()
        try:
            send_frame(self.process.stdin, request)
            return read_frame(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise ChildDied(self.pid) from exc

    def close(self, wait: float = 5.0) -> None:
        """Closes its pipe (it exits on that) and reaps it; killed if it does not go."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


class Pool:
    """``size`` children, each lent to one decoding thread at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Condition()
        self._idle: list[Child] = [Child() for _ in range(size)]
        self._all: list[Child] = list(self._idle)
        self._closed = False
        self.restarts = 0

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._all]

    def busy_pids(self) -> list[int]:
        """The children decoding now (a hint, for tests)."""
        with self._lock:
            idle = {id(c) for c in self._idle}
            return [c.pid for c in self._all if id(c) not in idle]

    def decode(self, model_id: str, key: str, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None) -> Prediction:
        child = self._take()
        if child.process.poll() is not None:  # died while idle: no need to find out by a try
            child = self._replace(child)
        try:
            for _ in range(ATTEMPTS):
                try:
                    return child.decode(model_id, key, embedding, prompts, previous)
                except ChildDied:
                    log.warning("decode process %d died during a decode; sending it to a new "
                                "one", child.pid)
                    child = self._replace(child)
        finally:
            self._give(child)
        log.error("decode processes died %d times in a row: decoding in the web process",
                  ATTEMPTS)
        from maskweb.masking.decoding import engine

        return engine.decode(model_id, embedding, prompts, previous)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children, self._all, self._idle = self._all, [], []
            self._lock.notify_all()
        for child in children:
            child.close()

    def _take(self) -> Child:
        with self._lock:
            while not self._idle:
                if self._closed:
                    raise RuntimeError("the decode pool is closed")
                self._lock.wait()
            return self._idle.pop()

    def _give(self, child: Child) -> None:
        with self._lock:
            if self._closed:
                child.close(wait=0.1)
                return
            self._idle.append(child)
            self._lock.notify()

    def _replace(self, dead: Child) -> Child:
        dead.close(wait=1.0)
        fresh = Child()
        with self._lock:
            self.restarts += 1
            self._all = [fresh if c is dead else c for c in self._all]
        return fresh


_pool: Pool | None = None
_pool_lock = threading.Lock()


def under_daphne() -> bool:
    """Whether this process is Daphne (``daphne ...`` or ``python -m daphne ...``), not a
    test or a shell that imported maskweb.asgi."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return program.name == "daphne" or program.parent.name == "daphne"


def start(size: int, anywhere: bool = False) -> Pool | None:
    """Starts the children (the web process, once; ``anywhere``: also outside Daphne, for
    tests); None when MASKWEB_DECODE_PROCESSES=0 or not in Daphne."""
    from django.conf import settings

    global _pool
    if not settings.DECODE_PROCESSES or not (anywhere or under_daphne()):
        return None
    with _pool_lock:
        if _pool is None:
            _pool = Pool(size)
            log.info("decoding in %d processes: %s", size,
                     ", ".join(str(p) for p in _pool.pids()))
        return _pool


def active() -> Pool | None:
    return _pool


def stop() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()
