"""Web tests run against a real redis-server (channel layer, embedding cache, Celery broker),
with photos in a temporary MEDIA_ROOT. Encoding is called directly (what the worker's task
does) where a test needs a ready session; tests/web/test_live_stack.py runs the real worker.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis as redis_lib
from django.core.files.uploadedfile import SimpleUploadedFile

from maskweb.masking import editing
from maskweb.masking.decoding import embeddings, render
from maskweb.masking.models import MaskSession
from maskweb.photos.ingest import ingest
from tests.web.client import two_tone_photo


@pytest.fixture(autouse=True)
def web_settings(settings: Any, redis_server: str, tmp_path: Any) -> Iterator[None]:
    from maskweb.celery import app

    settings.REDIS_URL = redis_server
    settings.CELERY_BROKER_URL = redis_server
    from maskweb.settings import channel_layer_config

    settings.CHANNEL_LAYERS = {"default": channel_layer_config(redis_server)}
    settings.MEDIA_ROOT = tmp_path / "photos"
    settings.DEFAULT_MODEL = "grabcut"
    app.conf.broker_url = redis_server
    # The caches are keyed by the photo's content, which most tests share: a decode an earlier
    # test left running (a prefetch it did not need to wait for) would land in this test's
    # cache and answer its clicks.
    wait_for_decodes()
    client = redis_lib.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    embeddings.local_cache.clear()
    render.predictions.clear()
    yield
    wait_for_decodes()  # this test's own, before its database rows are flushed


def wait_for_decodes(timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while render.work_in_flight():
        assert time.monotonic() < deadline, "decodes still running after a test ended"
        time.sleep(0.01)


def make_session(content: bytes | None = None, name: str = "photo.png",
                 ready: bool = True) -> MaskSession:
    data = content if content is not None else two_tone_photo()
    photo = ingest(io.BytesIO(data), name, len(data))
    session = editing.create_session(photo, "grabcut", name)
    if ready:
        editing.encode_and_draw(photo.pk, "grabcut")
    return editing.reload(session)


@pytest.fixture
def ready_session() -> Callable[..., MaskSession]:
    return make_session


def edit(session: MaskSession) -> editing.Access:
    return editing.Access(editing.reload(session), editing.EDIT)


def view(session: MaskSession) -> editing.Access:
    return editing.Access(editing.reload(session), editing.VIEW)


def uploaded(content: bytes, name: str = "photo.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")
