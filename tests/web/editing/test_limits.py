"""One anonymous client's share: upload rate and disk quota, deleting a session, retention,
the HTTP API's write rate, the object cap, the replay of prompts sent during an encode, and
downloads made once and a bounded number at a time. Real Redis, real files."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client
from django.utils import timezone

from maskweb.masking import editing
from maskweb.masking.decoding import embeddings, engine, render
from maskweb.masking.editing import limits, retention
from maskweb.masking.jobs import encoding
from maskweb.masking.models import MaskSession, Status
from maskweb.masking.plumbing.redis_client import get_redis
from maskweb.photos import storage
from maskweb.photos.models import Photo
from tests.web.client import two_tone_photo
from tests.web.conftest import edit, make_session, wait_for_decodes

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = {"kind": "point", "x": 240, "y": 180}


def upload(content: bytes, address: str = "203.0.113.7", name: str = "p.png") -> Any:
    return Client(REMOTE_ADDR=address).post("/api/v1/sessions",
                                            {"photo": SimpleUploadedFile(name, content)})


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the number of points of every decode the engine runs, in order."""
    calls: list[int] = []
    real_decode = engine.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[2].points))
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(engine, "decode", counting)
    return calls


def test_clients_are_their_address_and_an_ipv6_client_its_64():
    assert limits.client_key("203.0.113.7") == limits.client_key("203.0.113.7")
    assert limits.client_key("203.0.113.7") != limits.client_key("203.0.113.8")
    assert limits.client_key("2001:db8:1:2::1") == limits.client_key("2001:db8:1:2:ffff::9")
    assert limits.client_key("2001:db8:1:2::1") != limits.client_key("2001:db8:1:3::1")
    assert limits.client_key("::ffff:203.0.113.7") == limits.client_key("203.0.113.7")
    assert "203" not in limits.client_key("203.0.113.7"), "a keyed hash, not the address"


def test_uploads_past_the_burst_get_429_with_when_to_retry_and_others_go_on(settings):
    settings.UPLOAD_BURST, settings.UPLOAD_RATE_PER_HOUR = 2, 1.0
    assert upload(two_tone_photo(seed=1)).status_code == 201
    assert upload(two_tone_photo(seed=2)).status_code == 201
    refused = upload(two_tone_photo(seed=3))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 3000 < int(refused["Retry-After"]) <= 3600, "one upload an hour"
    assert MaskSession.objects.count() == 2 and Photo.objects.count() == 2
    assert upload(two_tone_photo(seed=3), address="198.51.100.1").status_code == 201


def test_a_client_past_its_disk_quota_gets_507_until_it_deletes_a_session(settings):
    first = upload(two_tone_photo(seed=1))
    assert first.status_code == 201
    used = Photo.objects.get().disk_bytes
    assert used > 0
    settings.CLIENT_QUOTA_BYTES = used + 1000  # room for what it has, not for another
    refused = upload(two_tone_photo(seed=2))
    assert refused.status_code == 507
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert upload(two_tone_photo(seed=2), address="198.51.100.1").status_code == 201
    token = first.json()["edit_token"]
    assert Client().delete(f"/api/v1/sessions/{token}").status_code == 204
    assert upload(two_tone_photo(seed=2)).status_code == 201


def test_uploads_stop_with_507_when_the_disk_is_nearly_full(settings):
    import shutil

    settings.MIN_FREE_DISK_BYTES = shutil.disk_usage(settings.DATA_DIR).free + 2**30
    refused = upload(two_tone_photo())
    assert refused.status_code == 507
    assert refused.json()["error"]["code"] == "insufficient_storage"
    assert Photo.objects.count() == 0


def test_deleting_a_session_takes_its_photo_files_and_embeddings_unless_shared():
    shared = two_tone_photo(seed=5)
    one, two = make_session(shared), make_session(shared)
    photo = one.photo
    key = embeddings.embedding_key(photo, "grabcut")
    assert stored(photo) and get_redis().exists(key)
    client = Client()
    assert client.delete(f"/api/v1/sessions/{one.view_token}").status_code == 403
    assert client.delete(f"/api/v1/sessions/{one.edit_token}").status_code == 204
    assert client.get(f"/api/v1/sessions/{one.edit_token}").status_code == 404
    assert client.get(f"/api/v1/sessions/{one.view_token}").status_code == 404
    assert stored(photo) and get_redis().exists(key), "the other session's photo"
    assert client.delete(f"/api/v1/sessions/{two.edit_token}").status_code == 204
    assert not stored(photo) and not get_redis().exists(key)
    assert Photo.objects.count() == 0
    assert client.delete(f"/api/v1/sessions/{two.edit_token}").status_code == 404


