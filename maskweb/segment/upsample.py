"""Edges at the photo's full resolution: a work-size mask upsampled onto the photo's own pixels.

The engine works on the working picture (long side at most 2048 px); a 24 MP photo is about
three times larger on each side. Scaling the mask up bilinearly gives an edge three times
coarser than the photo. Instead the work-size mask becomes a soft mask (a ramp about a work
pixel wide across its edge), is scaled up to the photo, and a guided filter with the photo
at its own resolution as the guide moves that ramp onto the photo's edges (He et al.; the
same filter as the engine's own edge, :func:`maskweb.segment.postprocess.guided_filter`).
Only the band where the soft mask is not flat can change, so the filter runs tile by tile
on the tiles that hold some of that band: memory stays bounded on a 60 MP photo and the
time follows the length of the edge, not the photo's size.

darktable upsamples the model's logits with a joint-bilateral filter (opencv-contrib's
``ximgproc``); bench.upsample measures both, and a plain bilinear upsampling, against the
ground truth at full resolution, and times them on a 24 MP photo (docs/engine.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskweb.segment.postprocess import guided_filter, not_flat, resample

METHODS = ("bilinear", "guided")
# The filter's window, times the upsampling factor: the band a work pixel's edge may move
# in. eps: how strong an edge of the photo must be to steer the mask (photo in 0..1).
# Chosen on COCO_MVal (bench.upsample --dataset coco --limit 100: eps 1e-4, 1e-3, 1e-2 and
# radius 1 or 2 x the factor; bench/results/upsample-coco-tuning.md).
RADIUS_PER_SCALE = 1.0
EPS = 1e-2
TILE = 512


def upsampled_soft(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A work-size mask (bool, or soft float in 0..1) scaled up bilinearly to (height,
    width): its edge becomes a ramp one work pixel wide, the band where the photo decides.
    (A blur before it widened the ramp but lost small objects: COCO_MVal, bench.upsample.)"""
    soft = np.asarray(mask, np.float32)
    h, w = soft.shape
    return resample(soft, w / width, h / height, (height, width))


def upsample_mask(mask: np.ndarray, photo: np.ndarray, method: str = "guided",
                  radius: int | None = None, eps: float = EPS, tile: int = TILE) -> np.ndarray:
    """The work-size ``mask`` (bool or soft) at ``photo``'s resolution, its edge on the
    photo's edges. ``photo``: uint8 RGB (H, W, 3) in the same orientation as the mask.
    Returns bool (H, W). ``method="bilinear"``: the soft mask scaled up, no guide."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    height, width = photo.shape[:2]
    if photo.ndim != 3 or photo.shape[2] < 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be uint8 RGB (H, W, 3), not {photo.dtype} {photo.shape}")
    soft = upsampled_soft(mask, height, width)
    if method == "bilinear":
        return soft > 0.5
    scale = max(height / mask.shape[0], width / mask.shape[1])
    r = radius if radius is not None else max(2, math.ceil(RADIUS_PER_SCALE * scale))
    fg = guided_tiles(soft, photo, r, eps, tile) > 0.5
    work = mask if mask.dtype == bool else mask > 0.5
    return keep_whole_regions(fg, soft, work)


def keep_whole_regions(fg: np.ndarray, soft: np.ndarray, work: np.ndarray,
                       kept: float = 0.5) -> np.ndarray:
    """The filter moves edges; it must not make a region of the work mask vanish (a small
    object, a thin part standing alone) nor fill a hole. A region or hole of which less than
    ``kept`` survives comes back as the plain upsampling has it."""
    height, width = fg.shape
    h, w = work.shape
    rows = np.minimum(((np.arange(h) + 0.5) * height / h).astype(np.intp), height - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * width / w).astype(np.intp), width - 1)
    at_work = fg[rows[:, None], cols[None, :]]  # the result, read at the work pixels' centres
    out: np.ndarray = fg
    for value in (True, False):
        layer = (work == value).view(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(layer, connectivity=8)
        if n <= 1:
            continue
        same = (at_work == value) & (layer > 0)
        survived = np.bincount(labels[same], minlength=n)
        lost = np.flatnonzero(survived < kept * stats[:, cv2.CC_STAT_AREA])
        for k in lost[lost > 0]:
            x, y, bw, bh = stats[k, :4]
            y0, y1 = int(y * height / h), min(height, int(np.ceil((y + bh) * height / h)))
            x0, x1 = int(x * width / w), min(width, int(np.ceil((x + bw) * width / w)))
            sub_labels = labels[np.minimum((np.arange(y0, y1) * h // height), h - 1)[:, None],
                                np.minimum((np.arange(x0, x1) * w // width), w - 1)[None, :]]
            plain = (soft[y0:y1, x0:x1] > 0.5) == value
            if out is fg:
                out = fg.copy()
            out[y0:y1, x0:x1][plain & (sub_labels == k)] = value
    return out


def guided_tiles(soft: np.ndarray, photo: np.ndarray, radius: int, eps: float,
                 tile: int = TILE) -> np.ndarray:
    """The guided filter of ``soft`` by ``photo``, computed only on the tiles where ``soft``
    has an edge (elsewhere it is flat and the filter would leave it as it is)."""
    height, width = soft.shape
    out = soft.copy()
    halo = 2 * radius + 1  # the filter's support: two box filters of this radius
    edge = (soft > 0.01) & (soft < 0.99)
    for y0 in range(0, height, tile):
        y1 = min(height, y0 + tile)
        band_rows = edge[y0:y1]
        if not band_rows.any():
            continue
        cols: np.ndarray = np.asarray(band_rows.any(axis=0))
        for x0 in range(0, width, tile):
            x1 = min(width, x0 + tile)
            if not cols[x0:x1].any():
                continue
            ya, yb = max(0, y0 - halo), min(height, y1 + halo)
            xa, xb = max(0, x0 - halo), min(width, x1 + halo)
            sub = soft[ya:yb, xa:xb]
            filtered = guided_filter(photo[ya:yb, xa:xb, :3], sub, radius, eps,
                                     where=not_flat(sub, radius))
            out[y0:y1, x0:x1] = np.clip(filtered[y0 - ya:y1 - ya, x0 - xa:x1 - xa], 0.0, 1.0)
    return out
