"""A session's life: made from an upload, its model switched, its darktable sidecar kept or
forgotten, deleted for good.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from maskweb.masking.decoding import embeddings, engine
from maskweb.masking.editing import downloads, retention
from maskweb.masking.editing.access import Access, reload
from maskweb.masking.editing.current import bump_revision
from maskweb.masking.editing.encodes import check_model, request_encode
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.photos.ingest import safe_name
from maskweb.photos.models import Photo


def create_session(photo: Photo, model_id: str | None = None,
                   photo_name: str | None = None, client: str = "") -> MaskSession:
    """``client``: the uploader (maskweb.masking.editing.limits.client_key), for its disk quota."""
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


def delete_session(access: Access) -> None:
    """Deletes the session for good (the edit link only): its objects, and its photo, files
    and embeddings once no other session uses them. Open pages are closed with 4404."""
    access.require_edit()
    retention.delete_session(access.session)


# --- the uploaded darktable sidecar ---------------------------------------------------------

def store_sidecar(access: Access, data: bytes, name: str = "") -> None:
    """Keeps the photo's existing XMP: later XMP downloads merge into it. Every page is told
    (its label says which file the downloads merge into)."""
    access.require_edit()
    downloads.store_sidecar(access.session, data, name)
    bump_revision(access.session)
    notify.state(access.session.pk)


def remove_sidecar(access: Access) -> None:
    """Forgets the uploaded XMP: downloads start a new sidecar again (nothing to remove is
    fine: the answer is the same)."""
    access.require_edit()
    if downloads.remove_sidecar(access.session):
        bump_revision(access.session)
        notify.state(access.session.pk)
