"""A socket's prompts: each stored as soon as it arrives, drawn newest first.

Prompts are coalesced: a prompt is written to the log at once, and one render loop per socket
draws the newest log. Prompts that arrive while a decode runs are decoded together in the next
step, so a person clicking faster than the model decodes (or a server with more clickers than
cores) waits for at most about two decodes instead of a growing queue.

Writes and renders run in separate thread pools (maskweb.masking.plumbing.pools), so a prompt
is stored as soon as it arrives however far the decoder has fallen behind, and a render that
waited for a thread draws the newest log. A page whose oldest prompt has waited
WS_BEHIND_AFTER seconds for its mask is told so (a ``behind`` frame); its next mask covers
every prompt it sent.

Redis is needed to draw (the embedding, the other sockets) but never to store a prompt: a
Redis that is down delays the mask (maskweb.redis_retry) and at worst costs an
``unavailable`` error frame, the prompt kept and drawn again when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import redis
from django.conf import settings

from maskweb.masking import editing
from maskweb.masking.models import MaskSession
from maskweb.masking.plumbing import pools
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
# A render that could not reach Redis tries again after these pauses (the prompt is stored).
REDIS_RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0)
UNAVAILABLE = ("The server's cache (Redis) cannot be reached; your prompt is kept and its "
               "mask comes when it is back.")


class Socket(Protocol):
    """What the stream needs of its socket (maskweb.masking.live.consumers.SessionConsumer)."""

    access: editing.Access | None
    channel_name: str

    async def deliver(self, rendered: editing.Rendered, request_id: Any,
                      drawn: int | None = None) -> None: ...

    async def error(self, code: str, message: str, request_id: Any = None) -> None: ...

    async def send_json(self, message: dict[str, Any]) -> None: ...

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None: ...


class PromptStream:
    # The current object's prompts as this socket last wrote or drew them (None: not known,
    # e.g. another socket changed them): the base of editing.guess_next.
    log: editing.PromptLog | None = None
    # This socket's prompt writes so far, counted in the thread that wrote each one right after
    # its commit (one write at a time per socket), and (that count, the log it left, the
    # prompt's message id) of the newest one: a render reads them before it reads the log,
    # so a count that moved since tells it a newer prompt exists, and the render loop draws
    # until the count it drew is the count written.
    _writes = 0
    _written: tuple[int, editing.PromptLog | None, Any] = (0, None, None)
    _drawn = 0  # the write count the last frame sent by this socket covered
    _waiting_since: float | None = None  # when the oldest prompt without a mask was written
    not_ready = False  # the last render found no embedding (encoding): no `behind` then
    _behind_check: asyncio.TimerHandle | None = None
    _behind_sending: asyncio.Future[None] | None = None
    _renderer: asyncio.Future[None] | None = None
    _render_id: Any = None

    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    def busy(self) -> bool:
        """Whether this socket's prompts are being drawn (their frame is on its way)."""
        return self._renderer is not None and not self._renderer.done()

    def stop(self) -> asyncio.Future[None] | None:
        """The socket is closing: no more `behind` notices; the render still running, if
        any, to let finish (see SessionConsumer.disconnect)."""
        if self._behind_check is not None:
            self._behind_check.cancel()
        return self._renderer if self.busy() else None

    def _store(self, prompt: Any, request_id: Any) -> editing.PromptLog | None:
        """In a worker thread: writes the prompt, then counts it (see _writes)."""
        assert self.socket.access is not None
        written = editing.add_prompt(self.socket.access, prompt)
        self._written = (self._writes + 1, written, request_id)
        self._writes += 1
        return written

    async def add(self, prompt: schemas.Prompt, request_id: Any) -> None:
        """Stores the prompt and returns once it is stored; its mask follows from the
        render loop (with every prompt stored while it decoded)."""
        assert self.socket.access is not None
        editing.guess_next(self.socket.access, self.log, prompt)
        self.log = None  # until the write says what the log is now
        self._render_id = request_id
        if self.busy() or not pools.renders.idle():
            # A render is running (this prompt is drawn in its next step), or every render
            # thread is busy: the write goes alone, to the write threads, so it never waits
            # for a decode, and this handler returns once it is stored.
            self.log = await pools.writes.run(self._store, prompt, request_id)
            self.note_waiting()
            if not self.busy():
                self._renderer = asyncio.ensure_future(self._render_loop())
            return
        # Nothing is rendering for this socket and a render thread is free: the write and its
        # render go off the event loop in one hop (a hop costs the web process most of a
        # millisecond of CPU). This handler still returns once the write is committed, so the
        # next message is read, and coalesced, while the click decodes.
        # Handed to the pool here, not in the loop's task: the pool counts it at once, so the
        # next socket's message, read before that task starts, sees the thread taken.
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[editing.PromptLog | None] = loop.create_future()
        job = pools.renders.run(self._write_and_render, prompt, request_id, committed, loop)
        self._renderer = asyncio.ensure_future(self._render_loop(first=(job, committed)))
        self.log = await committed
        self.note_waiting()

    def _write_and_render(self, prompt: Any, request_id: Any,
                          committed: asyncio.Future[editing.PromptLog | None],
                          loop: asyncio.AbstractEventLoop) -> tuple[editing.Rendered | None, int]:
        """In a render thread: the prompt's write, reported to ``committed`` as soon as it is
        done, then the render. A write that fails raises _WriteFailed: the render loop reports
        it (``add`` raises it to the page) once this thread is done, so the next message
        finds the loop over and takes the one-hop path again."""
        try:
            written = self._store(prompt, request_id)
        except Exception as exc:
            raise _WriteFailed(exc) from exc
        loop.call_soon_threadsafe(_settle, committed, written, None)
        return self._render_newest(request_id, False, self._written)

    def _render_newest(self, request_id: Any, latest_only: bool,
                       written: tuple[int, editing.PromptLog | None, Any]) -> \
            tuple[editing.Rendered | None, int]:
        """In a render thread: draws this socket's newest log; returns the frame and the write
        count it covers. ``written``: the newest write's count, log and id when the render was
        asked for; if a prompt was written since (the render waited for a thread), the log is
        read again, everything new is decoded in one step, and the frame answers the newest
        prompt's id."""
        assert self.socket.access is not None
        count, log_, _ = written
        # Read before the log is: every write counted here is in it.
        seen, _, newest_id = self._written
        if count != seen:
            log_, latest_only, request_id = None, True, newest_id
        rendered = editing.render_prompts(self.socket.access, request_id, latest_only=latest_only,
                                           broadcast=False, written=log_,
                                           sender=self.socket.channel_name, newest=self._newest)
        return rendered, rendered.newest[0] if rendered.newest is not None else seen

    def _newest(self) -> tuple[int, Any]:
        """This socket's write count and newest prompt's id (see editing.render_current)."""
        count, _, request_id = self._written
        return count, request_id

    async def _render_loop(self, first: tuple[asyncio.Future[Any], asyncio.Future[Any]] |
                           None = None) -> None:
        """Draws the newest prompt log until every prompt written is drawn; ``first``: the
        job that writes a prompt and renders it (_write_and_render), and the future that
        hears when the prompt is written."""
        latest_only = False
        retries = iter(REDIS_RETRY_PAUSES)
        while True:
            request_id = self._render_id
            drawn = self._writes
            try:
                if first is not None:
                    job, committed = first
                    first = None
                    try:
                        rendered, drawn = await job
                    except _WriteFailed as failed:  # ``add`` tells the page
                        _settle(committed, None, failed.error)
                        return
                    finally:  # never leave ``add`` waiting, whatever went wrong
                        _settle(committed, None, RuntimeError("the prompt was not written"))
                else:
                    rendered, drawn = await pools.renders.run(
                        self._render_newest, request_id, latest_only, self._written)
            except ProtocolError as exc:
                self.log = None  # the prompt the model failed on was undone
                self.answered(self._writes)
                await self.socket.error(exc.code, exc.message, request_id)
            except MaskSession.DoesNotExist:  # deleted meanwhile
                await self.socket.close(code=CLOSE_NOT_FOUND)
                return
            except redis.exceptions.RedisError:
                # Stored, not drawn: try again when Redis may be back, not undo the prompt.
                self.log = None
                log.warning("drawing a socket's prompts failed: Redis unreachable",
                            exc_info=True)
                pause = next(retries, None)
                if pause is None:
                    self.answered(self._writes)
                    await self.socket.error("unavailable", UNAVAILABLE, request_id)
                    return
                if pause == REDIS_RETRY_PAUSES[0]:
                    await self.socket.error("unavailable", UNAVAILABLE, request_id)
                await asyncio.sleep(pause)
                latest_only = True
                continue
            except Exception:
                self.log = None
                self.answered(self._writes)
                log.exception("rendering the prompts of a socket failed")
                await self.socket.error("internal", "Something went wrong on the server.",
                                        request_id)
            else:
                if rendered is not None:
                    try:
                        await self.socket.deliver(rendered, request_id, drawn)
                    except Exception:  # the frame went to this page; the others' copy failed
                        log.exception("sending a socket's frame to the others failed")
            if drawn >= self._writes:
                return
            latest_only = True  # prompts piled up while we decoded: one step for all of them

    # --- telling a page it is behind ----------------------------------------------------------

    def note_waiting(self) -> None:
        """A prompt was stored: start the clock of the oldest prompt without a mask."""
        if self._waiting_since is None and self._drawn < self._writes:
            self._waiting_since = time.monotonic()
        if self._behind_check is None:
            self._behind_check = asyncio.get_running_loop().call_later(
                settings.WS_BEHIND_AFTER_SECONDS, self._check_behind)

    def answered(self, drawn: int) -> None:
        """A frame (or an error) covered the writes up to ``drawn``."""
        self._drawn = max(self._drawn, drawn)
        if self._drawn >= self._writes:
            self._waiting_since = None

    def _check_behind(self) -> None:
        self._behind_check = None
        if self._waiting_since is None or self._drawn >= self._writes:
            return
        waited = time.monotonic() - self._waiting_since
        if waited >= settings.WS_BEHIND_AFTER_SECONDS and not self.not_ready:
            # Kept: the event loop holds tasks only weakly.
            self._behind_sending = asyncio.ensure_future(self.socket.send_json({
                "type": "behind", "pending": self._writes - self._drawn,
                "waited_ms": round(waited * 1000), "id": self._render_id}))
            delay = max(1.0, settings.WS_BEHIND_AFTER_SECONDS)  # at most once a second
        else:
            delay = max(0.05, settings.WS_BEHIND_AFTER_SECONDS - waited)
        self._behind_check = asyncio.get_running_loop().call_later(delay, self._check_behind)


class _WriteFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the socket went away and its handler was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
