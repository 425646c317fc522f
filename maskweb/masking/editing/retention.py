"""Deleting sessions, and the periodic clean-up that keeps anonymous work bounded.

A session is deleted when its editor asks (``DELETE`` on the edit link) or when nobody opened
or changed it for MASKWEB_SESSION_IDLE_DAYS. Deleting it deletes its objects, and its photo
once no other session uses that photo: the files on disk, the embeddings in Redis. Pages still
open on it are told (their socket closes with 4404, as for an unknown link).

``cleanup`` is the periodic job (Celery beat runs it every MASKWEB_CLEANUP_INTERVAL seconds;
`manage.py serve` runs beat inside its worker; `manage.py cleanup` runs it by hand):
- sessions idle too long are deleted;
- photos no session uses any more are deleted (what a crash between the two steps left);
- upload folders a crashed upload left behind (``.upload-*``, older than an hour) go;
- a session still encoding with no job queued or running (lost with Redis's data, or a
  worker that died before the broker's visibility timeout) gets its job queued again, so an
  HTTP-only client that never asks is not left waiting for good.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from maskweb.masking.decoding import embeddings, engine
from maskweb.masking.editing import encodes, sidecars
from maskweb.masking.models import MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.plumbing.redis_client import get_redis
from maskweb.photos import storage
from maskweb.photos.models import Photo

log = logging.getLogger(__name__)

STAGING_MAX_AGE_SECONDS = 3600


@dataclass
class Report:
    sessions: int = 0
    photos: int = 0
    bytes: int = 0
    staging: int = 0
    requeued: list[int] = field(default_factory=list)


def delete_session(session: MaskSession) -> Report:
    """Deletes the session, its objects, and its photo if nobody else uses it."""
    report = Report()
    pk, photo_id = session.pk, session.photo_id
    with transaction.atomic():
        sidecar = MaskSession.objects.filter(pk=pk).values_list("sidecar_file", flat=True) \
            .first()
        deleted, _ = MaskSession.objects.filter(pk=pk).delete()
    if not deleted:
        return report
    report.sessions = 1
    if sidecar:
        sidecars.forget(sidecar)
    try:
        notify.send(pk, {"type": "session.deleted"})
    except Exception:  # pages find out on their next request instead
        log.warning("telling the pages of session %s it was deleted failed", pk,
                    exc_info=True)
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is not None:
        freed = delete_photo_if_unused(photo)
        if freed is not None:
            report.photos, report.bytes = 1, freed
    return report


def delete_photo_if_unused(photo: Photo) -> int | None:
    """Deletes the photo (row, files, embeddings) when no session uses it; the bytes freed,
    or None when it is still in use."""
    with transaction.atomic():
        if MaskSession.objects.filter(photo=photo).exists():
            return None
        # A new upload of the same bytes may reuse the row between here and the delete: the
        # PROTECT foreign key then refuses the delete, and the photo stays.
        try:
            Photo.objects.filter(pk=photo.pk).delete()
        except Exception:
            log.info("photo %s was taken by a new session meanwhile; kept", photo.pk)
            return None
    freed = photo.measure_disk()
    try:
        storage.delete(photo.file_names)
    except Exception:  # the row is gone: nobody reads them; a later clean-up cannot find them
        log.exception("deleting the files of photo %s (%s) failed", photo.pk, photo.folder)
    _forget_embeddings(photo)
    return freed


def _forget_embeddings(photo: Photo) -> None:
    try:
        models = {m.id for m in engine.installed_models()}
    except Exception:
        models = set()
    keys = [embeddings.embedding_key(photo, model_id) for model_id in sorted(models)]
    for key in keys:
        embeddings.local_cache.discard(key)
    if keys:
        try:
            get_redis().delete(*keys)
        except redis.exceptions.RedisError:  # they expire (MASKWEB_EMBEDDING_TTL)
            log.warning("deleting the embeddings of photo %s failed", photo.pk, exc_info=True)


def expired_sessions(now: dt.datetime | None = None) -> list[MaskSession]:
    if settings.SESSION_IDLE_DAYS <= 0:
        return []
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.SESSION_IDLE_DAYS)
    return list(MaskSession.objects.filter(last_active__lt=cutoff).select_related("photo"))


def requeue_lost_encodes() -> list[int]:
    """Queues the encode again for sessions encoding with no job queued or running (see
    encodes.requeue_if_lost); returns their ids."""
    waiting = MaskSession.objects.filter(status=Status.ENCODING).select_related("photo")
    return [session.pk for session in waiting if encodes.requeue_if_lost(session)]


def remove_stale_staging(now: float | None = None) -> int:
    media = Path(settings.MEDIA_ROOT)
    if not media.is_dir():
        return 0
    cutoff = (now or time.time()) - STAGING_MAX_AGE_SECONDS
    removed = 0
    for folder in media.glob(".upload-*"):
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def cleanup(now: dt.datetime | None = None) -> Report:
    """The periodic job: see the module's docstring."""
    report = Report()
    for session in expired_sessions(now):
        done = delete_session(session)
        report.sessions += done.sessions
        report.photos += done.photos
        report.bytes += done.bytes
    for photo in Photo.objects.filter(sessions__isnull=True):
        freed = delete_photo_if_unused(photo)
        if freed is not None:
            report.photos += 1
            report.bytes += freed
    report.staging = remove_stale_staging()
    try:
        report.requeued = requeue_lost_encodes()
    except redis.exceptions.RedisError:
        log.warning("looking for lost encodes failed: Redis unreachable", exc_info=True)
    if report.sessions or report.photos or report.staging or report.requeued:
        log.info("clean-up: %d session(s) and %d photo(s) deleted (%.1f MB), %d stale "
                 "upload folder(s) removed, encodes queued again for sessions %s",
                 report.sessions, report.photos, report.bytes / 2**20, report.staging,
                 report.requeued)
    return report

