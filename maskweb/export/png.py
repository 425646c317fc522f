"""PNG download of one mask: 8-bit, full resolution, upright."""

from __future__ import annotations

import cv2
import numpy as np

from maskweb.segment.orientation import to_upright
from maskweb.segment.vectorize import binary_mask

__all__ = ["mask_png"]

#: Gaussian sigma (pixels) of the soft variant: enough to anti-alias the staircase edge
#: without visibly moving it (the 50 % level stays on the hard edge).
SOFT_SIGMA = 1.0


def mask_png(mask: np.ndarray, orientation: int = 1, soft: bool = False,
             feather: float = SOFT_SIGMA, depth: int = 8) -> bytes:
    """Encode a stored-grid mask as an upright grayscale PNG (0 outside, the top value inside).

    ``soft`` blurs the edge (Gaussian, sigma ``feather`` pixels) so it comes out
    anti-aliased or, with a larger ``feather``, feathered; the hard variant holds only 0
    and the top value. ``mask`` may be bool, 0/1, 0..255 or probabilities (see
    ``binary_mask``). ``depth``: 8 (0..255) or 16 bits (0..65535, what darktable's external
    raster masks also read). ``orientation=1`` keeps the stored grid: the raw's sensor
    orientation, which darktable's raster masks want.
    """
    if feather < 0:
        raise ValueError(f"feather must be >= 0, got {feather}")
    if depth not in (8, 16):
        raise ValueError(f"depth must be 8 or 16 bits, got {depth}")
    top, dtype = (255.0, np.uint8) if depth == 8 else (65535.0, np.uint16)
    hard = binary_mask(mask)
    if soft and feather > 0:
        img = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), feather,
                               borderType=cv2.BORDER_REPLICATE)
        out = np.clip(img * top + 0.5, 0, top).astype(dtype)
    else:
        out = np.where(hard.astype(bool), top, 0.0).astype(dtype)
    out = np.ascontiguousarray(to_upright(out, orientation))
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV only fails on impossible sizes
        raise ValueError(f"could not encode a {out.shape} PNG")
    return buf.tobytes()
