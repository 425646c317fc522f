"""Daphne against slow, large and malformed HTTP requests, over real sockets
(maskweb.daphne_http), and the security headers on every answer (maskweb.headers).

A stack of its own with short deadlines (2 s for headers, 3 s idle) and small body limits, so
each case takes seconds: the defaults are the same code with larger numbers."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.stack import LiveStack, start_stack
from tests.web.client import Socket, request, two_tone_photo, upload, wait_ready

pytestmark = pytest.mark.timeout(180)

LIMITS = {"MASKWEB_HTTP_HEADER_TIMEOUT": "2", "MASKWEB_HTTP_IDLE_TIMEOUT": "3",
          "MASKWEB_HTTP_MIN_BODY_RATE": "100000", "MASKWEB_MAX_REQUEST_BYTES": "65536",
          "MASKWEB_MAX_UPLOAD_BYTES": "2000000", "MASKWEB_WS_QUEUE": "4"}
UPLOAD_LIMIT = 2_000_000 + 1024 * 1024


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with start_stack(LIMITS) as running:
        yield running


def connect(stack: LiveStack) -> socket.socket:
    sock = socket.create_connection((stack.host, stack.port), timeout=30)
    sock.settimeout(30)
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one HTTP/1.1 answer (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without an answer: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes the connection within ``seconds``; what it sent first."""
    sock.settimeout(0.2)
    received, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


def daphne_rss(stack: LiveStack) -> float:
    assert stack.daphne is not None
    return psutil.Process(stack.daphne.pid).memory_info().rss / 2**20


def test_a_body_declared_too_large_is_refused_before_it_is_sent(stack):
    """A 330 MB body used to be read in full (Daphne grew by 337 MB and stayed) before the
    413. Now the answer comes from the headers alone: the client never sends a byte of it."""
    before = daphne_rss(stack)
    for path, declared in (("/api/v1/sessions", UPLOAD_LIMIT + 1),
                           ("/api/v1/sessions", 330 * 2**20),
                           ("/api/v1/sessions/x/prompts", 65537)):
        sock = connect(stack)
        try:
            sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Content-Type: application/octet-stream\r\n"
                          f"Content-Length: {declared}\r\n\r\n").encode())
            status, headers, body = read_answer(sock)
        finally:
            sock.close()
        assert status == 413, body
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]["code"] == "too_large"
    assert daphne_rss(stack) - before < 30, "nothing was read into memory"


