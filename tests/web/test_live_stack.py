"""The real stack end to end (embedded Redis, a Celery worker process, Daphne), driven over HTTP
and the websocket as a script would: upload, wait for ready, click, get a mask frame; share;
and nothing is lost when the worker dies or Redis is flushed.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.web.client import Socket, request, two_tone_photo, upload, wait_ready

pytestmark = pytest.mark.timeout(240)


def _session(live_stack, seed: int) -> dict:
    status, state = upload(live_stack.url, f"photo{seed}.png", two_tone_photo(seed=seed))
    assert status == 201, state
    return state


def test_click_over_the_socket_returns_a_mask_of_the_object(live_stack):
    state = _session(live_stack, seed=1)
    sock = Socket(live_stack.ws_url, state["edit_token"])
    viewer = Socket(live_stack.ws_url, state["view_token"])
    try:
        hello = sock.next()
        assert hello["type"] == "hello" and hello["role"] == "edit"
        assert viewer.next()["role"] == "view"
        wait_ready(sock, hello)
        sock.send(type="prompt", id="c1", prompt={"kind": "point", "x": 240, "y": 180})
        # A click just after "ready" may also be drawn by the worker (its prompts-while-
        # encoding pass reads the session after the click was written) and reach the page
        # first with no id: the answer to this click is the frame with its id.
        header, mask = sock.wait_for(lambda f: isinstance(f, tuple) and f[0]["id"] == "c1")
        assert header["object_id"] == 1
        assert (header["width"], header["height"]) == (480, 360)
        assert mask[180, 240] and not mask[20, 20], "the object, not the background"
        assert mask[120:240, 160:320].mean() > 0.8 and mask.mean() < 0.3
        # The view link sees the same mask without sending anything...
        seen, seen_mask = viewer.wait_mask()
        assert seen["seq"] == header["seq"] and (seen_mask == mask).all()
        # ...and cannot write.
        viewer.send(type="prompt", id="v1", prompt={"kind": "point", "x": 10, "y": 10})
        refused = viewer.wait_type("error", id="v1")
        assert refused["code"] == "forbidden"
    finally:
        sock.close()
        viewer.close()
    # The prompt log is in the database: a fresh GET shows it.
    status, body, _ = request("GET", f"{live_stack.url}/api/v1/sessions/{state['view_token']}")
    assert status == 200
    assert json.loads(body)["current"]["prompts"] == [
        {"kind": "point", "x": 240.0, "y": 180.0, "positive": True}]


def test_session_survives_redis_flush_and_daphne_restart(live_stack):
    state = _session(live_stack, seed=2)
    token = state["edit_token"]
    sock = Socket(live_stack.ws_url, token)
    wait_ready(sock, sock.next())
    sock.send(type="prompt", prompt={"kind": "point", "x": 240, "y": 180})
    first, first_mask = sock.wait_mask()
    sock.close()

    live_stack.flush_redis()  # embeddings, queue, channel layer: all gone
    live_stack.restart_daphne()  # and the web process's own copy of the embedding with it

    sock = Socket(live_stack.ws_url, token)
    try:
        hello = sock.next()
        assert hello["state"]["current"]["prompts"], "the prompt log survived"
        # The page is told that the photo is analysed again, then gets the mask back.
        sock.wait_type("status", status="reencoding")
        header, mask = sock.wait_mask()
        assert header["prompts"] == first["prompts"]
        assert (mask == first_mask).mean() > 0.99
        sock.send(type="prompt", prompt={"kind": "point", "x": 20, "y": 20, "positive": False})
        header, _ = sock.wait_mask()
        assert len(header["prompts"]) == 2
    finally:
        sock.close()


def test_a_redis_restart_costs_open_sockets_and_new_uploads_nothing(live_stack):
    """Redis restarted (its data saved and loaded again): every pooled connection of Daphne
    and the worker is dead. An open socket stays open and its next click gets its mask, with
    no error frame; a new upload is encoded (the worker reconnects to the broker) and its
    first socket connects at once. Before the clients reconnected on their own, Daphne closed
    every open socket with 1011 and failed the next new one."""
    state = _session(live_stack, seed=5)
    sock = Socket(live_stack.ws_url, state["edit_token"])
    try:
        wait_ready(sock, sock.next())
        sock.send(type="prompt", id="before", prompt={"kind": "point", "x": 240, "y": 180})
        sock.wait_mask()
        live_stack.restart_redis()
        sock.send(type="prompt", id="after", prompt={"kind": "point", "x": 250, "y": 180})
        # The click just after "ready" may also come back in the worker's broadcast of its
        # revision (the same seq): skip frames of other clicks, not errors.
        header = sock.wait_for(lambda f: isinstance(f, tuple) and f[0]["id"] == "after"
                               or isinstance(f, dict) and f.get("type") == "error")
        assert isinstance(header, tuple), header
        assert len(header[0]["prompts"]) == 2
    finally:
        sock.close()

    fresh = _session(live_stack, seed=6)
    sock = Socket(live_stack.ws_url, fresh["edit_token"])
    try:
        wait_ready(sock, sock.next(), timeout=90)
        sock.send(type="prompt", prompt={"kind": "point", "x": 240, "y": 180})
        _, mask = sock.wait_mask()
        assert mask[180, 240] and not mask[5, 5]
    finally:
        sock.close()


def test_encode_job_lost_with_its_worker_is_finished_by_the_next_worker(live_stack):
    live_stack.kill_worker()
    state = _session(live_stack, seed=3)
    assert state["status"] == "encoding"
    live_stack.flush_redis()  # the queued job is gone too, as after a crash of everything
    live_stack.start_worker()  # a new worker resumes the unfinished encodes when it starts
    sock = Socket(live_stack.ws_url, state["edit_token"])
    try:
        wait_ready(sock, sock.next(), timeout=90)
        sock.send(type="prompt", prompt={"kind": "box", "x0": 150, "y0": 110, "x1": 330,
                                         "y1": 250})
        header, mask = sock.wait_mask()
        assert mask[180, 240] and not mask[5, 5]
    finally:
        sock.close()


def test_pages_and_unknown_tokens(live_stack):
    state = _session(live_stack, seed=4)
    status, _, _ = request("GET", f"{live_stack.url}/s/{state['edit_token']}/")
    assert status in (200, 404)  # 404 only until frontend/session.html exists
    status, body, _ = request("GET", f"{live_stack.url}/s/no-such-token/")
    assert status == 404
    status, body, _ = request("GET", f"{live_stack.url}/api/v1/sessions/no-such-token")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, body, headers = request("GET", f"{live_stack.url}/api/v1/openapi.json")
    assert status == 200 and json.loads(body)["openapi"].startswith("3.")


def test_worker_killed_mid_encode_is_replaced_and_the_encode_finishes(live_stack):
    """Needs an encoder slow enough to be caught mid-job: an installed ONNX model."""
    _, body, _ = request("GET", f"{live_stack.url}/api/v1/models")
    onnx = [m["id"] for m in json.loads(body)["models"] if m["id"] != "grabcut"]
    if not onnx:
        pytest.skip("no ONNX model installed (models/ or MASKWEB_MODELS_DIR)")
    status, state = upload(live_stack.url, "slow.png", two_tone_photo(seed=6), model=onnx[0])
    assert status == 201, state
    sock = Socket(live_stack.ws_url, state["edit_token"])
    try:
        sock.next()
        client = live_stack.redis()
        deadline = time.monotonic() + 60
        while not client.keys("maskweb:lock:*"):  # the worker holds the job's lock: encoding
            assert time.monotonic() < deadline, live_stack.logs()
            time.sleep(0.02)
        client.close()
        live_stack.kill_worker()
        live_stack.start_worker()  # resumes the job once the dead worker's lock runs out
        sock.wait_type("status", 120, status="ready")
        sock.send(type="prompt", prompt={"kind": "box", "x0": 150, "y0": 110, "x1": 330,
                                         "y1": 250})
        header, mask = sock.wait_mask()
        assert header["scores"] and mask is not None
    finally:
        sock.close()


def test_a_body_that_is_not_multipart_gets_the_apis_json_error(live_stack):
    """Daphne's Twisted would parse the body itself first and answer a bad one with its own
    bare HTML 400 (maskweb/daphne_http.py turns that off): the API must answer."""
    status, body, headers = request(
        "POST", f"{live_stack.url}/api/v1/sessions", b"this is not a multipart body",
        {"Content-Type": "multipart/form-data; boundary=xyz"})
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "invalid_image"
