"""A session's uploaded darktable sidecar, kept in the storage beside the photos.

Named by the session and the sidecar's content hash: a new upload is a new name, written
before the row points at it and the old one deleted after, so a download on another host
reads either the old sidecar or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import logging

from maskweb.masking.models import MaskSession
from maskweb.photos import storage

log = logging.getLogger(__name__)


def name_for(session_pk: int, data: bytes) -> str:
    return f"sidecars/{session_pk}/{hashlib.blake2b(data, digest_size=16).hexdigest()}.xmp"


def read(session: MaskSession) -> bytes | None:
    """The uploaded sidecar's bytes, None when none was uploaded."""
    return storage.read(session.sidecar_file) if session.sidecar_file else None


def replace(session: MaskSession, data: bytes, shown_name: str = "") -> None:
    """Stores ``data`` (checked by the caller) as the session's sidecar; ``shown_name`` is the
    uploaded file's name, for the pages."""
    old = MaskSession.objects.filter(pk=session.pk).values_list("sidecar_file", flat=True) \
        .first()
    name = name_for(session.pk, data)
    storage.save_bytes(name, data)
    MaskSession.objects.filter(pk=session.pk).update(
        sidecar_file=name, sidecar_name=shown_name, sidecar_bytes=len(data))
    session.sidecar_file, session.sidecar_name, session.sidecar_bytes = \
        name, shown_name, len(data)
    if old and old != name:
        forget(old)


def remove(session: MaskSession) -> bool:
    """Forgets the session's sidecar: XMP downloads start a new one again. False when there
    was none."""
    old = MaskSession.objects.filter(pk=session.pk).values_list("sidecar_file", flat=True) \
        .first()
    if not old:
        return False
    MaskSession.objects.filter(pk=session.pk, sidecar_file=old).update(
        sidecar_file="", sidecar_name="", sidecar_bytes=0)
    session.sidecar_file, session.sidecar_name, session.sidecar_bytes = "", "", 0
    forget(old)
    return True


def forget(name: str) -> None:
    """Deletes a sidecar nobody points at any more (a failure leaves a small orphan)."""
    try:
        storage.delete([name])
    except Exception:
        log.warning("deleting sidecar %s failed", name, exc_info=True)
