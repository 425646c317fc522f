"""The stored grid <-> upright mapping must agree with PIL, which is what browsers do too."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from maskweb.segment.orientation import (
    stored_to_upright_xy,
    to_stored,
    to_upright,
    upright_size,
    upright_to_stored_xy,
)

STORED = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)


def _pil_upright(array: np.ndarray, orientation: int) -> np.ndarray:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", exif=exif.tobytes())
    buf.seek(0)
    return np.asarray(ImageOps.exif_transpose(Image.open(buf)))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_arrays_turn_like_pil_and_back(orientation: int) -> None:
    upright = to_upright(STORED, orientation)
    assert np.array_equal(upright, _pil_upright(STORED, orientation))
    assert upright.shape[1::-1] == upright_size(7, 5, orientation)
    assert np.array_equal(to_stored(upright, orientation), STORED)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_points_follow_their_pixel(orientation: int) -> None:
    upright = to_upright(STORED, orientation)
    for row in range(5):
        for col in range(7):
            u, v = stored_to_upright_xy(col + 0.5, row + 0.5, 7, 5, orientation)
            assert np.array_equal(upright[int(v), int(u)], STORED[row, col])
            x, y = upright_to_stored_xy(u, v, 7, 5, orientation)
            assert (x, y) == pytest.approx((col + 0.5, row + 0.5))


def test_unknown_orientation_is_identity() -> None:
    assert np.array_equal(to_upright(STORED, 0), STORED)
    assert stored_to_upright_xy(1.0, 2.0, 7, 5, None) == (1.0, 2.0)
