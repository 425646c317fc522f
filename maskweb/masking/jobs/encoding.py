"""Encoding a photo once per (content hash, model), reporting progress to the session pages.

Several sessions can wait on the same photo and model (the same file uploaded by two people):
one encode serves them all. A Redis lock with a short, refreshed expiry keeps two workers from
encoding the same thing, and expires on its own when a worker dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

from maskweb.masking.decoding import embeddings, engine
from maskweb.masking.jobs import progress
from maskweb.masking.jobs.progress import ProgressMeter
from maskweb.masking.models import MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.plumbing.redis_client import get_redis
from maskweb.photos.ingest import read_work_image
from maskweb.photos.models import Photo

log = logging.getLogger(__name__)

DONE, ALREADY, BUSY, FAILED, GONE = "done", "already", "busy", "failed", "gone"
LOCK_SECONDS = 10


def queued_key(key: str) -> str:
    """Set while an encode job for this embedding key is queued (see editing.queue_encode)."""
    return f"maskweb:queued:{key}"


def lock_key(key: str) -> str:
    """Held, and refreshed, by the worker encoding this embedding key."""
    return f"maskweb:lock:{key}"


def _waiting(photo: Photo, model_id: str) -> list[int]:
    return list(MaskSession.objects.filter(photo=photo, model_id=model_id)
                .exclude(status=Status.READY).values_list("pk", flat=True))


def _mark(pks: list[int], status: str, progress: float, message: str = "") -> None:
    MaskSession.objects.filter(pk__in=pks).update(status=status, progress=progress,
                                                   message=message)
    for pk in pks:
        notify.status_or_log(pk, status, progress, message)


class _Heartbeat(threading.Thread):
    """Keeps the lock alive while the encoder runs (the encoder may not report progress)."""

    def __init__(self, key: str, token: str) -> None:
        super().__init__(daemon=True)
        self.key, self.token = key, token
        self.stop = threading.Event()

    def run(self) -> None:
        client = get_redis()
        while not self.stop.wait(LOCK_SECONDS / 3):
            if client.get(self.key) == self.token.encode():
                client.expire(self.key, LOCK_SECONDS)


def encode_photo(photo_id: int, model_id: str,
                 when_ready: Callable[[list[int]], None] | None = None) -> str:
    """Encodes the photo with the model unless Redis has the embedding, and marks the sessions
    waiting for it ready. ``when_ready(session ids)`` then draws the masks of the prompts sent
    while they waited (the session domain's, maskweb.masking.editing.masks.draw_waiting: this
    job sits below the domain and does not call up into it).
    """
    close_old_connections()
    photo = Photo.objects.filter(pk=photo_id).first()
    if photo is None:
        return GONE
    key = embeddings.embedding_key(photo, model_id)
    client = get_redis()
    client.delete(queued_key(key))
    if embeddings.in_redis(key):
        pks = _waiting(photo, model_id)
        _mark(pks, Status.READY, 1.0)
        if when_ready is not None:
            when_ready(pks)
        return ALREADY
    lock, token = lock_key(key), f"{time.time()}:{threading.get_ident()}"
    if not client.set(lock, token, nx=True, ex=LOCK_SECONDS):
        return BUSY
    heartbeat = _Heartbeat(lock, token)
    heartbeat.start()
    try:
        pks = _waiting(photo, model_id)
        _mark(pks, Status.ENCODING, 0.0, "Analysing the photo.")

        def report(fraction: float) -> None:
            _mark(_waiting(photo, model_id), Status.ENCODING, float(fraction),
                  "Analysing the photo.")

        started = time.monotonic()
        try:
            image = read_work_image(photo)
            # The meter moves between the encoder's own few reports (maskweb.masking.jobs.progress).
            with ProgressMeter(report, progress.expected_seconds(model_id)) as meter:
                embedding = engine.encode(model_id, image, meter.step)
        except Exception as exc:
            log.exception("encoding photo %s with %s failed", photo_id, model_id)
            _mark(_waiting(photo, model_id), Status.FAILED, 0.0,
                  f"The photo could not be analysed with {model_id}: {exc}")
            return FAILED
        embeddings.store(key, embedding)
        progress.remember_seconds(model_id, time.monotonic() - started)
        log.info("encoded photo %s with %s in %.2f s", photo_id, model_id,
                 time.monotonic() - started)
    finally:
        heartbeat.stop.set()
        if client.get(lock) == token.encode():
            client.delete(lock)
    pks = _waiting(photo, model_id)
    _mark(pks, Status.READY, 1.0)
    if when_ready is not None:
        when_ready(pks)
    return DONE


def unfinished() -> list[tuple[int, str]]:
    return list(MaskSession.objects.filter(status=Status.ENCODING)
                .values_list("photo_id", "model_id").distinct())
