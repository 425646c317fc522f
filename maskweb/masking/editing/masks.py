"""Drawing the current object's mask from its prompt log, and sending the frame to the
session's sockets; the hover preview; the masks that waited for an encode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.db import transaction

from maskweb.masking.decoding import render
from maskweb.masking.decoding.grids import to_stored, to_upright
from maskweb.masking.editing import history
from maskweb.masking.editing.access import Access, reload
from maskweb.masking.editing.current import PromptLog, add_prompt, parse_upright, undo
from maskweb.masking.editing.encodes import request_encode
from maskweb.masking.jobs import encoding
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.protocol.schemas import ProtocolError

log = logging.getLogger(__name__)


@dataclass
class Rendered:
    """The current mask (None while the embedding is not ready) and its frame."""

    session: MaskSession
    current: render.CurrentMask | None
    header: dict[str, Any] | None
    frame: bytes | None
    superseded: bool = False
    log: PromptLog | None = None  # the prompts the frame was drawn from
    alone: bool = False  # the ``sender`` socket is its session's only one: nobody to publish to
    # What ``newest()`` said when a render that waited for a core read the log again: the
    # frame answers that (see render_current).
    newest: tuple[int, Any] | None = None


def render_current(session: MaskSession, request_id: str | None = None, *,
                   broadcast: bool = True, latest_only: bool = False,
                   written: PromptLog | None = None, sender: str | None = None,
                   one_step: bool = False,
                   newest: Callable[[], tuple[int, Any]] | None = None) -> Rendered:
    """Computes the current object's mask and, with ``broadcast``, sends it to every socket.

    ``sender``: the channel of the socket that will send the frame itself. The render then
    also asks whether that socket is alone on the session (``Rendered.alone``), so the socket
    need not go off the event loop a second time to publish a frame nobody else would get. It
    asks after the write this frame shows was committed, so a socket that joins later misses
    nothing: it joins, then draws the session on connect, and finds that write there.

    ``written``: the log a write of this session just made; the render draws the session and
    object as that write left them instead of reading them again (a click's path saves a
    query). A later change by someone else is caught as for a fresh read: the revision check
    below marks the frame superseded.

    ``newest``: for a socket, (its write count, the id of its newest prompt); read just before
    the log is read again after a wait for a core, so the frame answers the newest prompt it
    covers, by its id (``Rendered.newest``).

    When the embedding is missing it asks for an encode (telling the page) and returns
    without a mask: the worker sends the mask when it is done, its prompts decoded together
    (``one_step``, see render).
    """
    obj: MaskObject | None
    if written is not None and written.current is not None and written.session.pk == session.pk:
        session, obj = written.session, written.current
    else:
        session = reload(session)
        obj = session.current
    prompts = obj.effective_prompts() if obj is not None else []
    needs_decode = session.status == Status.READY and bool(prompts) \
        and not render.in_hand(session, prompts)
    # A decode needs a core, taken before the log is final: when every core was busy, the
    # prompts that came in meanwhile are read again and decoded with these, in one step,
    # instead of one decode for the log read before the wait and another for them after it.
    answered = None
    with render.cores.hold() if needs_decode else nullcontext(False) as waited:
        if waited:
            if newest is not None:
                answered = newest()
                request_id = answered[1]
            session, latest_only = reload(session), True
            obj = session.current
        if obj is None:
            return Rendered(session, None, None, None)
        if session.status != Status.READY and obj.effective_prompts():
            return Rendered(session, None, None, None)
        try:
            current = render.current_mask(session, obj, latest_only, one_step)
        except render.EmbeddingMissing:
            with transaction.atomic():
                request_encode(session, lost=True)
            return Rendered(reload(session), None, None, None)
    if current.mask is not None and current.candidate != obj.candidate:
        obj.candidate = current.candidate
    header = mask_header(session, obj, current, request_id)
    png = render.png_bytes(current.mask) if current.mask is not None else b""
    frame = render.mask_frame(header, png)
    latest = MaskSession.objects.filter(pk=session.pk).values_list("revision", flat=True).first()
    superseded = latest != session.revision
    rendered = Rendered(session, current, header, frame, superseded=superseded,
                        log=PromptLog(session, obj.effective_prompts()),
                        alone=sender is not None and not superseded
                        and notify.alone(session.pk, sender), newest=answered)
    if broadcast:
        publish(rendered)
    return rendered


def render_prompts(access: Access, request_id: str | None = None, *,
                   latest_only: bool = False, broadcast: bool = True,
                   written: PromptLog | None = None, sender: str | None = None,
                   newest: Callable[[], tuple[int, Any]] | None = None) -> Rendered:
    """The mask after new prompts. When the model fails on them, the newest prompt is undone
    again (it stays redo-able), so one bad decode cannot leave the session stuck on a broken
    log."""
    try:
        return render_current(access.session, request_id, broadcast=broadcast,
                              latest_only=latest_only, written=written, sender=sender,
                              newest=newest)
    except redis.exceptions.RedisError:
        raise  # not the prompt's fault: it stays, and is drawn once Redis is back
    except Exception as exc:
        log.exception("decoding a prompt of session %s failed", access.session.pk)
        undo(access)
        raise ProtocolError("internal", f"The model failed on this prompt ({exc}); it was "
                            "undone.") from exc


def publish(rendered: Rendered, sender: str | None = None, patient: bool = True) -> bool:
    """Sends a rendered frame to every socket of the session, unless someone already sent
    this revision or a newer one exists (False then: a newer change is on its way to being
    rendered, and this frame would be stale at once). ``sender``: the channel of the socket
    that already has the frame; nothing is sent when it is the session's only socket.
    ``patient=False``: a Redis that cannot be reached at once is not waited for (the frame is
    not sent, and logged): a socket's render loop must not stall on the others' copy."""
    if rendered.frame is None or rendered.superseded or rendered.header is None:
        return False
    try:
        if sender is not None and notify.alone(rendered.session.pk, sender):
            return False
        return notify.mask(rendered.session.pk, rendered.header["seq"], rendered.frame,
                           patient=patient)
    except redis.exceptions.RedisError:
        if patient:
            raise
        log.warning("sending session %s's frame to its other sockets failed",
                    rendered.session.pk, exc_info=True)
        return False


def add_prompt_and_render(access: Access, prompt: Any,
                          request_id: str | None = None) -> Rendered:
    """A prompt and its mask (the HTTP API's way; a socket coalesces, see consumers)."""
    written = add_prompt(access, prompt)
    return render_prompts(access, request_id, written=written)


# --- hover preview -------------------------------------------------------------------------

def preview(access: Access, prompt: Any, request_id: Any = None) -> bytes | None:
    """The mask a click at this point would give the current object, as a binary frame
    (header ``"type": "preview"``), without storing anything; None when no decode core is
    free right now.

    A preview is worth less than any click: it decodes only on a core nobody is waiting for
    (render.predict's ``wait_for_core=False``; cores are handed to waiting clicks first), so
    while clicks queue, previews are skipped instead of making the clicks wait longer. What
    it can still cost a click that comes while it decodes is one decode, at most.
    """
    access.require_edit()
    session = reload(access.session)
    if session.status != Status.READY:
        raise ProtocolError("not_ready", "The photo is still being analysed.")
    parsed = parse_upright(prompt, session.photo)
    if parsed["kind"] != "point":
        raise ProtocolError("bad_field", "A preview is of a click: a 'point' prompt.")
    obj = session.current
    prompts = [*(obj.effective_prompts() if obj is not None else []),
               to_stored(parsed, session.photo)]
    if len(prompts) > settings.WS_MAX_PROMPTS:
        raise ProtocolError("too_many_points", "This object has as many prompts as it may.")
    try:
        prediction = render.predict(session, prompts, alongside=True, wait_for_core=False)
    except render.EmbeddingMissing:
        return None  # the next real click asks for the encode
    if prediction is None:
        return None
    photo = session.photo
    mask = np.asarray(prediction.candidates[0].mask, dtype=bool) if prediction.candidates \
        else None
    if mask is not None and mask.shape != (photo.work_height, photo.work_width):
        mask = render.resize_mask(mask, photo.work_width, photo.work_height)
    empty = mask is None or not mask.any()
    header = {"type": "preview", "v": 1, "id": request_id, "object_id":
              obj.number if obj is not None else None, "prompt": parsed,
              "width": photo.work_width, "height": photo.work_height,
              "bbox": None if empty else render.bbox(mask), "empty": empty}
    return render.mask_frame(header, b"" if mask is None or empty else render.png_bytes(mask))


def mask_header(session: MaskSession, obj: MaskObject, current: render.CurrentMask,
                request_id: str | None) -> dict[str, Any]:
    photo = session.photo
    return {
        "type": "mask", "v": 1, "seq": session.revision, "id": request_id,
        "object_id": obj.number, "width": photo.work_width, "height": photo.work_height,
        "candidate": current.candidate, "scores": current.scores, "bbox": render.bbox(current.mask),
        "prompts": [to_upright(p, photo) for p in obj.effective_prompts()],
        "can_undo": history.can_undo(session, obj), "can_redo": history.can_redo(session, obj),
        "empty": current.mask is None,
    }


# --- masks that waited for an encode --------------------------------------------------------

def draw_waiting(pks: list[int]) -> None:
    """Prompts sent while encoding are waiting: send their masks now, each session's prompts
    decoded together in one step (nobody saw a mask of them), however many there are."""
    for session in MaskSession.objects.filter(pk__in=pks).select_related("photo", "current"):
        if session.current is not None and session.current.effective_prompts():
            try:
                render_current(session, one_step=True)
            except Exception:
                log.exception("rendering the waiting mask of session %s failed", session.pk)


def encode_and_draw(photo_id: int, model_id: str) -> str:
    """The encode job's work (maskweb.masking.jobs.encoding), then the masks that waited for
    it; returns the job's outcome."""
    return encoding.encode_photo(photo_id, model_id, when_ready=draw_waiting)
