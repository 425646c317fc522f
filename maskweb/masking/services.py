"""What a session can do, as plain functions: the HTTP views, the socket consumer and the tests
all call these. Each mutation is one transaction that bumps the session's revision, then
tells every socket of the session (after commit, so nobody reads a state not yet written).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from maskweb.masking import (
    combine,
    downloads,
    embeddings,
    encoding,
    engine,
    history,
    notify,
    render,
    schemas,
)
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.masking.prompts import parse_upright, to_stored, to_upright
from maskweb.masking.redis_client import get_redis
from maskweb.masking.schemas import ProtocolError
from maskweb.photos.ingest import safe_name
from maskweb.photos.models import Photo

log = logging.getLogger(__name__)

EDIT, VIEW = "edit", "view"
# How long a queued encode job keeps others of the same photo and model from being queued: as
# long as the broker keeps a job a dead worker took before handing it out again. The marker
# lives in the same Redis as the queue, so a Redis that lost the job lost the marker too.
QUEUED_SECONDS = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
# last_active is written at most this often per session (a read of the session is not worth
# a write each time).
ACTIVE_PRECISION = dt.timedelta(minutes=10)


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


@dataclass
class Access:
    session: MaskSession
    role: str

    def require_edit(self) -> None:
        if self.role != EDIT:
            raise Forbidden("This is a view link: it cannot change the session.")


def resolve(token: str) -> Access:
    """The session this link opens, with its role; each opening counts as activity (idle
    sessions expire, see maskweb.masking.retention)."""
    if not token or len(token) > 64:
        raise NotFound(token)
    session = (MaskSession.objects.select_related("photo", "current")
               .filter(edit_token=token).first())
    role = EDIT
    if session is None:
        session = (MaskSession.objects.select_related("photo", "current")
                   .filter(view_token=token).first())
        role = VIEW
    if session is None:
        raise NotFound(token)
    now = timezone.now()
    if session.last_active < now - ACTIVE_PRECISION:
        MaskSession.objects.filter(pk=session.pk).update(last_active=now)
        session.last_active = now
    return Access(session, role)


def reload(session: MaskSession) -> MaskSession:
    return MaskSession.objects.select_related("photo", "current").get(pk=session.pk)


def revision(session: MaskSession) -> int | None:
    """The session's revision in the database now (None: deleted)."""
    return MaskSession.objects.filter(pk=session.pk).values_list("revision", flat=True).first()


# --- models and encoding -------------------------------------------------------------------

def model_list() -> list[dict[str, Any]]:
    """The models the pickers offer: those that answer clicks, the page's first prompt (and
    the default, whatever it is). A model that only does boxes well (LiteMedSAM as shipped
    gives empty masks for clicks) stays installed and usable by id, but is not offered."""
    default = engine.default_model()
    return [{"id": m.id, "name": m.name, "default": m.id == default,
             "prompts": list(m.prompts)}
            for m in engine.installed_models() if "click" in m.prompts or m.id == default]


def check_model(model_id: Any) -> str:
    model_id = schemas.check(schemas.ModelId, model_id, "model")
    if not engine.is_installed(model_id):
        installed = ", ".join(m.id for m in engine.installed_models())
        raise ProtocolError("bad_field", f"unknown model {model_id!r}; installed: {installed}")
    return model_id


