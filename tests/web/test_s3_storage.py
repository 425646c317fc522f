"""The photos' files and the uploaded sidecars in a real S3 object store (SeaweedFS's weed,
tests/s3.py), through the whole live stack: Daphne takes the upload and puts it in the
bucket, the Celery worker reads the original back from the bucket to encode it, downloads read
it for their full-resolution edges, a sidecar goes to the bucket, and deleting the session
empties the bucket. Nothing of a photo is kept on the hosts' own disks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.s3 import S3Server, running_server
from tests.stack import LiveStack, start_stack
from tests.web.client import Socket, request, two_tone_photo, upload, wait_ready

BUCKET = "maskweb-photos"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_server() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def s3_stack(s3: S3Server) -> Iterator[LiveStack]:
    with start_stack(s3.env(BUCKET)) as stack:
        yield stack


def _object(s3: S3Server, key: str) -> bytes:
    got: Any = s3.client().get_object(Bucket=BUCKET, Key=key)  # type: ignore[attr-defined]
    return bytes(got["Body"].read())


def _local_photo_files(stack: LiveStack) -> list[str]:
    return [str(p) for p in stack.data_dir.rglob("*")
            if p.is_file() and p.name.startswith(("original.", "preview.", "work."))]


def test_a_session_lives_in_the_bucket_from_upload_to_delete(s3: S3Server, s3_stack: LiveStack):
    content = two_tone_photo(seed=11)
    status, state = upload(s3_stack.url, "bucket.png", content)
    assert status == 201, state
    sock = Socket(s3_stack.ws_url, state["edit_token"])
    try:
        hello: Any = sock.next()
        wait_ready(sock, hello)  # the worker read the original from the bucket and encoded it
        sock.send(type="prompt", id="c1", prompt={"kind": "point", "x": 240, "y": 180})
        _, mask = sock.wait_for(lambda f: isinstance(f, tuple) and f[0]["id"] == "c1")
        assert mask[180, 240] and not mask[20, 20]
    finally:
        sock.close()

    keys = sorted(s3.keys(BUCKET))
    assert len(keys) == 2 and keys[0].endswith("/original.png") \
        and keys[1].endswith("/preview.jpg"), keys
    assert _object(s3, keys[0]) == content, "the original as uploaded"
    assert _local_photo_files(s3_stack) == [], "no photo file on the hosts' own disks"

    base = f"{s3_stack.url}/api/v1/sessions/{state['edit_token']}"
    status, preview, _ = request("GET", f"{base}/photo")
    assert status == 200 and preview == _object(s3, keys[1])
    status, png, _ = request("GET", f"{base}/mask.png")
    assert status == 200 and Image.open(io.BytesIO(png)).size == (480, 360)
    status, xmp, _ = request("GET", f"{base}/sidecar.xmp")
    assert status == 200 and b"masks_history" in xmp

    # darktable's sidecar of the photo, uploaded: kept in the bucket, merged into downloads.
    status, body, _ = request("POST", f"{base}/sidecar", xmp,
                              {"Content-Type": "application/rdf+xml"})
    assert status == 200, body
    sidecars = [k for k in s3.keys(BUCKET) if k.startswith("sidecars/")]
    assert len(sidecars) == 1 and _object(s3, sidecars[0]) == xmp
    # Another sidecar replaces it: the old object goes.
    other = xmp.replace(b"</x:xmpmeta>", b"<!-- edited again --></x:xmpmeta>")
    assert other != xmp
    status, body, _ = request("POST", f"{base}/sidecar", other,
                              {"Content-Type": "application/rdf+xml"})
    assert status == 200, body
    now = [k for k in s3.keys(BUCKET) if k.startswith("sidecars/")]
    assert len(now) == 1 and now != sidecars and _object(s3, now[0]) == other
    status, merged, _ = request("GET", f"{base}/sidecar.xmp")
    assert status == 200 and b"masks_history" in merged

    status, _, _ = request("DELETE", base)
    assert status == 204
    assert s3.keys(BUCKET) == [], "the photo's files and the sidecar left the bucket"
    status, body, _ = request("GET", base)
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


def test_create_bucket_makes_a_missing_bucket_once(s3: S3Server, s3_stack: LiveStack):
    """`manage.py create_bucket` (docker-compose runs it before the web replicas start)."""
    import subprocess
    import sys

    env = {**s3_stack.env, **s3.env("fresh-bucket")}

    def create() -> str:
        done = subprocess.run([sys.executable, "manage.py", "create_bucket"], env=env,
                              capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert "fresh-bucket" not in _buckets(s3)
    assert create() == "bucket fresh-bucket: created"
    assert "fresh-bucket" in _buckets(s3)
    assert create() == "bucket fresh-bucket: exists"


def _buckets(s3: S3Server) -> list[str]:
    listed: Any = s3.client().list_buckets()  # type: ignore[attr-defined]
    return [b["Name"] for b in listed["Buckets"]]
