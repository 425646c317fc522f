"""A tiny script-style client for the live stack: HTTP with urllib, the socket with websockets."""

from __future__ import annotations

import io
import json
import struct
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import numpy as np
from PIL import Image
from websockets.sync.client import ClientConnection, connect


def request(method: str, url: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, dict):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def upload(base: str, name: str, content: bytes, model: str | None = None) -> tuple[int, Any]:
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; "
             f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
             content, b"\r\n"]
    if model:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
                     f"{model}\r\n".encode())
    parts.append(f"--{boundary}--\r\n".encode())
    status, body, _ = request("POST", f"{base}/api/v1/sessions", b"".join(parts),
                              {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    return status, json.loads(body)


def frame_parts(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """A binary mask frame's JSON header and PNG bytes (docs/protocol.md)."""
    (length,) = struct.unpack(">I", frame[:4])
    return json.loads(frame[4:4 + length]), frame[4 + length:]


def split_frame(frame: bytes) -> tuple[dict[str, Any], np.ndarray | None]:
    header, png = frame_parts(frame)
    mask = np.asarray(Image.open(io.BytesIO(png)).convert("L")) >= 128 if png else None
    return header, mask


class Socket:
    """Collects frames; ``wait_for`` returns the first one matching, skipping others."""

    def __init__(self, ws_base: str, token: str) -> None:
        self._connecting = connect(f"{ws_base}/ws/sessions/{token}/", max_size=2**24,
                                   open_timeout=20)
        self.conn: ClientConnection = self._connecting.__enter__()

    def send(self, **message: Any) -> None:
        self.conn.send(json.dumps({"v": 1, **message}))

    def send_raw(self, text: str) -> None:
        self.conn.send(text)

    def next(self, timeout: float = 30) -> dict[str, Any] | tuple[dict[str, Any], Any]:
        frame = self.conn.recv(timeout=timeout)
        if isinstance(frame, bytes):
            return split_frame(frame)
        return dict(json.loads(frame))

    def wait_for(self, predicate: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame; saw {seen[-10:]}")
            item = self.next(timeout=left)
            if predicate(item):
                return item
            seen.append(item if isinstance(item, dict) else item[0])

    def wait_mask(self, timeout: float = 60) -> tuple[dict[str, Any], Any]:
        return self.wait_for(lambda f: isinstance(f, tuple), timeout)

    def wait_type(self, kind: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        return self.wait_for(
            lambda f: isinstance(f, dict) and f.get("type") == kind
            and all(f.get(k) == v for k, v in fields.items()), timeout)

    def close(self) -> None:
        self._connecting.__exit__(None, None, None)


def is_mask(frame: Any) -> bool:
    return isinstance(frame, tuple)


def wait_ready(sock: Socket, hello: dict[str, Any], timeout: float = 60) -> None:
    if hello["state"]["status"] != "ready":
        sock.wait_type("status", timeout, status="ready")


def two_tone_photo(width: int = 480, height: int = 360, seed: int = 0,
                   fmt: str = "PNG", exif_orientation: int | None = None) -> bytes:
    """A blue background with a yellow rectangle (x 160..320, y 120..240): an easy object."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:] = (40, 90, 200)
    pixels[120:240, 160:320] = (240, 210, 40)
    pixels = np.clip(pixels.astype(int) + rng.integers(-8, 8, pixels.shape), 0, 255)
    img = Image.fromarray(pixels.astype(np.uint8))
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buf, format=fmt, exif=exif.tobytes())
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()
