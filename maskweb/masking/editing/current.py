"""The current object: its prompt log (add, clear, undo, redo, candidate), one transaction
per change.

Each change bumps the session's revision (which orders it against the session's other
changes and names the mask frame that shows it). A prompt starts its decode while the write
commits (render.prefetch); drawing the log is maskweb.masking.editing.masks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pydantic import BaseModel

from maskweb.masking.decoding import render
from maskweb.masking.decoding.grids import to_stored
from maskweb.masking.editing import history
from maskweb.masking.editing.access import EDIT, Access, reload
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos.models import Photo

log = logging.getLogger(__name__)


def parse_upright(data: Any, photo: Photo) -> dict[str, Any]:
    """One prompt (a ``schemas.Prompt``, or anything to validate as one) in upright
    coordinates, checked to lie on the photo; returns it as a plain dict."""
    prompt = data if isinstance(data, BaseModel) else schemas.check(
        schemas.Prompt, data, "prompt")
    clean = prompt.model_dump()
    width, height = photo.upright_width, photo.upright_height
    if clean["kind"] == "point":
        _inside(width, height, clean["x"], clean["y"], "the point")
    elif clean["kind"] == "box":
        _inside(width, height, clean["x0"], clean["y0"], "the box corner")
        _inside(width, height, clean["x1"], clean["y1"], "the box corner")
    else:
        for x, y in clean["points"]:
            _inside(width, height, x, y, "the stroke point")
        if clean["radius"] > max(width, height):
            raise ProtocolError("bad_field", "'radius' must be > 0 and within the picture")
    return clean


def _inside(width: int, height: int, x: float, y: float, what: str) -> None:
    if not (0 <= x <= width and 0 <= y <= height):
        raise ProtocolError("out_of_bounds", f"{what} ({x:g}, {y:g}) is outside the "
                            f"{width}x{height} picture")


def locked_current(access: Access) -> tuple[MaskSession, MaskObject]:
    """Inside a transaction: the session row locked, and its current object (made if none).

    One query: every click passes here, and each query costs the ORM most of a millisecond.
    ``of=("self",)``: PostgreSQL locks the session row only, and refuses FOR UPDATE on the
    nullable side of the outer join to ``current`` without it.
    """
    session = (MaskSession.objects.select_for_update(of=("self",))
               .select_related("photo", "current").get(pk=access.session.pk))
    current = session.current
    if current is None or current.applied:
        current = new_object(session)
    return session, current


def new_object(session: MaskSession) -> MaskObject:
    last = session.mask_objects.order_by("-number").first()
    number = (last.number if last else 0) + 1
    obj = MaskObject.objects.create(session=session, number=number, name=f"Object {number}")
    session.current = obj
    session.save(update_fields=["current"])
    return obj


def bump_revision(session: MaskSession) -> None:
    MaskSession.objects.filter(pk=session.pk).update(revision=F("revision") + 1,
                                                     last_active=timezone.now())


@dataclass
class PromptLog:
    """The current object's prompts as a write left them, and the session as it read it.

    ``current``: the object itself, when a write made the log (with the session's revision
    after the write), so the render that follows can draw from them without reading both
    again (render_current's ``written``)."""

    session: MaskSession
    prompts: list[dict[str, Any]]
    current: MaskObject | None = None


def _record(access: Access, action: dict[str, Any] | None,
            change: Any = None) -> PromptLog | None:
    """Appends an action to the current object's log (dropping the redo tail), or applies
    ``change(obj)`` for undo/redo/candidate; one transaction. Returns the log after the
    change, with the session and object as written (None when there was nothing to undo /
    redo): the caller renders next, from them or from a fresh read."""
    access.require_edit()
    with transaction.atomic():
        session, obj = locked_current(access)
        if action is not None:
            if action["op"] == "prompt" and len(obj.effective_prompts()) >= settings.WS_MAX_PROMPTS:
                raise ProtocolError("too_many_points", f"an object has at most "
                                    f"{settings.WS_MAX_PROMPTS} prompts; apply it or clear it")
            # The revision this write makes orders it against the session's other changes.
            action = {**action, "rev": session.revision + 1}
            obj.actions = obj.actions[: obj.cursor] + [action]
            obj.cursor = len(obj.actions)
            history.forget_undone(session)
            obj.candidate = 0
        elif change is not None and not change(obj):
            return None  # nothing to undo / redo: no revision, no broadcast
        prompts = obj.effective_prompts()
        if action is not None and action["op"] == "prompt":
            render.prefetch(session, prompts)  # decodes while we commit
        obj.save(update_fields=["actions", "cursor", "candidate"])
        bump_revision(session)
        session.revision += 1  # what _bump wrote: the row is locked since _locked read it
    return PromptLog(session, prompts, current=obj)


def stored_prompt(access: Access, prompt: Any) -> dict[str, Any]:
    """A prompt from the page (upright photo pixels) as the log stores it; ProtocolError when
    it is malformed."""
    photo = access.session.photo
    return to_stored(parse_upright(prompt, photo), photo)


def add_prompt(access: Access, prompt: Any) -> PromptLog | None:
    return _record(access, {"op": "prompt", "prompt": stored_prompt(access, prompt)})


def guess_next(access: Access, log: PromptLog | None, prompt: Any) -> bool:
    """Starts decoding ``log`` plus this prompt before the prompt is even written (True then).

    A socket knows the log its last write or frame left, so the decode of its next click can
    start as the message arrives, about 5 ms before the write would start it (a transaction
    with a locked read). Only a guess: if another editor changed the object meanwhile, the
    decode is for prompts nobody has and is never shown (predictions are keyed by their exact
    prompts); the click is then decoded after its write, as without a guess.
    """
    if log is None or access.role != EDIT or len(log.prompts) >= settings.WS_MAX_PROMPTS:
        return False
    try:
        stored = stored_prompt(access, prompt)
    except ProtocolError:
        return False  # add_prompt says what is wrong with it
    # New: the socket's own prompt was not in any log before this message.
    return render.prefetch(log.session, [*log.prompts, stored], new=True)


def clear(access: Access) -> None:
    _record(access, {"op": "clear"})


def undo(access: Access) -> None:
    """Takes back the newest change of the session: a prompt of the current object, or an
    apply, delete, rename, visibility, reopen or combine (maskweb.masking.editing.history)."""
    _step(access, forward=False)


def redo(access: Access) -> None:
    """Makes the oldest undone change again."""
    _step(access, forward=True)


def _step(access: Access, *, forward: bool) -> None:
    access.require_edit()
    with transaction.atomic():
        session, obj = locked_current(access)
        change = history.next_change(session, forward)
        rev = history.prompt_rev(obj, forward)
        if change is not None and (rev is None or (change.revision < rev if forward
                                                   else change.revision > rev)):
            (history.replay if forward else history.revert)(session, change)
            bump_revision(session)
            pk = session.pk

            def tell() -> None:
                notify.objects(pk)
                notify.state(pk)
            transaction.on_commit(tell)
            return
        if rev is None:
            return  # nothing to undo / redo: no revision, no broadcast
        obj.cursor += 1 if forward else -1
        obj.candidate = 0
        obj.save(update_fields=["cursor", "candidate"])
        bump_revision(session)


def shown_current(access: Access, doing: str, what: str) -> tuple[MaskSession, MaskObject]:
    """The session as it is now and its current object, which must have prompts and a photo
    that is analysed: what acting on the shown mask needs (``doing`` it, a mask ``what``
    for). ProtocolError ``empty`` or ``not_ready`` otherwise."""
    session = reload(access.session)
    obj = session.current
    if obj is None or not obj.effective_prompts():
        raise ProtocolError("empty", f"The current object has no mask {what}.")
    if session.status != Status.READY:
        # Not "lost": the first analysis (or a model switch's) is still running.
        raise ProtocolError("not_ready", f"The photo is still being analysed; {doing} once "
                            "its mask is shown.")
    return session, obj


def select_candidate(access: Access, index: Any) -> None:
    """Chooses one of the model's candidate masks for the current object: ``index`` must be
    below the number of candidates its prompts gave (known once the mask is drawn)."""
    access.require_edit()
    index = schemas.check(schemas.CandidateIndex, index, "index")
    session, obj = shown_current(access, "choose a candidate", "to choose from")
    try:
        count = len(render.current_mask(session, obj).scores)
    except render.EmbeddingMissing:
        raise ProtocolError("not_ready", "The photo is being analysed again; choose a "
                            "candidate in a moment.") from None
    schemas.candidate_index(index, count)

    def step(obj: MaskObject) -> bool:
        obj.candidate = index
        return True
    _record(access, None, step)
