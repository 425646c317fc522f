"""The session socket: parse, authorise, call a service off the event loop, send frames.

Every service call runs in a worker thread (``thread_sensitive=False``), so a slow decode on one
socket never stalls another. Messages of one socket are handled in order.

Prompts are coalesced: a prompt is written to the log at once, and one render loop per socket
draws the newest log. Prompts that arrive while a decode runs are decoded together in the next
step, so a person clicking faster than the model decodes (or a server with more clickers than
cores) waits for at most about two decodes instead of a growing queue.

Writes and renders run in separate thread pools (maskweb.masking.plumbing.pools), so a prompt is
stored as soon as it arrives however far the decoder has fallen behind, and a render that waited
for a thread draws the newest log. A page whose oldest prompt has waited WS_BEHIND_AFTER seconds
for its mask is told so (a ``behind`` frame); its next mask covers every prompt it sent.

Redis is needed to draw (the embedding, the other sockets) but never to store a prompt: a Redis
that is down delays the mask (maskweb.redis_retry) and at worst costs an ``unavailable`` error
frame, the prompt kept and drawn again when Redis is back. The socket stays open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from maskweb.masking import editing
from maskweb.masking.models import MaskSession
from maskweb.masking.plumbing import notify, pools
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
# Below Daphne's application_close_timeout (10 s), after which it kills the consumer anyway.
DISCONNECT_WAIT_SECONDS = 5.0
# Hover previews a socket may ask for a second (and at once); past it they are skipped.
PREVIEW_RATE = 10.0
# A render that could not reach Redis tries again after these pauses (the prompt is stored).
REDIS_RETRY_PAUSES = (1.0, 2.0, 4.0, 8.0, 15.0)
UNAVAILABLE = ("The server's cache (Redis) cannot be reached; your prompt is kept and its "
               "mask comes when it is back.")


def off_loop(func: Any) -> Any:
    return database_sync_to_async(func, thread_sensitive=False)


class TokenBucket:
    """Allows ``rate`` messages a second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class SessionConsumer(AsyncWebsocketConsumer):
    access: editing.Access | None = None
    _renderer: asyncio.Future[None] | None = None
    _render_id: Any = None
    _sent_seq = -1  # the newest revision whose frame this socket sent itself
    # The newest revision whose frame this page got, from this socket or from another one
    # through the group: a ping finds a newer revision in the database that never reached the
    # page (the host that stored it died before sending its frame) and draws it here.
    _shown_seq = -1
    # The current object's prompts as this socket last wrote or drew them (None: not known,
    # e.g. another socket changed them): the base of editing.guess_next.
    _log: editing.PromptLog | None = None
    # This socket's prompt writes so far, counted in the thread that wrote each one right after
    # its commit (one write at a time per socket), and (that count, the log it left, the
    # prompt's message id) of the newest one: a render reads them before it reads the log,
    # so a count that moved since tells it a newer prompt exists, and the render loop draws
    # until the count it drew is the count written.
    _writes = 0
    _written: tuple[int, editing.PromptLog | None, Any] = (0, None, None)
    _drawn = 0  # the write count the last frame sent by this socket covered
    _waiting_since: float | None = None  # when the oldest prompt without a mask was written
    _not_ready = False  # the last render found no embedding (encoding): no `behind` then
    _behind_check: asyncio.TimerHandle | None = None
    _behind_sending: asyncio.Future[None] | None = None
    _preloading: asyncio.Future[None] | None = None
    # Hover previews: the newest asked for and not yet started, and the task drawing them
    # (one at a time per socket; a newer one replaces one that waits).
    _preview_next: tuple[Any, Any] | None = None
    _previewer: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        token = self.scope["url_route"]["kwargs"]["token"]
        await self.accept()
        try:
            self.access = await off_loop(editing.resolve)(token)
        except editing.NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        assert self.access is not None
        self.group = notify.group_name(self.access.session.pk)
        self.bucket = TokenBucket(settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST)
        # Previews have their own, smaller allowance: they never eat into the clicks'.
        self.preview_bucket = TokenBucket(PREVIEW_RATE, int(PREVIEW_RATE))
        try:
            await self._join()
        except (redis.exceptions.RedisError, OSError):
            # Live updates from others start with the first ping that reaches Redis.
            log.warning("joining the session's group failed (Redis down?)", exc_info=True)
        state = await off_loop(editing.session_state)(self.access)
        await self.send_json({"type": "hello", "role": self.access.role, "state": state})
        if state["status"] == "ready":
            self._preload()
        try:
            rendered = await pools.renders.run(self._render, None, False)
        except MaskSession.DoesNotExist:  # deleted while this page connected
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except redis.exceptions.RedisError:
            log.warning("drawing the mask at connect failed (Redis down?)", exc_info=True)
            await self.error("unavailable", UNAVAILABLE)
            return
        if rendered is not None:
            self._log = rendered.log
        if rendered is not None and rendered.frame is not None and rendered.header is not None \
                and not rendered.header["empty"]:
            await self.send(bytes_data=rendered.frame)
            # A change made while this drew is also on its way through the group: not twice.
            self._sent_seq = rendered.header["seq"]
        if rendered is not None and rendered.frame is not None:
            # The page has the session as of its hello, and its mask if it has one. (Not while
            # the photo is analysed: the frame of this revision is still to come then.)
            self._shown_seq = max(self._shown_seq, self._sent_seq, state["revision"])

    async def disconnect(self, code: int) -> None:
        # Work in flight is let finish, not cancelled: cancelling the task leaves its thread
        # running, and a thread still publishing the last frame needs this event loop
        # (async_to_sync); if the loop ends first, that thread never returns (a test run hung
        # in the executor's shutdown). A frame sent after the close is dropped by the server.
        if self._behind_check is not None:
            self._behind_check.cancel()
        pending = [task for task in (self._renderer, self._preloading, self._previewer)
                   if task is not None and not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=DISCONNECT_WAIT_SECONDS)
        if self.access is not None:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
                await off_loop(notify.leave)(self.access.session.pk, self.channel_name)
            except (redis.exceptions.RedisError, OSError):
                log.warning("leaving the session's group failed (Redis down?)", exc_info=True)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps({"v": 1, **message}, separators=(",", ":")))

    async def error(self, code: str, message: str, request_id: Any = None) -> None:
        await self.send_json({"type": "error", "code": code, "message": message,
                              "id": request_id})

    # --- client messages -----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.access is None:
            return
        if text_data is None:
            await self.error("bad_json", "Send JSON text frames, not binary ones.")
            return
        if len(text_data) > settings.WS_MAX_MESSAGE_BYTES:
            await self.error("too_large", f"A message is at most "
                             f"{settings.WS_MAX_MESSAGE_BYTES} bytes.")
            return
        request_id = None
        try:
            data = schemas.json_object(text_data)
            # The id first, so that a message refused for another field is answered with it.
            request_id = schemas.request_id(data)
            if data.get("type") == "preview":
                if self.preview_bucket.take():
                    preview = schemas.message(data)
                    assert isinstance(preview, schemas.PreviewMessage)
                    await self.on_preview(preview, request_id)
                else:  # past the allowance a preview is skipped, not an error
                    await self.send_json({"type": "preview", "id": request_id,
                                          "skipped": True})
                return
            if not self.bucket.take():
                await self.error("rate_limited", "Too many messages; this one was dropped.",
                                 request_id)
                return
            message = schemas.message(data)  # every type, every field: one place
            await self.HANDLERS[message.type](self, message, request_id)
        except ProtocolError as exc:
            await self.error(exc.code, exc.message, request_id)
        except editing.Forbidden as exc:
            await self.error("forbidden", str(exc), request_id)
        except MaskSession.DoesNotExist:  # deleted meanwhile: as for an unknown link
            await self.close(code=CLOSE_NOT_FOUND)
        except redis.exceptions.RedisError:
            log.warning("socket message failed: Redis unreachable", exc_info=True)
            await self.error("unavailable", "The server's cache (Redis) cannot be reached; "
                             "try again in a moment.", request_id)
        except Exception:
            log.exception("socket message failed")
            await self.error("internal", "Something went wrong on the server; nothing changed.",
                             request_id)

    def _render(self, request_id: Any, broadcast: bool = True) -> editing.Rendered | None:
        assert self.access is not None
        return editing.render_current(self.access.session, request_id, broadcast=broadcast)

    async def _mutate_and_render(self, mutation: Any, request_id: Any, *args: Any) -> None:
        def work() -> editing.Rendered:
            assert self.access is not None
            mutation(self.access, *args)
            return editing.render_current(self.access.session, request_id, broadcast=False,
                                           sender=self.channel_name)

        self._log = None
        rendered = await pools.renders.run(work)
        self._log = rendered.log
        await self._deliver(rendered, request_id)

    async def _deliver(self, rendered: editing.Rendered, request_id: Any,
                       drawn: int | None = None) -> None:
        """Answers this socket first, straight away, then tells the session's other sockets.

        The round trip through the channel layer (Redis) would add milliseconds to every
        click of the person waiting on it; this socket skips that copy (see session_mask).
        A frame that a newer change has superseded still goes to this socket: it answers the
        prompts it covers (the first click of a quick pair would otherwise wait for the second
        decode too), and the newer frame follows. The other sockets only get the newest.
        ``drawn``: the write count the frame covers (see _writes).
        """
        if rendered.frame is not None and rendered.header is not None:
            self._not_ready = False
            if drawn is not None:
                self._answered(drawn)
            seq = rendered.header["seq"]
            if seq < self._sent_seq:
                return  # this page already shows a newer revision
            # The same revision again still goes: a render that waited for a core drew
            # prompts newer than its id says, and this frame answers them by the newest id.
            await self.send(bytes_data=rendered.frame)
            self._sent_seq = seq
            self._shown_seq = max(self._shown_seq, seq)
            if not rendered.superseded and not rendered.alone:
                await pools.renders.run(editing.publish, rendered, self.channel_name, False)
        elif rendered.frame is None:
            # Not ready: the prompt is kept; tell this page where things stand.
            self._not_ready = True
            session = rendered.session
            await self.send_json({"type": "status", "status": session.status,
                                  "progress": session.progress, "message": session.message,
                                  "id": request_id})

    # --- prompts: stored at once, drawn newest first -----------------------------------------

    def _store(self, prompt: Any, request_id: Any) -> editing.PromptLog | None:
        """In a worker thread: writes the prompt, then counts it (see _writes)."""
        assert self.access is not None
        written = editing.add_prompt(self.access, prompt)
        self._written = (self._writes + 1, written, request_id)
        self._writes += 1
        return written

    async def on_prompt(self, message: schemas.PromptMessage, request_id: Any) -> None:
        prompt = message.prompt
        assert self.access is not None
        editing.guess_next(self.access, self._log, prompt)
        self._log = None  # until the write says what the log is now
        self._render_id = request_id
        rendering = self._renderer is not None and not self._renderer.done()
        if rendering or not pools.renders.idle():
            # A render is running (this prompt is drawn in its next step), or every render
            # thread is busy: the write goes alone, to the write threads, so it never waits
            # for a decode, and this handler returns once it is stored.
            self._log = await pools.writes.run(self._store, prompt, request_id)
            self._note_waiting()
            if self._renderer is None or self._renderer.done():
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
        self._log = await committed
        self._note_waiting()

    def _write_and_render(self, prompt: Any, request_id: Any,
                          committed: asyncio.Future[editing.PromptLog | None],
                          loop: asyncio.AbstractEventLoop) -> tuple[editing.Rendered | None, int]:
        """In a render thread: the prompt's write, reported to ``committed`` as soon as it is
        done, then the render. A write that fails raises _WriteFailed: the render loop reports
        it (on_prompt raises it to the page) once this thread is done, so the next message
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
        assert self.access is not None
        count, log_, _ = written
        # Read before the log is: every write counted here is in it.
        seen, _, newest_id = self._written
        if count != seen:
            log_, latest_only, request_id = None, True, newest_id
        rendered = editing.render_prompts(self.access, request_id, latest_only=latest_only,
                                           broadcast=False, written=log_,
                                           sender=self.channel_name, newest=self._newest)
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
                    except _WriteFailed as failed:  # on_prompt tells the page
                        _settle(committed, None, failed.error)
                        return
                    finally:  # never leave on_prompt waiting, whatever went wrong
                        _settle(committed, None, RuntimeError("the prompt was not written"))
                else:
                    rendered, drawn = await pools.renders.run(
                        self._render_newest, request_id, latest_only, self._written)
            except ProtocolError as exc:
                self._log = None  # the prompt the model failed on was undone
                self._answered(self._writes)
                await self.error(exc.code, exc.message, request_id)
            except MaskSession.DoesNotExist:  # deleted meanwhile
                await self.close(code=CLOSE_NOT_FOUND)
                return
            except redis.exceptions.RedisError:
                # Stored, not drawn: try again when Redis may be back, not undo the prompt.
                self._log = None
                log.warning("drawing a socket's prompts failed: Redis unreachable",
                            exc_info=True)
                pause = next(retries, None)
                if pause is None:
                    self._answered(self._writes)
                    await self.error("unavailable", UNAVAILABLE, request_id)
                    return
                if pause == REDIS_RETRY_PAUSES[0]:
                    await self.error("unavailable", UNAVAILABLE, request_id)
                await asyncio.sleep(pause)
                latest_only = True
                continue
            except Exception:
                self._log = None
                self._answered(self._writes)
                log.exception("rendering the prompts of a socket failed")
                await self.error("internal", "Something went wrong on the server.", request_id)
            else:
                if rendered is not None:
                    try:
                        await self._deliver(rendered, request_id, drawn)
                    except Exception:  # the frame went to this page; the others' copy failed
                        log.exception("sending a socket's frame to the others failed")
            if drawn >= self._writes:
                return
            latest_only = True  # prompts piled up while we decoded: one step for all of them

    # --- telling a page it is behind ----------------------------------------------------------

    def _note_waiting(self) -> None:
        """A prompt was stored: start the clock of the oldest prompt without a mask."""
        if self._waiting_since is None and self._drawn < self._writes:
            self._waiting_since = time.monotonic()
        if self._behind_check is None:
            self._behind_check = asyncio.get_running_loop().call_later(
                settings.WS_BEHIND_AFTER_SECONDS, self._check_behind)

    def _answered(self, drawn: int) -> None:
        """A frame (or an error) covered the writes up to ``drawn``."""
        self._drawn = max(self._drawn, drawn)
        if self._drawn >= self._writes:
            self._waiting_since = None

    def _check_behind(self) -> None:
        self._behind_check = None
        if self._waiting_since is None or self._drawn >= self._writes:
            return
        waited = time.monotonic() - self._waiting_since
        if waited >= settings.WS_BEHIND_AFTER_SECONDS and not self._not_ready:
            # Kept: the event loop holds tasks only weakly.
            self._behind_sending = asyncio.ensure_future(self.send_json({
                "type": "behind", "pending": self._writes - self._drawn,
                "waited_ms": round(waited * 1000), "id": self._render_id}))
            delay = max(1.0, settings.WS_BEHIND_AFTER_SECONDS)  # at most once a second
        else:
            delay = max(0.05, settings.WS_BEHIND_AFTER_SECONDS - waited)
        self._behind_check = asyncio.get_running_loop().call_later(delay, self._check_behind)

    async def on_undo(self, message: schemas.UndoMessage, request_id: Any) -> None:
        await self._mutate_and_render(editing.undo, request_id)

    async def on_redo(self, message: schemas.RedoMessage, request_id: Any) -> None:
        await self._mutate_and_render(editing.redo, request_id)

    async def on_clear(self, message: schemas.ClearMessage, request_id: Any) -> None:
        await self._mutate_and_render(editing.clear, request_id)

    async def on_candidate(self, message: schemas.CandidateMessage, request_id: Any) -> None:
        await self._mutate_and_render(editing.select_candidate, request_id, message.index)

    async def on_apply(self, message: schemas.ApplyMessage, request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(editing.apply)(self.access, message.name)

    async def on_reopen(self, message: schemas.ReopenMessage, request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(editing.reopen)(self.access, message.object_id)

    async def on_rename(self, message: schemas.RenameMessage, request_id: Any) -> None:
        assert self.access is not None
        await off_loop(editing.update_object)(self.access, message.object_id,
                                               name=message.name)

    async def on_visibility(self, message: schemas.VisibilityMessage, request_id: Any) -> None:
        assert self.access is not None
        await off_loop(editing.update_object)(self.access, message.object_id,
                                               visible=message.visible)

    async def on_colour(self, message: schemas.ColourMessage, request_id: Any) -> None:
        assert self.access is not None
        await off_loop(editing.update_object)(self.access, message.object_id,
                                               colour=message.colour)

    async def on_combine(self, message: schemas.CombineMessage, request_id: Any) -> None:
        assert self.access is not None
        await off_loop(editing.combine_objects)(self.access, message.op, message.objects,
                                                 message.name)

    async def on_preview(self, message: schemas.PreviewMessage, request_id: Any) -> None:
        """The mask a click there would give (editing.preview), to this socket only. A
        preview asked for while one is drawn replaces any that waits: the pointer moved on."""
        self._preview_next = (message.prompt, request_id)
        if self._previewer is None or self._previewer.done():
            self._previewer = asyncio.ensure_future(self._draw_previews())

    async def _draw_previews(self) -> None:
        while self._preview_next is not None:
            prompt, request_id = self._preview_next
            self._preview_next = None
            assert self.access is not None
            try:
                frame = await pools.renders.run(editing.preview, self.access, prompt,
                                                request_id)
            except ProtocolError as exc:
                await self.error(exc.code, exc.message, request_id)
                continue
            except editing.Forbidden as exc:
                await self.error("forbidden", str(exc), request_id)
                continue
            except Exception:
                log.warning("a hover preview failed", exc_info=True)
                frame = None
            if frame is None:
                await self.send_json({"type": "preview", "id": request_id, "skipped": True})
            else:
                await self.send(bytes_data=frame)

    async def on_delete(self, message: schemas.DeleteMessage, request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(editing.delete_object)(self.access, message.object_id)

    async def on_model(self, message: schemas.ModelMessage, request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        session = await off_loop(editing.switch_model)(self.access, message.model)
        self.access.session = session

    async def _join(self) -> None:
        """Into the session's group, and its set of sockets (see notify.alone)."""
        assert self.access is not None
        await self.channel_layer.group_add(self.group, self.channel_name)
        await off_loop(notify.join)(self.access.session.pk, self.channel_name)

    async def on_ping(self, message: schemas.PingMessage, request_id: Any) -> None:
        # The group lives in Redis: a Redis that lost its data (flushed, or restarted without
        # saving) no longer has it, and it expires after a day.
        # Pages ping every 25 s, so joining again here brings every socket back into its
        # session's live updates within that time. Both writes are idempotent.
        try:
            await self._join()
        except (redis.exceptions.RedisError, OSError):
            log.warning("joining the group again failed (Redis down?)", exc_info=True)
        await self._catch_up()
        await self.send_json({"type": "pong", "id": request_id})

    async def _catch_up(self) -> None:
        """Draws the session's newest revision for this page if its frame never came: with
        several web hosts, the host that stored a prompt sends its frame to the other pages
        once it has drawn it, and a host killed in between sends nothing. The database has
        the prompts; pages ping every 25 s, so a page is at most that late."""
        assert self.access is not None
        if self._renderer is not None and not self._renderer.done():
            return  # this page's own prompts are being drawn: their frame is on its way
        revision = await off_loop(editing.revision)(self.access.session)
        if revision is None or revision <= self._shown_seq:
            return
        try:
            rendered = await pools.renders.run(self._render, None, False)
        except MaskSession.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except Exception:  # the next ping tries again
            log.warning("catching up with revision %s failed", revision, exc_info=True)
            return
        if rendered is not None and rendered.frame is not None:
            await self._deliver(rendered, None)
            # Drawn (or nothing to draw: a change no frame shows): not again at the next ping.
            # While the photo is analysed (no frame) the revision's frame is still to come.
            self._shown_seq = max(self._shown_seq, revision)

    async def on_status(self, message: schemas.StatusMessage, request_id: Any) -> None:
        """The stored encode status, for a page that waited without news (a lost message)."""
        assert self.access is not None
        session = await off_loop(editing.encode_status)(self.access)
        await self.send_json({"type": "status", "status": session.status,
                              "progress": session.progress, "message": session.message,
                              "id": request_id})

    # One handler for each of schemas.MESSAGE_TYPES, given the message typed.
    HANDLERS: dict[str, Any] = {
        "prompt": on_prompt, "undo": on_undo, "redo": on_redo, "clear": on_clear,
        "candidate": on_candidate, "apply": on_apply, "reopen": on_reopen,
        "rename": on_rename, "visibility": on_visibility, "colour": on_colour,
        "combine": on_combine, "delete": on_delete, "preview": on_preview,
        "model": on_model, "ping": on_ping, "status": on_status,
    }

    # --- group notifications (small; the frame itself is fetched by key) ----------------------

    async def session_mask(self, event: dict[str, Any]) -> None:
        if event["seq"] <= max(self._sent_seq, self._shown_seq):
            return  # this page has that revision (or a newer one) already
        self._log = None  # another socket (or the worker) drew a log this one did not write
        frame = await off_loop(notify.get_frame)(event["key"])
        if frame is not None:
            await self.send(bytes_data=frame)
            self._shown_seq = max(self._shown_seq, event["seq"])

    async def session_status(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "status", "status": event["status"],
                              "progress": event["progress"], "message": event["message"]})
        if event["status"] == "ready":
            self._preload()

    def _preload(self) -> None:
        """Fetches the photo's embedding into this process in the background, so the first
        click does not wait for it to come from Redis (tens of ms for a SAM-sized one)."""
        assert self.access is not None
        # Kept: the event loop holds tasks only weakly.
        self._preloading = asyncio.ensure_future(
            off_loop(editing.preload_embedding)(self.access.session))

    async def session_deleted(self, event: dict[str, Any]) -> None:
        """The session was deleted (its editor, or the clean-up of idle sessions): closed as
        for an unknown link, which the page reports and does not retry."""
        await self.close(code=CLOSE_NOT_FOUND)

    async def session_objects(self, event: dict[str, Any]) -> None:
        assert self.access is not None
        access = self.access
        self._log = None

        def load() -> list[dict[str, Any]]:
            session = editing.reload(access.session)
            token = session.edit_token if access.role == editing.EDIT else session.view_token
            return editing.objects_list(session, token)

        await self.send_json({"type": "objects", "objects": await off_loop(load)()})

    async def session_state(self, event: dict[str, Any]) -> None:
        assert self.access is not None
        access = self.access
        self._log = None

        def load() -> dict[str, Any]:
            access.session = editing.reload(access.session)
            return editing.session_state(access)

        await self.send_json({"type": "state", "state": await off_loop(load)()})


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

