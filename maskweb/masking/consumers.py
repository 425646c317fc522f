"""The session socket: parse, authorise, call a service off the event loop, send frames.

Every service call runs in a worker thread (``thread_sensitive=False``), so a slow decode on one
socket never stalls another. Messages of one socket are handled in order.

Prompts are coalesced: a prompt is written to the log at once, and one render loop per socket
draws the newest log. Prompts that arrive while a decode runs are decoded together in the next
step, so a person clicking faster than the model decodes (or a server with more clickers than
cores) waits for at most about two decodes instead of a growing queue.
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

from maskweb.masking import notify, services
from maskweb.masking.prompts import ProtocolError

log = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
# Below Daphne's application_close_timeout (10 s), after which it kills the consumer anyway.
DISCONNECT_WAIT_SECONDS = 5.0


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
    access: services.Access | None = None
    _renderer: asyncio.Future[None] | None = None
    _render_again = False
    _render_id: Any = None
    _sent_seq = -1  # the newest revision whose frame this socket sent itself
    # The current object's prompts as this socket last wrote or drew them (None: not known,
    # e.g. another socket changed them): the base of services.guess_next.
    _log: services.PromptLog | None = None
    # The log of this socket's newest write, until its render loop takes it: that render draws
    # the session and object as the write left them (services.render_current's ``written``).
    _written: services.PromptLog | None = None
    _preloading: asyncio.Future[None] | None = None

    async def connect(self) -> None:
        token = self.scope["url_route"]["kwargs"]["token"]
        await self.accept()
        try:
            self.access = await off_loop(services.resolve)(token)
        except services.NotFound:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        assert self.access is not None
        self.group = notify.group_name(self.access.session.pk)
        self.bucket = TokenBucket(settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST)
        await self._join()
        state = await off_loop(services.session_state)(self.access)
        await self.send_json({"type": "hello", "role": self.access.role, "state": state})
        if state["status"] == "ready":
            self._preload()
        rendered = await off_loop(self._render)(None, False)
        if rendered is not None:
            self._log = rendered.log
        if rendered is not None and rendered.frame is not None and not rendered.header["empty"]:
            await self.send(bytes_data=rendered.frame)
            # A change made while this drew is also on its way through the group: not twice.
            self._sent_seq = rendered.header["seq"]

    async def disconnect(self, code: int) -> None:
        # Work in flight is let finish, not cancelled: cancelling the task leaves its thread
        # running, and a thread still publishing the last frame needs this event loop
        # (async_to_sync); if the loop ends first, that thread never returns (a test run hung
        # in the executor's shutdown). A frame sent after the close is dropped by the server.
        pending = [task for task in (self._renderer, self._preloading)
                   if task is not None and not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=DISCONNECT_WAIT_SECONDS)
        if self.access is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await off_loop(notify.leave)(self.access.session.pk, self.channel_name)

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
        if not self.bucket.take():
            await self.error("rate_limited", "Too many messages; this one was dropped.")
            return
        try:
            message = json.loads(text_data, parse_constant=_refuse_constant)
        except ValueError as exc:
            await self.error("bad_json", f"Not JSON: {exc}")
            return
        if not isinstance(message, dict):
            await self.error("bad_json", "A message is a JSON object.")
            return
        request_id = message.get("id")
        if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 64):
            await self.error("bad_field", "'id' must be a string of at most 64 characters")
            return
        handler = self.HANDLERS.get(message.get("type"))  # type: ignore[arg-type]
        if handler is None:
            await self.error("unknown_type", f"Unknown message type {message.get('type')!r}.",
                             request_id)
            return
        try:
            await handler(self, message, request_id)
        except ProtocolError as exc:
            await self.error(exc.code, exc.message, request_id)
        except services.Forbidden as exc:
            await self.error("forbidden", str(exc), request_id)
        except Exception:
            log.exception("socket message %r failed", message.get("type"))
            await self.error("internal", "Something went wrong on the server; nothing changed.",
                             request_id)

    def _render(self, request_id: Any, broadcast: bool = True) -> services.Rendered | None:
        assert self.access is not None
        return services.render_current(self.access.session, request_id, broadcast=broadcast)

    async def _mutate_and_render(self, mutation: Any, request_id: Any, *args: Any) -> None:
        def work() -> services.Rendered:
            assert self.access is not None
            mutation(self.access, *args)
            return services.render_current(self.access.session, request_id, broadcast=False,
                                           sender=self.channel_name)

        self._log = None
        rendered = await off_loop(work)()
        self._log = rendered.log
        await self._deliver(rendered, request_id)

    async def _deliver(self, rendered: services.Rendered, request_id: Any) -> None:
        """Answers this socket first, straight away, then tells the session's other sockets.

        The round trip through the channel layer (Redis) would add milliseconds to every
        click of the person waiting on it; this socket skips that copy (see session_mask).
        A frame that a newer change has superseded still goes to this socket: it answers the
        prompts it covers (the first click of a quick pair would otherwise wait for the second
        decode too), and the newer frame follows. The other sockets only get the newest.
        """
        if rendered.frame is not None and rendered.header is not None:
            seq = rendered.header["seq"]
            if seq < self._sent_seq:
                return  # this page already shows a newer revision
            await self.send(bytes_data=rendered.frame)
            self._sent_seq = seq
            if not rendered.superseded and not rendered.alone:
                await off_loop(services.publish)(rendered, self.channel_name)
        elif rendered.frame is None:
            # Not ready: the prompt is kept; tell this page where things stand.
            session = rendered.session
            await self.send_json({"type": "status", "status": session.status,
                                  "progress": session.progress, "message": session.message,
                                  "id": request_id})

    async def on_prompt(self, message: dict[str, Any], request_id: Any) -> None:
        if "prompt" not in message:
            raise ProtocolError("bad_field", "'prompt' is missing")
        assert self.access is not None
        services.guess_next(self.access, self._log, message["prompt"])
        self._log = None  # until the write says what the log is now
        self._render_id = request_id
        if self._renderer is not None and not self._renderer.done():
            self._log = await off_loop(services.add_prompt)(self.access, message["prompt"])
            self._written = self._log
            # Asked again: the loop may have ended while the prompt was being written.
            if self._renderer is not None and not self._renderer.done():
                self._render_again = True  # the running loop draws this prompt next
            else:
                self._renderer = asyncio.ensure_future(self._render_loop())
            return
        # Nothing is rendering for this socket: the write and its render go off the event
        # loop in one hop (a hop costs the web process most of a millisecond of CPU). This
        # handler still returns once the write is committed, so the next message is read, and
        # coalesced, while the click decodes.
        committed: asyncio.Future[services.PromptLog | None] = \
            asyncio.get_running_loop().create_future()
        self._renderer = asyncio.ensure_future(
            self._render_loop(first=(message["prompt"], committed)))
        self._log = await committed

    def _write_and_render(self, prompt: Any, request_id: Any,
                          committed: asyncio.Future[services.PromptLog | None],
                          loop: asyncio.AbstractEventLoop) -> services.Rendered | None:
        """In a worker thread: the prompt's write, reported to ``committed`` as soon as it is
        done (its error too, which on_prompt raises to the page), then the render."""
        assert self.access is not None
        try:
            written = services.add_prompt(self.access, prompt)
        except Exception as exc:
            loop.call_soon_threadsafe(_settle, committed, None, exc)
            return None
        loop.call_soon_threadsafe(_settle, committed, written, None)
        return services.render_prompts(self.access, request_id, broadcast=False,
                                       written=written, sender=self.channel_name)

    async def _render_loop(self, first: tuple[Any, asyncio.Future[Any]] | None = None) -> None:
        """Draws the newest prompt log until no prompt came in meanwhile; ``first``: a prompt
        to write first, and the future that hears when it is written."""
        latest_only = False
        while True:
            self._render_again = False
            request_id = self._render_id
            written, self._written = self._written, None
            try:
                if first is not None:
                    prompt, committed = first
                    first = None
                    try:
                        # None: the write failed, and on_prompt tells the page.
                        rendered = await off_loop(self._write_and_render)(
                            prompt, request_id, committed, asyncio.get_running_loop())
                    finally:  # never leave on_prompt waiting, whatever went wrong
                        _settle(committed, None, RuntimeError("the prompt was not written"))
                else:
                    rendered = await off_loop(services.render_prompts)(
                        self.access, request_id, latest_only=latest_only, broadcast=False,
                        written=written, sender=self.channel_name)
            except ProtocolError as exc:
                self._log = None  # the prompt the model failed on was undone
                await self.error(exc.code, exc.message, request_id)
            except Exception:
                self._log = None
                log.exception("rendering the prompts of a socket failed")
                await self.error("internal", "Something went wrong on the server.", request_id)
            else:
                if rendered is not None:
                    await self._deliver(rendered, request_id)
            if not self._render_again:
                return
            latest_only = True  # prompts piled up while we decoded: one step for all of them

    async def on_undo(self, message: dict[str, Any], request_id: Any) -> None:
        await self._mutate_and_render(services.undo, request_id)

    async def on_redo(self, message: dict[str, Any], request_id: Any) -> None:
        await self._mutate_and_render(services.redo, request_id)

    async def on_clear(self, message: dict[str, Any], request_id: Any) -> None:
        await self._mutate_and_render(services.clear, request_id)

    async def on_candidate(self, message: dict[str, Any], request_id: Any) -> None:
        await self._mutate_and_render(services.select_candidate, request_id,
                                      message.get("index"))

    async def on_apply(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(services.apply)(self.access, message.get("name"))

    async def on_reopen(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(services.reopen)(self.access, message.get("object_id"))

    async def on_rename(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        if "name" not in message:
            raise ProtocolError("bad_field", "'name' is missing")
        await off_loop(services.update_object)(self.access, message.get("object_id"),
                                               name=message["name"])

    async def on_visibility(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        if not isinstance(message.get("visible"), bool):
            raise ProtocolError("bad_field", "'visible' must be true or false")
        await off_loop(services.update_object)(self.access, message.get("object_id"),
                                               visible=message["visible"])

    async def on_delete(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        await off_loop(services.delete_object)(self.access, message.get("object_id"))

    async def on_model(self, message: dict[str, Any], request_id: Any) -> None:
        assert self.access is not None
        self._log = None
        session = await off_loop(services.switch_model)(self.access, message.get("model"))
        self.access.session = session

    async def _join(self) -> None:
        """Into the session's group, and its set of sockets (see notify.alone)."""
        assert self.access is not None
        await self.channel_layer.group_add(self.group, self.channel_name)
        await off_loop(notify.join)(self.access.session.pk, self.channel_name)

    async def on_ping(self, message: dict[str, Any], request_id: Any) -> None:
        # The group lives in Redis: a Redis that lost its data (flushed, or restarted without
        # saving) no longer has it, and it expires after a day.
        # Pages ping every 25 s, so joining again here brings every socket back into its
        # session's live updates within that time. Both writes are idempotent.
        try:
            await self._join()
        except (redis.exceptions.RedisError, OSError):
            log.warning("joining the group again failed (Redis down?)", exc_info=True)
        await self.send_json({"type": "pong", "id": request_id})

    async def on_status(self, message: dict[str, Any], request_id: Any) -> None:
        """The stored encode status, for a page that waited without news (a lost message)."""
        assert self.access is not None
        session = await off_loop(services.encode_status)(self.access)
        await self.send_json({"type": "status", "status": session.status,
                              "progress": session.progress, "message": session.message,
                              "id": request_id})

    HANDLERS = {
        "prompt": on_prompt, "undo": on_undo, "redo": on_redo, "clear": on_clear,
        "candidate": on_candidate, "apply": on_apply, "reopen": on_reopen,
        "rename": on_rename, "visibility": on_visibility, "delete": on_delete,
        "model": on_model, "ping": on_ping, "status": on_status,
    }

    # --- group notifications (small; the frame itself is fetched by key) ----------------------

    async def session_mask(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self._sent_seq:
            return  # this socket rendered that revision (or a newer one) and has it already
        self._log = None  # another socket (or the worker) drew a log this one did not write
        frame = await off_loop(notify.get_frame)(event["key"])
        if frame is not None:
            await self.send(bytes_data=frame)

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
            off_loop(services.preload_embedding)(self.access.session))

    async def session_objects(self, event: dict[str, Any]) -> None:
        assert self.access is not None
        access = self.access
        self._log = None

        def load() -> list[dict[str, Any]]:
            session = services.reload(access.session)
            token = session.edit_token if access.role == services.EDIT else session.view_token
            return services.objects_list(session, token)

        await self.send_json({"type": "objects", "objects": await off_loop(load)()})

    async def session_state(self, event: dict[str, Any]) -> None:
        assert self.access is not None
        access = self.access
        self._log = None

        def load() -> dict[str, Any]:
            access.session = services.reload(access.session)
            return services.session_state(access)

        await self.send_json({"type": "state", "state": await off_loop(load)()})


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the socket went away and its handler was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