def request_encode(session: MaskSession, *, lost: bool = False) -> None:
    """Marks the session encoding and queues the encode job (once per photo and model)."""
    message = ("The photo's analysis was lost (cache cleared); analysing it again."
               if lost else "Analysing the photo.")
    MaskSession.objects.filter(pk=session.pk).update(status=Status.ENCODING, progress=0.0,
                                                     message=message)
    session.status, session.progress, session.message = Status.ENCODING, 0.0, message
    # Every caller has just read or written the session: its revision is the one the
    # worker's frame will carry (mask_header's seq).
    photo, model_id, pk, revision = session.photo, session.model_id, session.pk, session.revision

    def enqueue() -> None:
        # The worker broadcasts the mask when the encode is done. If this revision's frame
        # went out before the embedding was lost, "sent already" would stop that broadcast,
        # and a page that reconnected since would wait with no mask.
        try:
            notify.forget_sent(pk, revision)
        except redis.exceptions.RedisError:
            log.warning("forgetting the frame sent for session %s failed", pk, exc_info=True)
        notify.status_or_log(pk, "reencoding" if lost else "encoding", 0.0, message)
        try:
            queue_encode(photo, model_id)
        except Exception:
            # Stored as encoding: the page's status question, the HTTP API's reads and the
            # clean-up job queue it again (requeue_if_lost).
            log.warning("queueing the encode of session %s failed", pk, exc_info=True)

    transaction.on_commit(enqueue)


def queue_encode(photo: Photo, model_id: str) -> bool:
    """Queues the encode job unless one was queued in the last QUEUED_SECONDS (many clicks on
    a session whose embedding is gone, or many pages asking, must not queue many encodes).
    A job queued twice is harmless: the second finds the embedding and only reports it."""
    key = embeddings.embedding_key(photo, model_id)
    client = get_redis()
    if not client.set(encoding.queued_key(key), "1", nx=True, ex=QUEUED_SECONDS):
        return False
    from maskweb.masking.tasks import encode_photo

    try:
        encode_photo.delay(photo.pk, model_id)
    except Exception:
        client.delete(encoding.queued_key(key))  # not queued: let the next check queue it
        raise
    return True


def requeue_if_lost(session: MaskSession) -> bool:
    """Queues the encode of a session stored as encoding when no job is queued (its marker)
    or running (its lock): the job was lost (Redis lost its data, a message was lost).
    True when it queued one."""
    if session.status != Status.ENCODING:
        return False
    key = embeddings.embedding_key(session.photo, session.model_id)
    if get_redis().exists(encoding.lock_key(key)):
        return False
    if queue_encode(session.photo, session.model_id):
        log.info("session %s was encoding with no job in sight: queued one", session.pk)
        return True
    return False


def encode_status(access: Access) -> MaskSession:
    """The session's encode status as stored, for a page that has waited a while without news.

    A page learns the status from messages, and a message can be lost (a Redis that lost its
    data empties the channel layer and the job queue with it; a worker's send can fail). A session
    still encoding with no worker holding its encode lock gets its job queued again: the
    worker then encodes, or finds the embedding and marks the session ready. The socket's
    ``status`` message and the HTTP API's reads of a session both ask here, so a client that
    only polls over HTTP gets a lost job back too.
    """
    session = reload(access.session)
    try:
        requeue_if_lost(session)
    except Exception:
        # Redis or the broker down: the stored status is still the answer; the client asks
        # again later, and the clean-up job looks too.
        log.warning("checking the encode job of session %s failed", session.pk, exc_info=True)
    return session


def preload_embedding(session: MaskSession) -> None:
    """Brings the session's embedding into this process's cache, if Redis has it."""
    try:
        embeddings.load(embeddings.embedding_key(session.photo, session.model_id))
    except Exception:  # only a head start: the click that needs it reports what is wrong
        log.warning("preloading the embedding of session %s failed", session.pk, exc_info=True)


def create_session(photo: Photo, model_id: str | None = None,
                   photo_name: str | None = None, client: str = "") -> MaskSession:
    """``client``: the uploader (maskweb.masking.limits.client_key), for its disk quota."""
    model_id = check_model(model_id) if model_id else engine.default_model()
    with transaction.atomic():
        session = MaskSession.objects.create(photo=photo, model_id=model_id,
                                             photo_name=safe_name(photo_name or photo.name),
                                             client=client)
        first = MaskObject.objects.create(session=session, number=1, name="Object 1")
        session.current = first
        session.save(update_fields=["current"])
        if embeddings.in_redis(embeddings.embedding_key(photo, model_id)):
            # Someone encoded this photo with this model before: no work at all.
            MaskSession.objects.filter(pk=session.pk).update(status=Status.READY, progress=1.0)
            session.status, session.progress = Status.READY, 1.0
        else:
            request_encode(session)
    return session


