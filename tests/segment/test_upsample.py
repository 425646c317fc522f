"""A work-size mask upsampled onto the photo's own edges (maskweb.segment.upsample)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskweb.segment.upsample import upsample_mask

H, W = 600, 900


def scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red ellipse and a thin red bar on green, with noise; (photo, true mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    truth = ((xx - 450) / 260) ** 2 + ((yy - 300) / 170) ** 2 < 1
    truth |= (np.abs(xx - 120) < 3) & (yy > 80) & (yy < 520)
    photo = np.where(truth[..., None], [200, 50, 40], [50, 130, 60]).astype(np.float32)
    photo += rng.normal(0, 12, photo.shape)
    return np.clip(photo, 0, 255).astype(np.uint8), truth


def shrunk(mask: np.ndarray, factor: int) -> np.ndarray:
    h, w = mask.shape
    small = cv2.resize(mask.astype(np.float32), (w // factor, h // factor),
                       interpolation=cv2.INTER_AREA)
    return small > 0.5


def edge_error(mask: np.ndarray, truth: np.ndarray) -> int:
    return int(np.count_nonzero(mask != truth))


def test_the_guided_edge_lies_on_the_photo_edge_where_bilinear_is_coarse():
    photo, truth = scene()
    small = shrunk(truth, 3)
    guided = upsample_mask(small, photo)
    plain = upsample_mask(small, photo, "bilinear")
    assert guided.shape == truth.shape == plain.shape
    # Bilinear gets the edge right to within a work pixel; the guide, to within a few photo
    # pixels along the whole outline.
    assert edge_error(guided, truth) < 0.3 * edge_error(plain, truth)


def test_a_region_smaller_than_the_filter_is_not_lost():
    photo, truth = scene()
    blob = np.zeros((H, W), bool)
    blob[40:46, 800:806] = True  # 2 x 2 work pixels, on a background the guide calls green
    small = shrunk(truth | blob, 3)
    out = upsample_mask(small, photo)
    assert out[40:46, 800:806].mean() > 0.5


def test_a_mask_already_at_full_size_is_only_snapped_and_a_flat_one_is_unchanged():
    photo, truth = scene()
    full = np.zeros((H, W), bool)
    assert not upsample_mask(shrunk(full, 3), photo).any()
    assert upsample_mask(shrunk(~full, 3), photo).all()


def test_bad_input_is_refused():
    photo, truth = scene()
    with pytest.raises(ValueError, match="method"):
        upsample_mask(shrunk(truth, 3), photo, "magic")
    with pytest.raises(ValueError, match="uint8 RGB"):
        upsample_mask(shrunk(truth, 3), photo[..., 0])
