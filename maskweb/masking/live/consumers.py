"""The session socket: parse, authorise, call the session domain off the event loop, send.

Every call into the domain runs in a worker thread (``thread_sensitive=False``), so a slow
decode on one socket never stalls another. Messages of one socket are handled in order. Each
message is validated once, by maskweb.masking.protocol.schemas; a refused one is answered
with an error frame carrying its id. A socket's prompts are stored at once and drawn newest
first (prompt_stream), hover previews one at a time at the lowest priority (previews). Redis
is needed to draw and to tell the session's other sockets, never to keep the socket open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from maskweb.masking import editing
from maskweb.masking.live.previews import Previews
from maskweb.masking.live.prompt_stream import CLOSE_NOT_FOUND, UNAVAILABLE, PromptStream
from maskweb.masking.live.throttle import TokenBucket
from maskweb.masking.models import MaskSession
from maskweb.masking.plumbing import notify, pools
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError

log = logging.getLogger(__name__)

# Below Daphne's application_close_timeout (10 s), after which it kills the consumer anyway.
DISCONNECT_WAIT_SECONDS = 5.0


def off_loop(func: Any) -> Any:
    return database_sync_to_async(func, thread_sensitive=False)


class SessionConsumer(AsyncWebsocketConsumer):
    access: editing.Access | None = None
    _sent_seq = -1  # the newest revision whose frame this socket sent itself
    # The newest revision whose frame this page got, from this socket or from another one
    # through the group: a ping finds a newer revision in the database that never reached the
    # page (the host that stored it died before sending its frame) and draws it here.
    _shown_seq = -1
    _preloading: asyncio.Future[None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prompts = PromptStream(self)
        self.previews = Previews(self)

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
        try:
            await self._join()
        except (redis.exceptions.RedisError, OSError):
            # Live updates from others start with the first ping that reaches Redis.
            log.warning("joining the session's group failed (Redis down?)", exc_info=True)
        try:
            state = await off_loop(self._state_after_joining)()
        except MaskSession.DoesNotExist:  # deleted while this page connected
            await self.close(code=CLOSE_NOT_FOUND)
            return
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
            self.prompts.log = rendered.log
        if rendered is not None and rendered.frame is not None and rendered.header is not None \
                and not rendered.header["empty"]:
            await self.send(bytes_data=rendered.frame)
            # A change made while this drew is also on its way through the group: not twice.
            self._sent_seq = rendered.header["seq"]
        if rendered is not None and rendered.frame is not None:
            # The page has the session as of its hello, and its mask if it has one. (Not while
            # the photo is analysed: the frame of this revision is still to come then.)
            self._shown_seq = max(self._shown_seq, self._sent_seq, state["revision"])

    def _state_after_joining(self) -> dict[str, Any]:
        """The session read again once this socket is in its group: a change made before the
        join is in this state, one made after it comes as a message. (The hello used the
        session as ``resolve`` had read it, before the join: a photo that became ready in
        between was shown as still analysed, and its news had gone to the group before this
        socket was in it.)"""
        assert self.access is not None
        self.access.session = editing.reload(self.access.session)
        return editing.session_state(self.access)

    async def disconnect(self, code: int) -> None:
        # Work in flight is let finish, not cancelled: cancelling the task leaves its thread
        # running, and a thread still publishing the last frame needs this event loop
        # (async_to_sync); if the loop ends first, that thread never returns (a test run hung
        # in the executor's shutdown). A frame sent after the close is dropped by the server.
        pending = [task for task in (self.prompts.stop(), self._preloading,
                                     self.previews.drawing())
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
                if self.previews.bucket.take():
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

        self.prompts.log = None
        rendered = await pools.renders.run(work)
        self.prompts.log = rendered.log
        await self.deliver(rendered, request_id)

    async def deliver(self, rendered: editing.Rendered, request_id: Any,
                       drawn: int | None = None) -> None:
        """Answers this socket first, straight away, then tells the session's other sockets.

        The round trip through the channel layer (Redis) would add milliseconds to every
        click of the person waiting on it; this socket skips that copy (see session_mask).
        A frame that a newer change has superseded still goes to this socket: it answers the
        prompts it covers (the first click of a quick pair would otherwise wait for the second
        decode too), and the newer frame follows. The other sockets only get the newest.
        ``drawn``: the write count the frame covers (see PromptStream).
        """
        if rendered.frame is not None and rendered.header is not None:
            self.prompts.not_ready = False
            if drawn is not None:
                self.prompts.answered(drawn)
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
            self.prompts.not_ready = True
            session = rendered.session
            await self.send_json({"type": "status", "status": session.status,
                                  "progress": session.progress, "message": session.message,
                                  "id": request_id})

    async def on_prompt(self, message: schemas.PromptMessage, request_id: Any) -> None:
        await self.prompts.add(message.prompt, request_id)

    async def on_preview(self, message: schemas.PreviewMessage, request_id: Any) -> None:
        self.previews.ask(message.prompt, request_id)

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
        self.prompts.log = None
        await off_loop(editing.apply)(self.access, message.name)

    async def on_reopen(self, message: schemas.ReopenMessage, request_id: Any) -> None:
        assert self.access is not None
        self.prompts.log = None
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

    async def on_delete(self, message: schemas.DeleteMessage, request_id: Any) -> None:
        assert self.access is not None
        self.prompts.log = None
        await off_loop(editing.delete_object)(self.access, message.object_id)

    async def on_model(self, message: schemas.ModelMessage, request_id: Any) -> None:
        assert self.access is not None
        self.prompts.log = None
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
        if self.prompts.busy():
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
            await self.deliver(rendered, None)
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
        self.prompts.log = None  # another socket (or the worker) drew a log this one did not write
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
        self.prompts.log = None

        def load() -> list[dict[str, Any]]:
            session = editing.reload(access.session)
            token = session.edit_token if access.role == editing.EDIT else session.view_token
            return editing.objects_list(session, token)

        await self.send_json({"type": "objects", "objects": await off_loop(load)()})

    async def session_state(self, event: dict[str, Any]) -> None:
        assert self.access is not None
        access = self.access
        self.prompts.log = None

        def load() -> dict[str, Any]:
            access.session = editing.reload(access.session)
            return editing.session_state(access)

        await self.send_json({"type": "state", "state": await off_loop(load)()})