def switch_model(access: Access, model_id: Any) -> MaskSession:
    access.require_edit()
    model_id = check_model(model_id)
    with transaction.atomic():
        session = MaskSession.objects.select_for_update().select_related("photo").get(
            pk=access.session.pk)
        session.model_id = model_id
        session.revision = F("revision") + 1
        session.save(update_fields=["model_id", "revision"])
        session.refresh_from_db()
        if embeddings.in_redis(embeddings.embedding_key(session.photo, model_id)):
            MaskSession.objects.filter(pk=session.pk).update(status=Status.READY, progress=1.0,
                                                             message="")
        else:
            request_encode(session)
        transaction.on_commit(lambda: notify.state(session.pk))
    return reload(session)


# --- state ---------------------------------------------------------------------------------

def object_dict(session: MaskSession, obj: MaskObject, token: str) -> dict[str, Any]:
    base = f"/api/v1/sessions/{token}/objects/{obj.number}"
    return {"id": obj.number, "name": obj.name, "visible": obj.visible, "area": obj.area,
            "colour": obj.colour or None,
            "combination": obj.recipe["op"] if obj.recipe else None,
            "png_url": f"{base}/mask.png", "svg_url": f"{base}/mask.svg",
            "xmp_url": f"{base}/sidecar.xmp"}


def objects_list(session: MaskSession, token: str) -> list[dict[str, Any]]:
    return [object_dict(session, o, token)
            for o in session.mask_objects.filter(applied=True).order_by("number")]


def session_state(access: Access, *, scores: list[float | None] | None = None) -> dict[str, Any]:
    session = access.session
    token = session.edit_token if access.role == EDIT else session.view_token
    photo = session.photo
    current = session.current
    api = f"/api/v1/sessions/{token}"
    try:
        models = model_list()
    except Exception:  # the engine failing to list must not hide the session
        log.exception("listing models failed")
        models = []
    state: dict[str, Any] = {
        "role": access.role,
        "view_url": f"/s/{session.view_token}/",
        "view_token": session.view_token,
        "photo": {"name": session.photo_name, "width": photo.upright_width,
                  "height": photo.upright_height, "stored_width": photo.stored_width,
                  "stored_height": photo.stored_height, "orientation": photo.orientation,
                  "preview_url": f"{api}/photo", "preview_width": photo.work_width,
                  "preview_height": photo.work_height},
        "model": session.model_id, "models": models,
        "status": session.status, "progress": session.progress, "message": session.message,
        "revision": session.revision,
        "current": {
            "object_id": current.number if current else None,
            "prompts": [to_upright(p, photo) for p in current.effective_prompts()]
            if current else [],
            "candidate": current.candidate if current else 0,
            "scores": scores or [],
            "can_undo": history.can_undo(session, current),
            "can_redo": history.can_redo(session, current),
        },
        "objects": objects_list(session, token),
        "downloads": {"png": f"{api}/mask.png", "svg": f"{api}/masks.svg",
                      "xmp": f"{api}/sidecar.xmp"},
        "sidecar": ({"name": session.sidecar_name or "sidecar.xmp",
                     "bytes": session.sidecar_bytes} if session.sidecar_file else None),
        "vectorize": downloads.vector_defaults(),
        "vectorize_bounds": downloads.vector_bounds(),
        "limits": {"max_stroke_points": settings.WS_MAX_STROKE_POINTS,
                   "max_prompts": settings.WS_MAX_PROMPTS,
                   "max_message_bytes": settings.WS_MAX_MESSAGE_BYTES},
    }
    if access.role == EDIT:
        state["edit_url"] = f"/s/{session.edit_token}/"
        state["edit_token"] = session.edit_token
    return state


# --- the current object ----------------------------------------------------------------------