def test_an_open_page_on_a_deleted_session_is_closed_as_for_an_unknown_link():
    from channels.testing import WebsocketCommunicator

    from maskweb.asgi import application

    session = make_session()
    access = edit(session)

    async def scenario() -> dict[str, Any]:
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session.view_token}/")
        assert (await comm.connect(timeout=10))[0]
        assert (await comm.receive_json_from(timeout=10))["type"] == "hello"
        await comm.send_json_to({"v": 1, "type": "ping", "id": "settled"})
        assert (await comm.receive_json_from(timeout=20))["type"] == "pong"  # connect done
        from channels.db import database_sync_to_async

        await database_sync_to_async(editing.delete_session)(access)
        while True:
            message = await comm.receive_output(timeout=20)
            if message["type"] == "websocket.close":
                return message

    assert asyncio.run(scenario()) == {"type": "websocket.close", "code": 4404}


def test_idle_sessions_expire_with_their_files_and_active_ones_stay(settings):
    settings.SESSION_IDLE_DAYS = 30
    old, fresh = make_session(two_tone_photo(seed=1)), make_session(two_tone_photo(seed=2))
    MaskSession.objects.filter(pk=old.pk).update(
        last_active=timezone.now() - dt.timedelta(days=31))
    old_photo, old_key = old.photo, embeddings.embedding_key(old.photo, "grabcut")
    report = retention.cleanup()
    assert (report.sessions, report.photos) == (1, 1) and report.bytes > 0
    assert not MaskSession.objects.filter(pk=old.pk).exists()
    assert not stored(old_photo) and not get_redis().exists(old_key)
    assert MaskSession.objects.filter(pk=fresh.pk).exists() and stored(fresh.photo)
    settings.SESSION_IDLE_DAYS = 0  # kept for ever
    MaskSession.objects.filter(pk=fresh.pk).update(
        last_active=timezone.now() - dt.timedelta(days=3650))
    assert retention.cleanup().sessions == 0


def test_opening_or_changing_a_session_counts_as_activity():
    session = make_session()
    long_ago = timezone.now() - dt.timedelta(days=20)
    MaskSession.objects.filter(pk=session.pk).update(last_active=long_ago)
    editing.resolve(session.view_token)
    assert MaskSession.objects.get(pk=session.pk).last_active > long_ago
    MaskSession.objects.filter(pk=session.pk).update(last_active=long_ago)
    editing.add_prompt(editing.Access(MaskSession.objects.get(pk=session.pk), "edit"), INSIDE)
    assert MaskSession.objects.get(pk=session.pk).last_active > long_ago


def test_the_cleanup_removes_stale_upload_folders_and_queues_lost_encodes(settings):
    import os
    import time

    stale = Path(settings.MEDIA_ROOT) / ".upload-crashed"
    stale.mkdir(parents=True)
    (stale / "upload").write_bytes(b"half a photo")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    waiting = make_session(ready=False)
    get_redis().flushall()  # the queued job and its marker: lost
    report = retention.cleanup()
    assert report.staging == 1 and not stale.exists()
    assert report.requeued == [waiting.pk]
    assert retention.cleanup().requeued == [], "queued once, not on every run"


