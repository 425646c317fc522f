"""The click simulation shared by fine-tuning and evaluation (numpy + OpenCV only).

The evaluation clicker follows the standard protocol (RITM's isegm/inference/clicker.py, see
shared/datasets/README.md): the next click goes to the point deepest inside the larger error
region (false negative -> positive click, false positive -> negative click), by a distance
transform of the zero-padded error mask, never on an already clicked pixel. The training
clicker draws from the deep part of the error regions at random, so the decoder sees the
protocol's clicks and their neighbours.
"""

from __future__ import annotations

import cv2
import numpy as np


def padded_dt(region: np.ndarray) -> np.ndarray:
    """Distance to the nearest pixel outside ``region``; the image border counts as outside."""
    pad = np.pad(region.astype(np.uint8), 1)
    return cv2.distanceTransform(pad, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def next_click(gt: np.ndarray, pred: np.ndarray, clicked: np.ndarray | None = None,
               valid: np.ndarray | None = None) -> tuple[int, int, bool] | None:
    """The protocol's next click: (row, col, positive), or None when there is no error left."""
    fn = gt & ~pred
    fp = ~gt & pred
    if valid is not None:
        fn &= valid
        fp &= valid
    if clicked is not None:
        fn &= ~clicked
        fp &= ~clicked
    dfn, dfp = padded_dt(fn), padded_dt(fp)
    mfn, mfp = float(dfn.max()), float(dfp.max())
    if max(mfn, mfp) <= 0:
        return None
    positive = mfn > mfp
    dt = dfn if positive else dfp
    r, c = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return int(r), int(c), bool(positive)


def random_click(rng: np.random.Generator, gt: np.ndarray, pred: np.ndarray | None,
                 valid: np.ndarray, deep: float) -> tuple[int, int, bool] | None:
    """A training click: in the larger error region (or inside the object when ``pred`` is
    None), drawn uniformly from the pixels at least ``deep`` x the region's maximum depth."""
    if pred is None:
        region, positive = gt & valid, True
        dt = padded_dt(region)
    else:
        fn, fp = gt & ~pred & valid, ~gt & pred & valid
        dfn, dfp = padded_dt(fn), padded_dt(fp)
        if max(dfn.max(), dfp.max()) <= 0:
            return None
        # Mostly the protocol's choice of region; sometimes the other one if it exists.
        positive = bool(dfn.max() > dfp.max())
        if rng.random() < 0.15 and (dfp.max() if positive else dfn.max()) > 0:
            positive = not positive
        dt = dfn if positive else dfp
    top = float(dt.max())
    if top <= 0:
        return None
    rs, cs = np.nonzero(dt >= max(deep * top, min(top, 1.0)))
    i = int(rng.integers(len(rs)))
    return int(rs[i]), int(cs[i]), positive
