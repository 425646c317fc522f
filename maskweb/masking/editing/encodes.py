"""A session's photo and model, and the encode job that makes their embedding.

Which models a session may use, asking the worker for an encode (at most one queued per photo
and model), and finding a job that was lost (Redis lost its data, a message went missing) so
that it is queued again. The job itself runs in a worker (maskweb.masking.jobs); it is asked
for by name through the broker, so this module does not depend on the worker's code.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import transaction

from maskweb.celery import app as celery_app
from maskweb.masking.decoding import embeddings, engine
from maskweb.masking.editing.access import Access, reload
from maskweb.masking.jobs import encoding
from maskweb.masking.models import MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.plumbing.redis_client import get_redis
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos.models import Photo

log = logging.getLogger(__name__)

# The encode job's name (maskweb.masking.worker.tasks), stable across releases so that jobs
# queued by an older web host are still run.
ENCODE_TASK = "maskweb.encode_photo"
# How long a queued encode job keeps others of the same photo and model from being queued: as
# long as the broker keeps a job a dead worker took before handing it out again. The marker
# lives in the same Redis as the queue, so a Redis that lost the job lost the marker too.
QUEUED_SECONDS = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]


def default_model() -> str:
    """The model new sessions use (MASKWEB_DEFAULT_MODEL, or the best installed one)."""
    return engine.default_model()


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
    try:
        celery_app.send_task(ENCODE_TASK, args=(photo.pk, model_id))
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
