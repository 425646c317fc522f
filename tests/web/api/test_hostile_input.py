"""Hostile or broken input, each case of issue 19 (item 6): a clear JSON error or error frame,
never Django's HTML pages or a socket closed with 1011, and nothing changed.

The socket cases run through channels' WebsocketCommunicator with the real Redis channel layer,
the HTTP ones through Django's test client (the same middleware and views as under Daphne).
Cases that need Daphne itself (a static path that climbs out, a chunked upload) are in
tests/web/test_http_limits.py.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from PIL import Image

from maskweb.asgi import application
from maskweb.masking import editing
from maskweb.masking.api.app import attachment_disposition
from maskweb.masking.models import MaskSession, Status
from tests.web.client import split_frame, two_tone_photo
from tests.web.conftest import make_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

INSIDE = {"kind": "point", "x": 240, "y": 180}
NESTED = "[" * 3000 + "]" * 3000
BIG_INT = "9" * 400


def log_of(session: MaskSession) -> list[dict[str, Any]]:
    current = editing.reload(session).current
    return current.actions if current is not None else []


# --- the socket -----------------------------------------------------------------------------

async def _frames_until(comm: WebsocketCommunicator, predicate: Any) -> Any:
    while True:
        message = await comm.receive_output(timeout=20)
        assert message["type"] == "websocket.send", f"the socket closed: {message}"
        item = split_frame(message["bytes"]) if message.get("bytes") is not None \
            else json.loads(message["text"])
        if predicate(item):
            return item


def _error(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type") == "error"


@pytest.mark.parametrize("raw,code", [
    ('{"v": 1, "type": ["prompt"], "id": "t1"}', "unknown_type"),
    ('{"v": 1, "type": {"a": 1}, "id": "t2"}', "unknown_type"),
    ('{"v": 1, "type": 7}', "unknown_type"),
    ('{"v": 1, "type": "prompt", "prompt": ' + NESTED + "}", "bad_json"),
    (NESTED, "bad_json"),
    ('{"v": 1, "type": "prompt", "id": "big", "prompt": {"kind": "point", "x": ' + BIG_INT
     + ', "y": 1}}', "bad_field"),
    ('{"v": 1, "type": "candidate", "index": 7, "id": "c"}', "bad_field"),
    ('{"v": 1, "type": "rename", "object_id": ' + BIG_INT + ', "name": "x"}', "bad_field"),
], ids=["type-list", "type-object", "type-number", "nested-prompt", "nested-array",
        "400-digit-x", "candidate-beyond-scores", "400-digit-object"])
def test_a_malformed_socket_message_gets_an_error_frame_and_the_socket_goes_on(raw, code):
    session = make_session()

    async def scenario() -> None:
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session.edit_token}/")
        assert (await comm.connect(timeout=10))[0]
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "prompt": INSIDE}))
        await _frames_until(comm, lambda i: isinstance(i, tuple))
        await comm.send_to(text_data=raw)
        error = await _frames_until(comm, _error)
        assert error["code"] == code, error
        request = json.loads(raw) if len(raw) < 2000 else {}
        if isinstance(request, dict) and isinstance(request.get("id"), str):
            assert error["id"] == request["id"]
        # Still open, still working.
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": "alive"}))
        pong = await _frames_until(comm, lambda i: isinstance(i, dict)
                                   and i.get("type") == "pong")
        assert pong["id"] == "alive"
        await comm.disconnect()

    asyncio.run(scenario())
    assert len(log_of(session)) == 1, "only the good prompt was written"


def test_a_rate_limited_message_is_answered_with_its_id(settings):
    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 0.1, 2
    session = make_session()

    async def scenario() -> list[dict[str, Any]]:
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session.edit_token}/")
        assert (await comm.connect(timeout=10))[0]
        for i in range(4):
            await comm.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": f"m{i}"}))
        answers = [await _frames_until(comm, lambda i: isinstance(i, dict)
                                       and i.get("type") in ("pong", "error"))
                   for _ in range(4)]
        await comm.disconnect()
        return answers

    answers = asyncio.run(scenario())
    limited = [a for a in answers if a["type"] == "error"]
    assert [a["code"] for a in limited] == ["rate_limited", "rate_limited"]
    assert [a["id"] for a in limited] == ["m2", "m3"]


# --- HTTP ------------------------------------------------------------------------------------

def _json_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.mark.parametrize("body,code", [
    (NESTED, "bad_json"),
    ('{"kind": "point", "x": ' + BIG_INT + ', "y": 1}', "bad_field"),
    ('{"kind": ["point"], "x": 1, "y": 1}', "bad_field"),
    ('{"kind": "point", "x": 1, "y": 1, "positive": {"a": ' + NESTED + "}}", "bad_json"),
], ids=["nested", "400-digit-x", "kind-list", "nested-inside"])
def test_a_malformed_http_body_is_a_json_400(body, code):
    session = make_session()
    response = Client().post(f"/api/v1/sessions/{session.edit_token}/prompts", body,
                             content_type="application/json")
    _json_error(response, 400, code)
    assert log_of(session) == []


def test_djangos_own_errors_on_api_paths_are_json():
    session = make_session()
    client = Client()
    _json_error(client.get("/api/v1/no-such-thing"), 404, "not_found")
    _json_error(client.get(f"/api/v1/sessions/{session.edit_token}/objects/1/nope"), 404,
                "not_found")
    error = _json_error(client.put(f"/api/v1/sessions/{session.edit_token}/undo"), 405,
                        "method_not_allowed")
    assert "POST" in error["message"]
    # A Host the app does not serve: Django's 400 (DisallowedHost), as JSON.
    _json_error(client.get("/api/v1/models", HTTP_HOST="evil.example"), 400, "bad_request")
    # The pages keep HTML.
    assert not client.get("/no-such-page").get("Content-Type", "").startswith(
        "application/json")


def test_a_candidate_beyond_the_scores_is_refused():
    session = make_session()
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    scores = client.post(f"{base}/prompts", INSIDE, content_type="application/json") \
        .json()["scores"]
    error = _json_error(client.post(f"{base}/candidate", {"index": len(scores)},
                                    content_type="application/json"), 400, "bad_field")
    assert str(len(scores) - 1) in error["message"]
    assert editing.reload(session).current.candidate == 0
    ok = client.post(f"{base}/candidate", {"index": len(scores) - 1},
                     content_type="application/json")
    assert ok.status_code == 200 and ok.json()["candidate"] == len(scores) - 1


def test_apply_during_the_first_encode_says_so_and_loses_nothing():
    """It used to answer "the analysis was lost" and queue the encode again."""
    session = make_session(ready=False)
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    assert client.post(f"{base}/prompts", INSIDE,
                       content_type="application/json").status_code == 202
    error = _json_error(client.post(f"{base}/apply", content_type="application/json"), 409,
                        "not_ready")
    assert "lost" not in error["message"] and "still being analysed" in error["message"]
    fresh = editing.reload(session)
    assert fresh.status == Status.ENCODING and "lost" not in fresh.message
    assert len(log_of(session)) == 1


@pytest.mark.parametrize("size", [(1, 300), (300, 1), (4000, 8)])
def test_a_picture_too_thin_to_encode_is_refused_at_upload(size):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = Client().post("/api/v1/sessions",
                             {"photo": SimpleUploadedFile("thin.png", buf.getvalue())})
    error = _json_error(response, 400, "invalid_image")
    assert "at least" in error["message"]
    assert MaskSession.objects.count() == 0


def exif_with_orientation(kind: int, count: int, value: bytes) -> bytes:
    """An EXIF block whose only entry is Orientation with any TIFF type and value (Pillow
    writes only a proper SHORT): type 2 ASCII, 3 SHORT, 4 LONG, 7 UNDEFINED."""
    import struct

    entry = struct.pack(">HHI", 0x0112, kind, count) + value.ljust(4, b"\0")[:4]
    ifd = struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    return b"Exif\0\0" + b"MM\0*" + struct.pack(">I", 8) + ifd


@pytest.mark.parametrize("kind,count,value", [
    (2, 4, b"abc\0"),            # a string
    (3, 2, b"\0\x09\0\x09"),     # two values (Pillow reads the first, 9)
    (3, 1, b"\0\0"),             # 0
    (4, 1, b"\0\0\0\x63"),       # 99
    (7, 2, b"\x01\x02"),          # raw bytes
], ids=["string", "two-values", "zero", "ninety-nine", "bytes"])
def test_a_junk_exif_orientation_is_taken_as_upright(kind, count, value):
    image = Image.open(io.BytesIO(two_tone_photo(fmt="JPEG")))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif_with_orientation(kind, count, value))
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = Client().post("/api/v1/sessions",
                             {"photo": SimpleUploadedFile("junk.jpg", buf.getvalue())})
    assert response.status_code == 201, response.content
    photo = response.json()["photo"]
    assert photo["orientation"] == 1 and (photo["width"], photo["height"]) == (480, 360)


@pytest.mark.parametrize("name,plain", [
    ("été à Paris.jpg", "ete a Paris.jpg"),
    ("写真.jpg", "__.jpg"),
    ('he said "hi".png', "he said _hi_.png"),
    ("plain.jpg", "plain.jpg"),
])
def test_a_download_name_reaches_curl_and_browsers(name, plain):
    """A plain ASCII filename every client reads (curl -J uses it), and the UTF-8 name in
    filename* for browsers; Django had turned a non-ASCII header into RFC 2047 words."""
    header = attachment_disposition(name)
    assert header.startswith(f'attachment; filename="{plain}"')
    assert header.isascii() and "=?utf-8?" not in header
    if name.isascii() and '"' not in name:
        assert "filename*" not in header
    else:
        from urllib.parse import unquote

        assert unquote(header.split("filename*=UTF-8''", 1)[1]) == name


def test_a_non_ascii_photo_names_sidecar_keeps_its_xmp_name():
    session = make_session(name="Über Straße.jpg")
    access = editing.Access(session, editing.EDIT)
    editing.add_prompt(access, INSIDE)
    editing.apply(access)
    response = Client().get(f"/api/v1/sessions/{session.edit_token}/sidecar.xmp")
    assert response.status_code == 200
    disposition = response["Content-Disposition"]
    assert disposition.isascii()
    assert 'filename="Uber Stra_e.jpg.xmp"' in disposition
    assert "filename*=UTF-8''%C3%9Cber%20Stra%C3%9Fe.jpg.xmp" in disposition


def test_object_downloads_are_named_after_the_object_safely_and_distinctly():
    """Object downloads carry the object's name (renamed too), cleaned of what an OS refuses,
    its letters kept in filename*; the hard and soft PNG differ; the sidecar keeps the
    photo's name (the only one darktable reads)."""
    from urllib.parse import unquote

    session = make_session(name="IMG_7.jpg")
    access = editing.Access(session, editing.EDIT)
    editing.add_prompt(access, INSIDE)
    editing.apply(access)
    editing.update_object(access, 1, name='Sky/..\\写真: "left"?')
    base = f"/api/v1/sessions/{session.edit_token}/objects/1"

    def names(url: str) -> tuple[str, str]:
        response = Client().get(url)
        assert response.status_code == 200
        disposition = response["Content-Disposition"]
        plain = disposition.split('filename="', 1)[1].split('"', 1)[0]
        star = disposition.split("filename*=UTF-8''", 1)[1] if "filename*" in disposition \
            else plain
        return plain, unquote(star)

    assert names(f"{base}/mask.png") == ("IMG_7-Sky_..____ _left__.png",
                                         "IMG_7-Sky_.._写真_ _left__.png")
    assert names(f"{base}/mask.png?soft=1")[1] == "IMG_7-Sky_.._写真_ _left__-soft.png"
    assert names(f"{base}/mask.svg")[1] == "IMG_7-Sky_.._写真_ _left__.svg"
    assert names(f"{base}/sidecar.xmp") == ("IMG_7.jpg.xmp", "IMG_7.jpg.xmp")
