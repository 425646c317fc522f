"""Live updates to every socket of a session, through the channel layer.

Channel-layer messages stay small notifications (the layer promises about 1 MB): a mask frame
is put in Redis under a short-lived key and the notification carries only that key; each
consumer fetches it (from this process's memory when it was made here).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from maskweb.masking.plumbing.redis_client import get_quick_redis, get_redis

log = logging.getLogger(__name__)

FRAME_TTL_SECONDS = 120
SEND_TIMEOUT_SECONDS = 30  # as long as one Redis read may take (socket_timeout)
QUICK_SEND_SECONDS = 2.0  # a frame for the other sockets, sent from a socket's render loop
_frames: OrderedDict[str, bytes] = OrderedDict()
_frames_lock = threading.Lock()


def group_name(session_pk: int) -> str:
    return f"maskweb.session.{session_pk}"


def put_frame(session_pk: int, seq: int, frame: bytes, patient: bool = True) -> str:
    key = f"maskweb:frame:{session_pk}:{seq}:{id(frame)}"
    (get_redis() if patient else get_quick_redis()).set(key, frame, ex=FRAME_TTL_SECONDS)
    with _frames_lock:
        _frames[key] = frame
        while len(_frames) > 32:
            _frames.popitem(last=False)
    return key


# The sockets of a session, by channel name, so a socket that is alone on its session need not
# send its frames through the channel layer to nobody (two Redis writes, a group send and its
# own copy coming back: about 3 ms of the web process's CPU per click). Entries of a process
# that died stay until the key expires: they only cost a useless broadcast.
SOCKETS_TTL_SECONDS = 86400


def sockets_key(session_pk: int) -> str:
    return f"maskweb:sockets:{session_pk}"


def join(session_pk: int, channel_name: str) -> None:
    pipe = get_redis().pipeline()
    pipe.sadd(sockets_key(session_pk), channel_name)
    pipe.expire(sockets_key(session_pk), SOCKETS_TTL_SECONDS)
    pipe.execute()


def leave(session_pk: int, channel_name: str) -> None:
    get_redis().srem(sockets_key(session_pk), channel_name)


def alone(session_pk: int, channel_name: str) -> bool:
    """True only when this socket is known to be its session's only one. An unknown set (a
    Redis restart, a Redis that cannot be reached at once) is not "alone": then frames go out
    as before."""
    try:
        members = get_quick_redis().smembers(sockets_key(session_pk))
    except redis.exceptions.RedisError:
        return False
    return members == {channel_name.encode()}


def get_frame(key: str) -> bytes | None:
    with _frames_lock:
        frame = _frames.get(key)
    if frame is not None:
        return frame
    data = get_redis().get(key)
    return bytes(data) if data is not None else None  # type: ignore[arg-type]


class _OwnLoop:
    """One long-lived event loop in a background thread, for sends from a process that has
    no event loop (the Celery worker).

    There, async_to_sync starts a new thread and a new loop for every message, and the
    channel layer opens a new Redis connection for each loop: 2.8 ms of CPU and 2.0 ms of
    wall time a send, against 0.2 ms on a loop that lives on (its connections are pooled).
    A worker sends four statuses per photo, on the cores its encoder needs. In the web
    process, sync code runs in threads of the server's own loop, where async_to_sync already
    reuses that loop.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked child has the parent's loop object but not its thread.
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="notify-loop",
                                 daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


_own_loop = _OwnLoop()


def send_from_own_loop(enabled: bool = True) -> None:
    """Makes this process's sends go through one event loop of its own (see _OwnLoop)."""
    _own_loop.enabled = enabled


def send(session_pk: int, message: dict[str, Any], timeout: float | None = None) -> None:
    """From sync code (views, services, the worker). ``timeout``: give up (TimeoutError)
    after that many seconds instead of waiting out a Redis restart."""
    layer = get_channel_layer()
    if layer is None:
        return
    if timeout is not None:
        async def bounded() -> None:
            await asyncio.wait_for(layer.group_send(group_name(session_pk), message), timeout)

        if _own_loop.enabled:
            asyncio.run_coroutine_threadsafe(bounded(), _own_loop.loop()).result()
        else:
            async_to_sync(bounded)()
        return
    if _own_loop.enabled:
        # A pooled connection that a Redis restart closed reconnects inside the channel
        # layer (maskweb.redis_retry); async_to_sync's fresh connection never meets one.
        future = asyncio.run_coroutine_threadsafe(
            layer.group_send(group_name(session_pk), message), _own_loop.loop())
        try:
            # Bounded: a send that hangs must not hold the worker's job for good.
            future.result(timeout=SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            future.cancel()
            raise
    else:
        async_to_sync(layer.group_send)(group_name(session_pk), message)


def status(session_pk: int, status: str, progress: float, message: str = "") -> None:
    send(session_pk, {"type": "session.status", "status": status,
                      "progress": round(progress, 3), "message": message})


def status_or_log(session_pk: int, status_: str, progress: float, message: str = "") -> None:
    """``status``, with a failure logged instead of raised: for callers that stored the status
    first. A page that hears nothing asks for it (editing.encode_status), so a lost message
    must not cost the work that sent it (an encode, the queueing of one)."""
    try:
        status(session_pk, status_, progress, message)
    except Exception:
        log.warning("telling session %s its status (%s) failed", session_pk, status_,
                    exc_info=True)


def _sent_key(session_pk: int, seq: int) -> str:
    return f"maskweb:sent:{session_pk}:{seq}"


def mask(session_pk: int, seq: int, frame: bytes, patient: bool = True) -> bool:
    """Broadcasts the frame of this revision unless someone already did (False then).

    The worker (prompts sent while encoding) and a consumer (a prompt just after "ready") can
    both render the same revision; the page gets it once. ``patient=False``: a Redis that
    cannot be reached at once raises at once (see editing.publish).
    """
    client = get_redis() if patient else get_quick_redis()
    if not client.set(_sent_key(session_pk, seq), "1", nx=True, ex=FRAME_TTL_SECONDS):
        return False
    key = put_frame(session_pk, seq, frame, patient)
    try:
        send(session_pk, {"type": "session.mask", "seq": seq, "key": key},
             timeout=None if patient else QUICK_SEND_SECONDS)
    except TimeoutError as exc:
        raise redis.exceptions.ConnectionError(f"the channel layer did not answer: {exc}") \
            from exc
    return True


def forget_sent(session_pk: int, seq: int) -> None:
    """This revision's frame must go out again: its embedding is being encoded anew, and the
    pages waiting for it (a reconnect, a new viewer) never got it."""
    get_redis().delete(_sent_key(session_pk, seq))


def objects(session_pk: int) -> None:
    send(session_pk, {"type": "session.objects"})


def state(session_pk: int) -> None:
    send(session_pk, {"type": "session.state"})