def _locked(access: Access) -> tuple[MaskSession, MaskObject]:
    """Inside a transaction: the session row locked, and its current object (made if none).

    One query: every click passes here, and each query costs the ORM most of a millisecond.
    ``of=("self",)``: PostgreSQL locks the session row only, and refuses FOR UPDATE on the
    nullable side of the outer join to ``current`` without it.
    """
    session = (MaskSession.objects.select_for_update(of=("self",))
               .select_related("photo", "current").get(pk=access.session.pk))
    current = session.current
    if current is None or current.applied:
        current = _new_object(session)
    return session, current


def _new_object(session: MaskSession) -> MaskObject:
    last = session.mask_objects.order_by("-number").first()
    number = (last.number if last else 0) + 1
    obj = MaskObject.objects.create(session=session, number=number, name=f"Object {number}")
    session.current = obj
    session.save(update_fields=["current"])
    return obj


def _bump(session: MaskSession) -> None:
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
        session, obj = _locked(access)
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
        _bump(session)
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
    apply, delete, rename, visibility, reopen or combine (maskweb.masking.history)."""
    _step(access, forward=False)


def redo(access: Access) -> None:
    """Makes the oldest undone change again."""
    _step(access, forward=True)


def _step(access: Access, *, forward: bool) -> None:
    access.require_edit()
    with transaction.atomic():
        session, obj = _locked(access)
        change = history.next_change(session, forward)
        rev = history.prompt_rev(obj, forward)
        if change is not None and (rev is None or (change.revision < rev if forward
                                                   else change.revision > rev)):
            (history.replay if forward else history.revert)(session, change)
            _bump(session)
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
        _bump(session)


def select_candidate(access: Access, index: Any) -> None:
    """Chooses one of the model's candidate masks for the current object: ``index`` must be
    below the number of candidates its prompts gave (known once the mask is drawn)."""
    access.require_edit()
    index = schemas.check(schemas.CandidateIndex, index, "index")
    session = reload(access.session)
    obj = session.current
    if obj is None or not obj.effective_prompts():
        raise ProtocolError("empty", "The current object has no mask to choose from.")
    if session.status != Status.READY:
        raise ProtocolError("not_ready", "The photo is still being analysed; choose a "
                            "candidate once its mask is shown.")
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
    header = render.mask_header(session, obj, current, request_id)
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


# --- objects -------------------------------------------------------------------------------

def apply(access: Access, name: Any = None) -> MaskObject:
    access.require_edit()
    name = _name(name)
    session = reload(access.session)
    obj = session.current
    if obj is None or not obj.effective_prompts():
        raise ProtocolError("empty", "The current object has no mask to apply.")
    if session.status != Status.READY:
        # Not "lost": the first analysis (or a model switch's) is still running.
        raise ProtocolError("not_ready", "The photo is still being analysed; apply once its "
                            "mask is shown.")
    applied = session.mask_objects.filter(applied=True).count()
    if applied >= settings.MAX_OBJECTS:
        raise ProtocolError("too_many_objects", f"A session holds at most "
                            f"{settings.MAX_OBJECTS} objects; delete one first.")
    try:
        current = render.current_mask(session, obj)
    except render.EmbeddingMissing:
        with transaction.atomic():
            request_encode(session, lost=True)
        raise ProtocolError("not_ready", "The photo is being analysed again; apply in a "
                            "moment.") from None
    if current.mask is None or not current.mask.any():
        raise ProtocolError("empty", "The current mask is empty: nothing to apply.")
    with transaction.atomic():
        locked = MaskSession.objects.select_for_update().get(pk=session.pk)
        if locked.current_id != obj.pk:
            raise ProtocolError("bad_field", "The current object changed meanwhile; try again.")
        obj.refresh_from_db()
        name_before = obj.name
        obj.actions = obj.actions[: obj.cursor]  # its undone prompts are older than the apply
        obj.applied = True
        obj.candidate = current.candidate
        obj.mask_png = render.png_bytes(current.mask)
        obj.area = render.stored_area(session.photo, current.mask)
        if name is not None:
            obj.name = name
        obj.save()
        new = _new_object(locked)
        _bump(locked)
        history.record(locked, "apply", {"object": obj.number, "next": new.number,
                                         "name": [name_before, obj.name]})
    # The (empty) mask of the new current object first, then the list: a page that sees the
    # new list has already been told that the current mask is gone.
    render_current(reload(session))
    notify.objects(session.pk)
    return obj


def combine_objects(access: Access, op: Any, numbers: Any, name: Any = None) -> MaskObject:
    """A new applied object from applied ones: the union of all, the first less the others,
    what they all share, or the inverse of one (maskweb.masking.combine). The operands stay
    as they are; undo deletes the new object."""
    access.require_edit()
    request = schemas.check(schemas.CombineBody, {"op": op, "objects": numbers, "name": name},
                            "")
    op, numbers, name = request.op, request.objects, request.name
    with transaction.atomic():
        session, _ = _locked(access)
        operands = [get_object(session, number) for number in numbers]
        for obj in operands:
            if not obj.applied or not obj.mask_png:
                raise ProtocolError("bad_field", f"{obj.name} is not applied yet: apply it "
                                    "first, then combine it.")
        if session.mask_objects.filter(applied=True).count() >= settings.MAX_OBJECTS:
            raise ProtocolError("too_many_objects", f"A session holds at most "
                                f"{settings.MAX_OBJECTS} objects; delete one first.")
        recipe = combine.make_recipe(op, [
            combine.operand(obj.name, bytes(obj.mask_png or b""), obj.recipe)
            for obj in operands])
        mask = combine.work_mask(recipe)
        png = render.png_bytes(mask)
        if not mask.any():
            raise ProtocolError("empty", "The combination is empty (nothing is in "
                                f"{'all of them' if op == 'intersection' else 'it'}); "
                                "no object was made.")
        last = session.mask_objects.order_by("-number").first()
        number = (last.number if last else 0) + 1
        new = MaskObject.objects.create(
            session=session, number=number,
            name=name or combine.default_name(op, [o.name for o in operands]),
            applied=True, mask_png=png, area=render.stored_area(session.photo, mask),
            recipe=recipe)
        _bump(session)
        history.record(session, "combine", {"object": history.snapshot(new)}, png)
        transaction.on_commit(lambda: notify.objects(session.pk))
    # A frame with the new revision: every page learns that undo can take this back.
    render_current(reload(session))
    return new


def _name(name: Any) -> str | None:
    """An object's new name, trimmed (schemas.Name), or None for none."""
    result: str | None = schemas.check(schemas.Name | None, name, "name")
    return result


