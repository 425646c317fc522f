"""Uploads: every accepted format becomes a session; every bad file is a clear 4xx and leaves
nothing behind (no row, no file)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from maskweb.masking.models import MaskSession
from maskweb.photos.models import Photo
from tests.web.client import two_tone_photo

pytestmark = pytest.mark.django_db(transaction=True)


def post(client: Client, content: bytes, name: str = "photo.jpg", **extra: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post("/api/v1/sessions",
                       {"photo": SimpleUploadedFile(name, content), **extra})


def nothing_stored(settings) -> bool:
    media = Path(settings.MEDIA_ROOT)
    files = [p for p in media.rglob("*") if p.is_file()] if media.exists() else []
    return Photo.objects.count() == 0 and MaskSession.objects.count() == 0 and not files


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("fmt,name", [("JPEG", "a.jpg"), ("PNG", "a.png"), ("WEBP", "a.webp"),
                                      ("TIFF", "a.tif")])
def test_each_accepted_format_becomes_a_session(fmt, name):
    response = post(Client(), two_tone_photo(fmt=fmt), name)
    assert response.status_code == 201, response.content
    state = response.json()
    assert state["role"] == "edit" and state["status"] == "encoding"
    assert (state["photo"]["width"], state["photo"]["height"]) == (480, 360)
    assert state["edit_url"] == f"/s/{state['edit_token']}/"
    assert state["edit_token"] != state["view_token"] and len(state["view_token"]) >= 22


def test_exif_orientation_is_read_and_the_preview_is_upright():
    # Stored 480x360, EXIF 6: the upright picture is 360 wide and 480 high.
    response = post(Client(), two_tone_photo(fmt="JPEG", exif_orientation=6), "rot.jpg")
    photo = response.json()["photo"]
    assert (photo["stored_width"], photo["stored_height"], photo["orientation"]) == (480, 360, 6)
    assert (photo["width"], photo["height"]) == (360, 480)
    preview = Client().get(photo["preview_url"])
    img = Image.open(io.BytesIO(b"".join(preview.streaming_content)))
    assert img.size == (360, 480)
    # Orientation 6 turns the picture clockwise: the stored top-left corner (blue background)
    # is at the upright top-right, and the yellow object is still in the middle.
    arr = np.asarray(img.convert("RGB")).astype(int)
    assert arr[240, 180, 0] > 180 and arr[5, 355, 2] > 150


def test_large_photo_is_scaled_to_the_work_size(settings):
    settings.WORK_MAX_SIDE = 256
    response = post(Client(), two_tone_photo(fmt="JPEG"), "big.jpg")
    photo = response.json()["photo"]
    assert (photo["width"], photo["height"]) == (480, 360)
    assert (photo["preview_width"], photo["preview_height"]) == (256, 192)


def test_same_photo_twice_shares_one_photo():
    first = post(Client(), two_tone_photo(seed=5), "x.png").json()
    second = post(Client(), two_tone_photo(seed=5), "y.png").json()
    assert Photo.objects.count() == 1 and MaskSession.objects.count() == 2
    assert first["edit_token"] != second["edit_token"]
    # Each uploader keeps their own file name (the XMP sidecar must match it).
    assert (first["photo"]["name"], second["photo"]["name"]) == ("x.png", "y.png")


@pytest.mark.parametrize("content,status,code", [
    (b"", 400, "invalid_image"),
    (b"this is not an image, just text" * 10, 415, "unsupported_type"),
    (b"%PDF-1.4\n" + b"0" * 500, 415, "unsupported_type"),
    (png_header_only(40000, 40000), 413, "too_large"),
], ids=["zero-bytes", "text", "pdf", "decompression-bomb"])
def test_bad_upload_is_refused_and_nothing_is_stored(settings, content, status, code):
    response = post(Client(), content)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert nothing_stored(settings)


def test_truncated_jpeg_is_refused_and_nothing_is_stored(settings):
    whole = two_tone_photo(fmt="JPEG")
    response = post(Client(), whole[: len(whole) // 2])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image"
    assert "truncated" in response.json()["error"]["message"].lower() or \
        "damaged" in response.json()["error"]["message"].lower()
    assert nothing_stored(settings)


def test_too_many_bytes_is_refused(settings):
    settings.MAX_UPLOAD_BYTES = 2048
    response = post(Client(), two_tone_photo(fmt="PNG"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert nothing_stored(settings)


def test_too_many_pixels_is_refused(settings):
    settings.MAX_IMAGE_PIXELS = 100_000  # the 480x360 photo has 172 800
    response = post(Client(), two_tone_photo(fmt="PNG"))
    assert response.status_code == 413
    assert "MP" in response.json()["error"]["message"]
    assert nothing_stored(settings)


def test_missing_photo_field_and_unknown_model_are_refused(settings):
    response = Client().post("/api/v1/sessions", {})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image"
    response = post(Client(), two_tone_photo(), "a.png", model="no-such-model")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_field"
    assert nothing_stored(settings)


def test_fifty_megapixel_jpeg_is_accepted(settings):
    # 8660 x 5774 = 50.0 MP; a plain gradient compresses to little.
    width, height = 8660, 5774
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.broadcast_to(ramp[None, :, None], (height, width, 3))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=70)
    response = post(Client(), buf.getvalue(), "fifty.jpg")
    assert response.status_code == 201, response.content
    photo = response.json()["photo"]
    assert (photo["width"], photo["height"]) == (width, height)
    assert max(photo["preview_width"], photo["preview_height"]) == settings.WORK_MAX_SIDE


def test_the_working_picture_is_made_from_the_original_not_kept_on_disk():
    """A 2048 px PNG of 13 KB cost 9 MB on disk (the raw working picture, 700 times the
    upload). Now only the original and the preview are kept; the working picture is made from
    the original, the same pixels as at upload, when the worker encodes."""
    from maskweb.photos.ingest import read_work_image

    pixels = np.zeros((1536, 2048, 3), np.uint8)
    pixels[:] = (40, 90, 200)
    pixels[400:1100, 600:1500] = (240, 210, 40)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    content = buf.getvalue()
    assert len(content) < 20_000
    assert post(Client(), content, "flat.png").status_code == 201
    photo = Photo.objects.get()
    folder = local_folder(photo)  # the default storage: the layout of earlier versions
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["original.png", "preview.jpg"], files
    assert photo.disk_bytes == sum(p.stat().st_size for p in folder.iterdir())
    assert photo.disk_bytes < 10 * len(content), (photo.disk_bytes, len(content))
    work = read_work_image(photo)
    assert work.dtype == np.uint8 and work.shape == (1536, 2048, 3)
    assert (work == pixels).all(), "lossless: the encoder sees the upload's pixels"


def test_the_working_picture_is_upright_and_scaled_as_at_upload():
    from maskweb.photos.ingest import read_work_image

    content = two_tone_photo(width=3000, height=1000, fmt="JPEG", exif_orientation=6)
    post(Client(), content, "big.jpg")
    photo = Photo.objects.get()
    work = read_work_image(photo)
    assert work.shape == (photo.work_height, photo.work_width, 3)
    assert (photo.work_width, photo.work_height) == (683, 2048), "upright, long side 2048"


def test_photos_stored_with_a_working_picture_file_still_read_it():
    """Photos from earlier versions kept work.npy (raw) or, before that, work.png: each is read
    as it is, and the photo still encodes and is found again by its content."""
    from maskweb.masking.jobs import encoding
    from maskweb.photos.ingest import read_work_image

    post(Client(), two_tone_photo(fmt="PNG"), "a.png")
    photo = Photo.objects.get()
    work = read_work_image(photo)
    marked = work.copy()
    marked[0, 0] = (1, 2, 3)  # tells the kept file from the original
    folder = local_folder(photo)
    np.save(folder / "work.npy", marked)
    assert (read_work_image(photo) == marked).all()
    (folder / "work.npy").unlink()
    Image.fromarray(marked).save(folder / "work.png")
    assert (read_work_image(photo) == marked).all()
    assert encoding.encode_photo(photo.pk, "grabcut") == encoding.DONE
    again = post(Client(), two_tone_photo(fmt="PNG"), "b.png")
    assert again.status_code == 201 and Photo.objects.count() == 1, "still the same photo"


def local_folder(photo: Photo) -> Path:
    """Where the default storage keeps a photo's files: MEDIA_ROOT/ab/abcd..., as before
    the storage API, so photos stored by earlier versions are found."""
    from django.conf import settings

    return Path(settings.MEDIA_ROOT) / photo.sha256[:2] / photo.sha256
