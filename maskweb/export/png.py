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
             feather: float = SOFT_SIGMA) -> bytes:
    """Encode a stored-grid mask as an upright 8-bit grayscale PNG (0 outside, 255 inside).

    ``soft`` blurs the edge (Gaussian, sigma ``feather`` pixels) so it comes out
    anti-aliased or, with a larger ``feather``, feathered; the hard variant holds only 0
    and 255. ``mask`` may be bool, 0/1, 0..255 or probabilities (see ``binary_mask``).
    """
    if feather < 0:
        raise ValueError(f"feather must be >= 0, got {feather}")
    hard = binary_mask(mask)
    if soft and feather > 0:
        img = cv2.GaussianBlur(hard.astype(np.float32), (0, 0), feather,
                               borderType=cv2.BORDER_REPLICATE)
        out = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    else:
        out = hard * np.uint8(255)
    out = np.ascontiguousarray(to_upright(out, orientation))
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - OpenCV only fails on impossible sizes
        raise ValueError(f"could not encode a {out.shape} PNG")
    return buf.tobytes()