def get_object(session: MaskSession, number: Any) -> MaskObject:
    number = schemas.check(schemas.ObjectNumber, number, "object_id")
    obj = session.mask_objects.filter(number=number).first()
    if obj is None:
        raise ProtocolError("not_found", f"no object {number} in this session")
    return obj


def update_object(access: Access, number: Any, *, name: Any = None,
                  visible: Any = None, colour: Any = None) -> MaskObject:
    access.require_edit()
    name = _name(name)
    visible = schemas.check(bool | None, visible, "visible")
    colour = schemas.check(schemas.Colour | None, colour, "colour")
    with transaction.atomic():
        session, _ = _locked(access)
        obj = get_object(session, number)
        changed = {field: [getattr(obj, field), value]
                   for field, value in (("name", name), ("visible", visible),
                                        ("colour", colour))
                   if value is not None and getattr(obj, field) != value}
        if not changed:
            return obj
        for field, (_, value) in changed.items():
            setattr(obj, field, value)
        obj.save(update_fields=list(changed))
        _bump(session)
        history.record(session, "update", {"object": obj.number, "fields": changed})
        transaction.on_commit(lambda: notify.objects(session.pk))
    # A frame with the new revision: every page learns that undo can take this back.
    render_current(reload(session))
    return obj


def delete_object(access: Access, number: Any) -> None:
    access.require_edit()
    with transaction.atomic():
        session, _ = _locked(access)
        obj = get_object(session, number)
        data: dict[str, Any] = {"object": history.snapshot(obj)}
        if obj.pk == session.current_id:
            data["current"] = True
            obj.actions, obj.cursor, obj.candidate = [], 0, 0  # deleting the current: empty it
            obj.save(update_fields=["actions", "cursor", "candidate"])
        else:
            obj.delete()
        _bump(session)
        history.record(session, "delete", data,
                       bytes(obj.mask_png) if obj.mask_png and not data.get("current") else None)
        transaction.on_commit(lambda: notify.objects(session.pk))
    render_current(reload(session))


