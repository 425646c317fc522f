"""The XMP download of a photo with an EXIF orientation: the app passes the orientation to the
writer (coordinates stay in the stored grid; the half-pixel fill correction darktable needs is
taken in the displayed frame), and darktable-cli brightens where the app's own mask is."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from maskweb.export import MaskObject
from maskweb.export.xmp import darktable_sidecar
from maskweb.masking import editing
from maskweb.masking.decoding import render
from maskweb.masking.editing import downloads
from maskweb.masking.models import MaskSession
from tests.export import test_darktable as dt
from tests.web.client import two_tone_photo
from tests.web.conftest import make_session

pytestmark = pytest.mark.django_db(transaction=True)

STORED_W, STORED_H = 480, 360  # two_tone_photo: the object is stored x 160..320, y 120..240


def masked_rotated_session(orientation: int, name: str = "r.jpg") -> tuple[MaskSession, str]:
    """A JPEG session with that EXIF orientation and one applied object (the yellow box)."""
    session = make_session(two_tone_photo(fmt="JPEG", exif_orientation=orientation), name)
    assert session.photo.orientation == orientation
    base = f"/api/v1/sessions/{session.edit_token}"
    client = Client()
    # The middle of the upright picture is inside the object whatever the orientation.
    up_w, up_h = session.photo.upright_width, session.photo.upright_height
    clicked = client.post(f"{base}/prompts", {"kind": "point", "x": up_w // 2, "y": up_h // 2},
                          content_type="application/json")
    assert clicked.status_code == 200 and not clicked.json()["empty"]
    assert client.post(f"{base}/apply", {"name": "Box"},
                       content_type="application/json").status_code == 201
    return editing.reload(session), base


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_sidecar_of_a_rotated_photo_is_written_for_its_orientation(orientation):
    session, base = masked_rotated_session(orientation)
    photo = session.photo
    (obj, work_mask), = editing.visible_objects(session)
    stored = render.stored_full_mask(photo, work_mask)
    assert stored.shape == (STORED_H, STORED_W)
    objects = [MaskObject(obj.name, stored)]

    client = Client()
    for url in (f"{base}/sidecar.xmp", f"{base}/objects/{obj.number}/sidecar.xmp"):
        got = client.get(url)
        assert got.status_code == 200 and 'filename="r.jpg.xmp"' in got["Content-Disposition"]
        want = darktable_sidecar(objects, STORED_W, STORED_H, photo_name="r.jpg",
                                 orientation=orientation)
        assert got.content == want, url
        # The orientation makes a difference here, so the comparison above means something.
        assert got.content != darktable_sidecar(objects, STORED_W, STORED_H,
                                                photo_name="r.jpg", orientation=1)


def grey_jpeg(path: Path, orientation: int) -> Path:
    """A flat grey JPEG of the session photo's stored size and EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.full((STORED_H, STORED_W, 3), dt.GREY, np.uint8)).save(
        path, quality=95, exif=exif.tobytes())
    return path


@pytest.mark.darktable
@pytest.mark.skipif(dt.DARKTABLE is None, reason="darktable-cli not installed")
@pytest.mark.parametrize("orientation", [6, 8])
def test_darktable_brightens_the_apps_mask_of_a_rotated_photo(tmp_path, monkeypatch,
                                                              orientation):
    # The download writes 0 EV; everything else the writer gets comes from the app. +2 EV,
    # as in the export tests, makes the masked region stand out.
    monkeypatch.setattr(downloads, "darktable_sidecar",
                        functools.partial(darktable_sidecar, exposure_ev=2.0))
    session, base = masked_rotated_session(orientation)
    client = Client()
    upright = np.asarray(Image.open(io.BytesIO(client.get(f"{base}/mask.png").content))) >= 128
    assert upright.shape == (STORED_W, STORED_H)
    sidecar = client.get(f"{base}/sidecar.xmp").content
    out = dt.render(tmp_path, grey_jpeg(tmp_path / "grey.jpg", orientation), sidecar)
    assert out.shape == upright.shape, "darktable applies the EXIF orientation"
    lit = dt.brightened(out)
    assert dt.iou(lit, upright) >= 0.95
    # Where it lands, to the pixel: with the orientation-1 correction the region sits 1.5 px
    # off along one axis (IoU still ~0.97); with the photo's own, 0.5 px (darktable 4.2).
    lit_yx = np.argwhere(lit).mean(axis=0)
    mask_yx = np.argwhere(upright).mean(axis=0)
    assert np.all(np.abs(lit_yx - mask_yx) <= 1.0), (lit_yx, mask_yx)


@pytest.mark.parametrize("orientation", [6, 8])
def test_the_raster_mask_png_is_in_the_sensors_orientation_at_16_bits(orientation):
    """darktable's external raster masks read a PNG in the raw's own (stored) orientation:
    ?grid=stored&depth=16 is the upright download turned back, with 16-bit levels."""
    from maskweb.segment.orientation import to_stored

    session, base = masked_rotated_session(orientation)
    client = Client()
    upright = client.get(f"{base}/objects/1/mask.png")
    raster = client.get(f"{base}/objects/1/mask.png?grid=stored&depth=16")
    assert raster.status_code == 200
    assert 'filename="r-Box-sensor-16bit.png"' in raster["Content-Disposition"]
    up = np.asarray(Image.open(io.BytesIO(upright.content))) == 255
    img = Image.open(io.BytesIO(raster.content))
    arr = np.asarray(img)
    assert arr.dtype == np.uint16 and arr.shape == (STORED_H, STORED_W)
    assert set(np.unique(arr)) == {0, 65535}
    assert np.array_equal(arr == 65535, to_stored(up, orientation))
    for bad in ("grid=sideways", "depth=12"):
        refused = client.get(f"{base}/objects/1/mask.png?{bad}")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_field"
