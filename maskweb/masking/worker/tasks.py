"""The worker's Celery tasks: the encode job and the periodic clean-up. Thin: the work is in
maskweb.masking.jobs.encoding (the encode) and the session domain (maskweb.masking.editing: the
masks that waited for it, the clean-up).
"""

from __future__ import annotations

import os
from typing import Any

from celery import shared_task
from celery.signals import worker_init, worker_ready
from django.conf import settings

from maskweb.masking import editing
from maskweb.masking.decoding import engine
from maskweb.masking.editing import retention
from maskweb.masking.jobs import encoding
from maskweb.masking.plumbing import notify

# A worker needs an embedding once, right after encoding it, to draw the masks of prompts that
# waited for it; the web process's cache budgets (256 MB each) would only hold memory here.
WORKER_CACHE_MB = 32


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None,
             name="maskweb.encode_photo")
def encode_photo(self: Any, photo_id: int, model_id: str) -> str:
    """Idempotent: an embedding already in Redis is not computed again."""
    outcome = editing.encode_and_draw(photo_id, model_id)
    if outcome == encoding.BUSY:
        # Another worker holds the lock for this photo and model; look again shortly (if it
        # died, its lock runs out within seconds and this task does the work).
        raise self.retry(countdown=2)
    return outcome


@shared_task(name="maskweb.cleanup", ignore_result=True)
def cleanup() -> dict[str, object]:
    """The periodic clean-up (Celery beat, every MASKWEB_CLEANUP_INTERVAL seconds): expired
    sessions, unused photos, stale upload folders, lost encode
    jobs (maskweb.masking.editing.retention).
    """
    report = retention.cleanup()
    return {"sessions": report.sessions, "photos": report.photos, "bytes": report.bytes,
            "staging": report.staging, "requeued": report.requeued}


@worker_ready.connect
def resume_unfinished(**_: object) -> None:
    """A worker that died mid-encode took its job with it: queue the unfinished ones again."""
    for photo_id, model_id in encoding.unfinished():
        encode_photo.delay(photo_id, model_id)


@worker_ready.connect
def warm_up_encoder(**_: object) -> None:
    """The default model's encoder runs before the first photo: a fresh onnxruntime session's
    first runs are slow (see OnnxSegmenter.warm_up)."""
    engine.warm_up_default("encoder")


@worker_init.connect
def notify_from_own_loop(**_: object) -> None:
    """The worker has no event loop: its status messages go through one that lives on."""
    notify.send_from_own_loop()


@worker_init.connect
def small_caches(**_: object) -> None:
    """Caps a worker's in-memory caches at WORKER_CACHE_MB unless the variables set them."""
    for setting, variable in (("EMBEDDING_CACHE_BYTES", "MASKWEB_EMBEDDING_CACHE_MB"),
                              ("PREDICTION_CACHE_BYTES", "MASKWEB_PREDICTION_CACHE_MB")):
        if variable not in os.environ:
            setattr(settings, setting,
                    min(int(getattr(settings, setting)), WORKER_CACHE_MB * 2**20))
