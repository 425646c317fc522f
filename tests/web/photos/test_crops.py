"""The true 100 % view's crops: regions of the full-resolution photo, upright."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from maskweb.photos import crops
from tests.web.client import two_tone_photo
from tests.web.conftest import make_session

pytestmark = pytest.mark.django_db(transaction=True)


def crop(token: str, **region: int) -> tuple[int, np.ndarray | dict]:
    query = "&".join(f"{k}={v}" for k, v in region.items())
    response = Client().get(f"/api/v1/sessions/{token}/photo/crop?{query}")
    if response.status_code != 200:
        return response.status_code, response.json()
    assert response["Content-Type"] == "image/jpeg"
    return 200, np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def checker_photo() -> bytes:
    """1200 x 800, its middle a one-pixel checkerboard (detail only the original has)."""
    pixels = np.full((800, 1200, 3), 90, np.uint8)
    yy, xx = np.mgrid[200:600, 300:900]
    pixels[200:600, 300:900] = np.where(((xx + yy) % 2 == 0)[..., None], 230, 20)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def test_a_crop_has_the_originals_pixels_not_the_working_pictures(settings):
    settings.WORK_MAX_SIDE = 300  # the page shows a quarter of the photo's width
    data = checker_photo()
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    session = make_session(data, "big.png")
    status, got = crop(session.view_token, x=500, y=300, w=200, h=120)  # a view link reads
    assert status == 200 and got.shape == (120, 200, 3)
    region = original[300:420, 500:700]
    # What the page had before: the working picture enlarged four times (all grey there).
    preview = Client().get(f"/api/v1/sessions/{session.view_token}/photo")
    enlarged = np.asarray(Image.open(io.BytesIO(b"".join(preview.streaming_content)))
                          .convert("RGB").resize((1200, 800), Image.BILINEAR)).astype(int)
    crop_error = np.abs(got.astype(int) - region).mean()  # JPEG's loss only
    enlarged_error = np.abs(enlarged[300:420, 500:700] - region).mean()
    assert crop_error < 15 and enlarged_error > 80, (crop_error, enlarged_error)


def test_a_rotated_photos_crop_is_upright():
    session = make_session(two_tone_photo(fmt="JPEG", exif_orientation=6), "r.jpg")
    # Stored 480x360, upright 360x480: the object (stored x 160..320, y 120..240) is upright
    # at u 120..240, v 160..320.
    status, got = crop(session.edit_token, x=0, y=0, w=360, h=480)
    assert status == 200 and got.shape == (480, 360, 3)
    inside, outside = got[240, 180].astype(int), got[20, 20].astype(int)
    assert np.abs(inside - outside).sum() > 100


@pytest.mark.parametrize("region", [
    {"x": 0, "y": 0, "w": 0, "h": 10},
    {"x": 470, "y": 0, "w": 20, "h": 10},
    {"x": 0, "y": 0, "w": 10},
    {"x": -1, "y": 0, "w": 10, "h": 10},
    {"x": "a", "y": 0, "w": 10, "h": 10},
])
def test_a_bad_region_is_a_400(region):
    session = make_session()
    status, body = crop(session.edit_token, **region)
    assert status == 400 and body["error"]["code"] == "bad_field"


def test_a_crop_larger_than_the_limit_is_refused(settings):
    session = make_session()
    settings_limit = crops.MAX_SIDE
    try:
        crops.MAX_SIDE = 100
        status, body = crop(session.edit_token, x=0, y=0, w=101, h=10)
        assert status == 400 and "at most 100" in body["error"]["message"]
    finally:
        crops.MAX_SIDE = settings_limit


def test_a_masks_region_is_exactly_that_region_of_its_download(settings):
    """The 100 % view draws the edge the download will have: a region of an object's mask,
    asked for with ?x=&y=&w=&h=, is that region of the full-resolution PNG, pixel for pixel,
    also for the current (not applied) object."""
    from tests.web.editing.test_full_resolution_download import ellipse_photo

    settings.WORK_MAX_SIDE = 300
    data, _ = ellipse_photo()
    session = make_session(data, "big.png")
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    clicked = client.post(f"{base}/prompts", {"kind": "point", "x": 610.5, "y": 390.5},
                          content_type="application/json")
    assert clicked.status_code == 200
    number = clicked.json()["object_id"]
    url = f"{base}/objects/{number}/mask.png"

    def png(response) -> np.ndarray:
        assert response.status_code == 200, response.content[:200]
        return np.asarray(Image.open(io.BytesIO(response.content)).convert("L"))

    whole = png(client.get(url))
    region = png(client.get(f"{url}?x=250&y=130&w=300&h=200"))
    assert region.shape == (200, 300)
    assert np.array_equal(region, whole[130:330, 250:550])
    assert 0 < (region == 255).mean() < 1, "the region holds a piece of the edge"
    refused = client.get(f"{url}?x=1100&y=0&w=200&h=10")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_field"