def test_a_client_that_waits_for_100_continue_is_told_413_instead(stack):
    sock = connect(stack)
    try:
        sock.sendall(b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Expect: 100-continue\r\nContent-Length: 999999999\r\n\r\n")
        status, _, body = read_answer(sock)
    finally:
        sock.close()
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"


def test_a_chunked_body_past_the_limit_is_cut_off_with_413(stack):
    sock = connect(stack)
    try:
        sock.sendall(b"POST /api/v1/sessions/x/prompts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
        chunk = b"x" * 16384
        try:
            for _ in range(16):  # 256 KB against a 64 KB limit
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while sending: the answer is already on its way
        status, _, body = read_answer(sock)
    finally:
        sock.close()
    assert status == 413 and json.loads(body)["error"]["code"] == "too_large"


def test_a_chunked_upload_is_accepted(stack):
    """It used to be told "send the photo as the multipart field": Django read the missing
    Content-Length as an empty body."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
            f"filename=\"chunked.png\"\r\nContent-Type: image/png\r\n\r\n").encode() \
        + two_tone_photo(seed=31) + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection(stack.host, stack.port, timeout=60)
    try:
        connection.request("POST", "/api/v1/sessions",
                           body=iter([body[i:i + 4096] for i in range(0, len(body), 4096)]),
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                    "Transfer-Encoding": "chunked"},
                           encode_chunked=True)
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 201, answer
    assert answer["photo"]["name"] == "chunked.png"


def test_headers_that_never_end_are_cut_off(stack):
    """3000 connections held for 60 s with a byte now and then: each now has 2 s (here) for
    its request line and headers, however often it sends a byte."""
    sock = connect(stack)
    try:
        sock.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for _ in range(4):  # a byte a second would have reset Twisted's idle timeout
            time.sleep(0.8)
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                break
        closed, sent = closed_within(sock, 15)
    finally:
        sock.close()
    assert closed, "the connection was kept"
    assert time.monotonic() - started < 16
    assert sent.startswith(b"HTTP/1.1 408"), sent[:100]


def test_a_connection_that_sends_nothing_is_closed(stack):
    sock = connect(stack)
    try:
        closed, sent = closed_within(sock, 15)
    finally:
        sock.close()
    assert closed and sent == b"", "closed without an answer nobody asked for"


def test_a_body_that_trickles_in_is_cut_off(stack):
    sock = connect(stack)
    try:
        sock.sendall(b"POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/octet-stream\r\nContent-Length: 500000\r\n\r\n")
        started = time.monotonic()
        stopped = False
        while time.monotonic() - started < 20 and not stopped:
            try:
                sock.sendall(b"y" * 500)  # 1 KB/s, against 100 KB/s here
            except (BrokenPipeError, ConnectionResetError):
                stopped = True
            closed, sent = closed_within(sock, 0.5)
            if closed or sent:
                break
    finally:
        sock.close()
    assert time.monotonic() - started < 20, "the trickle was let go on"
    assert sent.startswith(b"HTTP/1.1 408") or stopped or closed


def test_a_static_path_that_climbs_out_is_not_found(stack):
    for path in ("/static/../maskweb/settings.py", "/static/%2e%2e/%2e%2e/etc/passwd",
                 "/static/js/../../../manage.py"):
        sock = connect(stack)
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Connection: close\r\n\r\n".encode())
            status, _, body = read_answer(sock)
        finally:
            sock.close()
        assert status == 404, (path, status, body[:200])
        assert b"SECRET_KEY" not in body and b"root:" not in body


EXPECTED_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                    "x-frame-options": "DENY"}


def headers_of(stack: LiveStack, path: str) -> dict[str, Any]:
    _, _, headers = request("GET", stack.url + path)
    return {k.lower(): v for k, v in headers.items()}


@pytest.mark.parametrize("path", ["/", "/static/js/session.js", "/static/css/app.css",
                                  "/api/v1/models", "/api/v1/nope", "/static/nope.js"])
def test_every_answer_carries_the_security_headers(stack, path):
    headers = headers_of(stack, path)
    for name, value in EXPECTED_HEADERS.items():
        assert headers.get(name) == value, (path, name, headers)
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_a_socket_flooding_faster_than_it_is_read_is_slowed_down_not_buffered(stack):
    """1500 messages of 60 KB sent as fast as the socket takes them: Daphne stops reading the
    socket while 4 (here) wait for the consumer, so its memory does not grow by the 90 MB
    (with no limit it grew by 163 MB for 3000), every message is still answered, in order,
    and the socket stays open."""
    status, state = upload(stack.url, "flood.png", two_tone_photo(seed=32))
    assert status == 201, state
    daphne = psutil.Process(stack.daphne.pid)
    before = daphne.memory_info().rss / 2**20
    peak = [before]
    sending = threading.Event()

    def watch() -> None:
        while not sending.is_set():
            peak[0] = max(peak[0], daphne.memory_info().rss / 2**20)
            time.sleep(0.01)

    sock = Socket(stack.ws_url, state["view_token"])
    answers: list[str] = []
    try:
        wait_ready(sock, sock.wait_type("hello", 30))  # no status frame mixes in below
        reader = threading.Thread(target=lambda: answers.extend(
            sock.next(60)["type"] for _ in range(1500)), daemon=True)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        reader.start()
        padding = "x" * 60_000
        for i in range(1500):
            sock.send(type="ping", id=f"f{i}", pad=padding)
        reader.join(120)
        sending.set()
        watcher.join(10)
        sock.send(type="ping", id="still-open")  # answered (pong, or rate_limited): open
        assert sock.wait_for(lambda f: isinstance(f, dict) and f.get("id") == "still-open", 30)
    finally:
        sock.close()
    assert len(answers) == 1500 and set(answers) <= {"pong", "error"}
    assert peak[0] - before < 40, f"Daphne grew from {before:.0f} to {peak[0]:.0f} MiB"