def test_http_writes_to_a_session_are_rate_limited_like_the_socket(settings):
    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 0.5, 3
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    answers = [client.post(f"{base}/prompts", {**INSIDE, "x": 200 + i},
                           content_type="application/json") for i in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert int(answers[3]["Retry-After"]) >= 1
    assert len(editing.reload(session).current.effective_prompts()) == 3
    assert client.get(f"{base}/current").status_code == 200, "reads are not limited"


def test_a_session_holds_at_most_max_objects(settings):
    settings.MAX_OBJECTS = 2
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    for i in range(3):
        client.post(f"{base}/prompts", {**INSIDE, "x": 230 + i}, content_type="application/json")
        answer = client.post(f"{base}/apply", content_type="application/json")
        if i < 2:
            assert answer.status_code == 201
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "too_many_objects"
    assert len(client.get(f"{base}/objects").json()["objects"]) == 2


def test_prompts_sent_during_an_encode_are_replayed_in_one_decode(monkeypatch):
    """150 prompts POSTed while the photo waited kept the worker decoding them one by one for
    55 s; now the worker draws them together."""
    session = make_session(ready=False)
    access = edit(session)
    for i in range(40):
        editing.add_prompt(access, {"kind": "point", "x": 200 + i, "y": 150 + i % 7,
                                     "positive": i % 5 != 3})
    calls = count_decodes(monkeypatch)
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    assert calls == [40], calls


def test_a_long_log_with_nothing_cached_is_not_replayed_one_decode_a_prompt(monkeypatch):
    session = make_session()
    access = edit(session)
    for i in range(40):
        editing.add_prompt(access, {"kind": "point", "x": 200 + i, "y": 150 + i % 7})
    wait_for_decodes()  # the writes' own prefetches
    render.predictions.clear()  # as after a restart
    calls = count_decodes(monkeypatch)
    editing.render_current(editing.reload(session), broadcast=False)
    assert len(calls) == render.REPLAY_STEPS and calls[0] == 40 - render.REPLAY_STEPS + 1
    assert calls[-1] == 40


def test_a_socket_that_fell_behind_draws_its_piled_up_prompts_in_one_decode(monkeypatch):
    """A page's first render came so late that 12 prompts had piled up, none decoded yet: one
    decode of all of them (an overloaded server spent 14-20 s on each page's first mask,
    walking them one by one)."""
    session = make_session()
    access = edit(session)
    for i in range(12):
        editing.add_prompt(access, {"kind": "point", "x": 200 + i, "y": 150 + i % 7})
    wait_for_decodes()
    render.predictions.clear()
    calls = count_decodes(monkeypatch)
    rendered = editing.render_current(editing.reload(session), broadcast=False,
                                       latest_only=True)
    assert calls == [12] and rendered.current is not None


def _applied(session: MaskSession) -> str:
    access = edit(session)
    editing.add_prompt(access, INSIDE)
    editing.apply(access)
    return f"/api/v1/sessions/{session.edit_token}"


def test_a_download_is_made_once_per_object_revision_and_settings(monkeypatch):
    from maskweb.masking.editing import downloads

    session = make_session()
    base = _applied(session)
    made: list[str] = []
    real_svg = downloads.svg

    def counted(*args: Any, **kwargs: Any) -> str:
        made.append("svg")
        return real_svg(*args, **kwargs)

    monkeypatch.setattr(downloads, "svg", counted)
    client = Client()
    first = client.get(f"{base}/masks.svg")
    again = client.get(f"{base}/masks.svg")
    assert first.status_code == again.status_code == 200 and first.content == again.content
    assert made == ["svg"]
    assert client.get(f"{base}/masks.svg",
                      HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert client.get(f"{base}/masks.svg?turdsize=50").status_code == 200
    assert made == ["svg", "svg"], "other settings: made again"
    client.patch(f"{base}/objects/1", {"name": "Renamed"}, content_type="application/json")
    renamed = client.get(f"{base}/masks.svg")
    assert made == ["svg"] * 3 and renamed["ETag"] != first["ETag"]
    assert b"Renamed" in renamed.content
    # The view link gets the same bytes, from the cache.
    assert client.get(f"/api/v1/sessions/{session.view_token}/masks.svg").content == \
        renamed.content and len(made) == 3


def test_downloads_past_the_threads_and_their_queue_get_503(settings, monkeypatch):
    """One download thread and no queue: while one is being made, the next gets 503 at once
    (with Retry-After); clicks and uploads never wait behind downloads."""
    from maskweb.masking.editing import downloads

    settings.DOWNLOAD_CONCURRENCY, settings.DOWNLOAD_QUEUE = 1, 0
    session = make_session()
    base = _applied(session)
    started, release = threading.Event(), threading.Event()
    real_png = downloads.png

    def slow_png(*args: Any, **kwargs: Any) -> bytes:
        started.set()
        assert release.wait(30)
        return real_png(*args, **kwargs)

    monkeypatch.setattr(downloads, "png", slow_png)

    async def scenario() -> tuple[Any, Any, Any]:
        client = AsyncClient()
        first = asyncio.ensure_future(client.get(f"{base}/mask.png"))
        assert await asyncio.to_thread(started.wait, 30)
        second = await client.get(f"{base}/mask.png?soft=1")
        meanwhile = await client.get(f"{base}/current")
        release.set()
        return await first, second, meanwhile

    first, second, meanwhile = asyncio.run(scenario())
    assert first.status_code == 200 and first["Content-Type"] == "image/png"
    assert second.status_code == 503 and second.json()["error"]["code"] == "busy"
    assert int(second["Retry-After"]) > 0
    assert meanwhile.status_code == 200
    wait_for_decodes()


def test_a_made_download_that_fails_is_a_json_error_not_a_crash(monkeypatch):
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    empty = Client().get(f"{base}/mask.png")
    assert empty.status_code == 409 and empty.json()["error"]["code"] == "empty"
    assert editing.reload(session).status == Status.READY


def stored(photo: Photo) -> bool:
    """Whether any of the photo's files is still in the storage."""
    return any(storage.exists(name) for name in photo.file_names)