def reopen(access: Access, number: Any) -> MaskSession:
    """The object becomes current again; a current object with prompts is applied first."""
    access.require_edit()
    obj = get_object(access.session, number)
    if obj.recipe:
        raise ProtocolError("bad_field", f"{obj.name} was made by combining objects: it has "
                            "no prompts to refine. Reopen one of its operands instead.")
    session = reload(access.session)
    current = session.current
    if current is not None and current.pk != obj.pk and current.effective_prompts():
        apply(access)
    with transaction.atomic():
        session = MaskSession.objects.select_for_update().get(pk=session.pk)
        leftover = (MaskObject.objects.filter(pk=session.current_id).first()
               if session.current_id else None)
        if leftover is not None and leftover.pk == obj.pk:
            return reload(session)  # already the current object: nothing to do
        change: dict[str, Any] = {"object": obj.number,
                                  "previous": leftover.number if leftover else None}
        if leftover is not None and not leftover.applied and not leftover.actions:
            leftover.delete()  # the empty "next object" is not worth keeping
        MaskObject.objects.filter(pk=obj.pk).update(applied=False)
        session.current_id = obj.pk
        session.save(update_fields=["current"])
        _bump(session)
        history.record(session, "reopen", change)
        pk = session.pk

        def tell() -> None:
            notify.objects(pk)
            notify.state(pk)
        transaction.on_commit(tell)
    fresh = reload(session)
    render_current(fresh)
    return fresh


def delete_session(access: Access) -> None:
    """Deletes the session for good (the edit link only): its objects, and its photo, files
    and embeddings once no other session uses them. Open pages are closed with 4404."""
    from maskweb.masking import retention

    access.require_edit()
    retention.delete_session(access.session)


# --- the uploaded darktable sidecar ---------------------------------------------------------

def store_sidecar(access: Access, data: bytes, name: str = "") -> None:
    """Keeps the photo's existing XMP: later XMP downloads merge into it. Every page is told
    (its label says which file the downloads merge into)."""
    access.require_edit()
    downloads.store_sidecar(access.session, data, name)
    _bump(access.session)
    notify.state(access.session.pk)


def remove_sidecar(access: Access) -> None:
    """Forgets the uploaded XMP: downloads start a new sidecar again (nothing to remove is
    fine: the answer is the same)."""
    access.require_edit()
    if downloads.remove_sidecar(access.session):
        _bump(access.session)
        notify.state(access.session.pk)


# --- downloads -----------------------------------------------------------------------------

def object_work_mask(session: MaskSession, obj: MaskObject) -> Any:
    """The object's mask at the work size (upright), or None when it has none."""
    if obj.applied and obj.mask_png:
        return render.png_to_mask(bytes(obj.mask_png))
    if obj.pk == session.current_id and obj.effective_prompts() \
            and session.status == Status.READY:
        try:
            return render.current_mask(session, obj).mask
        except render.EmbeddingMissing:
            return None
    return None


def visible_objects(session: MaskSession) -> list[tuple[MaskObject, Any]]:
    out = []
    for obj in session.mask_objects.order_by("number"):
        if obj.applied and not obj.visible:
            continue
        mask = object_work_mask(session, obj)
        if mask is not None and mask.any():
            out.append((obj, mask))
    return out
