"""PNG download: 8-bit, full resolution, upright; the soft variant only softens the edge."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maskweb.export.png import mask_png
from maskweb.segment.orientation import to_upright


def mask() -> np.ndarray:
    m = np.zeros((40, 60), bool)
    m[10:30, 5:25] = True
    return m


def load(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_hard_png_is_8bit_0_or_255_at_full_size() -> None:
    img = load(mask_png(mask()))
    assert img.format == "PNG" and img.mode == "L" and img.size == (60, 40)
    arr = np.asarray(img)
    assert set(np.unique(arr)) == {0, 255}
    assert np.array_equal(arr == 255, mask())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_is_upright(orientation: int) -> None:
    arr = np.asarray(load(mask_png(mask(), orientation)))
    assert np.array_equal(arr == 255, to_upright(mask(), orientation))


def test_soft_png_softens_only_the_edge() -> None:
    arr = np.asarray(load(mask_png(mask(), soft=True))).astype(int)
    assert arr[20, 15] == 255 and arr[2, 50] == 0  # deep inside / far outside untouched
    edge = arr[20, 3:8]
    assert 0 < edge[1] < 255 and 0 < edge[2] < 255  # grey ramp across x = 5
    # The 50 % level is the hard edge, except the four corner pixels the blur rounds off.
    assert np.count_nonzero((arr >= 128) != mask()) <= 4
    wider = np.asarray(load(mask_png(mask(), soft=True, feather=4.0))).astype(int)
    assert (np.count_nonzero((wider > 0) & (wider < 255))
            > np.count_nonzero((arr > 0) & (arr < 255)))


def test_empty_and_full_masks() -> None:
    assert not np.asarray(load(mask_png(np.zeros((4, 5), bool)))).any()
    assert (np.asarray(load(mask_png(np.ones((4, 5), bool)))) == 255).all()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D"):
        mask_png(np.zeros((4, 5, 3), bool))
    with pytest.raises(ValueError, match="feather"):
        mask_png(mask(), soft=True, feather=-1)


def test_fifty_megapixel_mask_encodes() -> None:
    big = np.zeros((5773, 8660), bool)
    big[1000:4000, 2000:6000] = True
    img = load(mask_png(big, orientation=6))
    assert img.size == (5773, 8660)


def test_a_16_bit_png_holds_0_or_65535_and_soft_steps_between() -> None:
    img = load(mask_png(mask(), depth=16))
    arr = np.asarray(img)
    assert img.mode.startswith("I;16") and arr.dtype == np.uint16
    assert set(np.unique(arr)) == {0, 65535}
    assert np.array_equal(arr == 65535, mask())
    soft = np.asarray(load(mask_png(mask(), depth=16, soft=True)))
    between = soft[(soft > 0) & (soft < 65535)]
    assert between.size and len(np.unique(between)) > 10


def test_a_bit_depth_other_than_8_or_16_is_refused() -> None:
    with pytest.raises(ValueError):
        mask_png(mask(), depth=12)
