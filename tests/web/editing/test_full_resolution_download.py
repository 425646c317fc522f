"""A download's edge lies on the photo's own edges at full resolution, not on the work
picture's pixels scaled up (render.stored_full_masks -> maskweb.segment.upsample)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from maskweb.masking import editing
from maskweb.masking.decoding import render
from maskweb.photos import storage
from tests.web.conftest import make_session

pytestmark = pytest.mark.django_db(transaction=True)

W, H = 1200, 800


def ellipse_photo() -> tuple[bytes, np.ndarray]:
    """A red ellipse on green (PNG, no EXIF turn) and its true mask."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    truth = ((xx - 610) / 330) ** 2 + ((yy - 390) / 230) ** 2 < 1
    pixels = np.where(truth[..., None], [205, 45, 40], [50, 140, 70]).astype(np.float64)
    pixels = np.clip(pixels + rng.normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue(), truth


def test_the_png_download_has_the_photos_edge_at_full_resolution(settings):
    settings.WORK_MAX_SIDE = 300  # the work picture is a quarter of the photo's width
    data, truth = ellipse_photo()
    session = make_session(data, "big.png")
    assert (session.photo.work_width, session.photo.work_height) == (300, 200)
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    clicked = client.post(f"{base}/prompts", {"kind": "point", "x": 610.5, "y": 390.5},
                          content_type="application/json")
    assert clicked.status_code == 200 and not clicked.json()["empty"]
    got = client.get(f"{base}/mask.png")
    assert got.status_code == 200
    download = np.asarray(Image.open(io.BytesIO(got.content)).convert("L")) >= 128
    assert download.shape == (H, W)
    # The same work mask scaled up without the photo, as downloads were made before.
    ((_, work_mask),) = editing.visible_objects(editing.reload(session))
    plain = render.resize_mask(work_mask, W, H)
    wrong_guided = int(np.count_nonzero(download != truth))
    wrong_plain = int(np.count_nonzero(plain != truth))
    assert wrong_guided < 0.5 * wrong_plain, (wrong_guided, wrong_plain)


def test_an_unreadable_original_still_downloads_scaled_up(settings):
    settings.WORK_MAX_SIDE = 300
    data, truth = ellipse_photo()
    session = make_session(data, "big.png")
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    client.post(f"{base}/prompts", {"kind": "point", "x": 610.5, "y": 390.5},
                content_type="application/json")
    storage.save_bytes(session.photo.original_name, b"not a picture any more")
    got = client.get(f"{base}/mask.png")
    assert got.status_code == 200
    download = np.asarray(Image.open(io.BytesIO(got.content)).convert("L")) >= 128
    assert download.shape == (H, W)
    assert (download & truth).sum() / (download | truth).sum() > 0.9
