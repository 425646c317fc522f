"""Full-resolution edge refinement of a low-res model mask by GrabCut (numpy + OpenCV).

GrabCut alone collapses when the object's colours overlap the background; the low-res model
alone has blocky edges. Here the model decides WHERE the object is and GrabCut only decides
where, inside a narrow band around the model's boundary, the edge really runs: outside the
band the model's answer is fixed (sure foreground / background), clicks are fixed too.
"""

from __future__ import annotations

import cv2
import numpy as np

# The decoder's edges are uncertain by about one cell of its 64x64 embedding; the band is
# about that wide on each side of the model's boundary.
BAND_CELLS = 1.0
WORK_MAX_SIDE = 512
CLICK_RADIUS = 3


def grabcut_band(image: np.ndarray, prob: np.ndarray, clicks: list[tuple[float, float, bool]],
                 band_cells: float = BAND_CELLS, work_max_side: int = WORK_MAX_SIDE,
                 iterations: int = 2) -> np.ndarray:
    """Refined bool mask (H, W).

    ``image``: uint8 RGB (H, W, 3); ``prob``: the model's foreground probability at (H, W);
    ``clicks``: (x, y, positive) in continuous pixels of ``image``.
    """
    h, w = prob.shape
    s = min(1.0, work_max_side / max(h, w))
    ww, wh = max(1, round(w * s)), max(1, round(h * s))
    img = cv2.resize(image[..., :3], (ww, wh), interpolation=cv2.INTER_AREA) if s < 1 else image
    p = cv2.resize(prob, (ww, wh), interpolation=cv2.INTER_AREA) if s < 1 else prob
    fg = (p > 0.5).astype(np.uint8)
    if fg.sum() == 0 or fg.sum() == fg.size:
        return prob > 0.5
    band = max(2, int(round(band_cells * max(ww, wh) / 64)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    sure_fg = cv2.erode(fg, k)
    sure_bg = 1 - cv2.dilate(fg, k)
    gc = np.where(fg > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[sure_fg > 0] = cv2.GC_FGD
    gc[sure_bg > 0] = cv2.GC_BGD
    for x, y, positive in clicks:
        cv2.circle(gc, (int(x * s), int(y * s)), CLICK_RADIUS,
                   int(cv2.GC_FGD if positive else cv2.GC_BGD), -1)
    # GrabCut only on the object's neighbourhood: faster for small objects, and the colour
    # models are learnt from the local background rather than the whole photo.
    ys, xs = np.nonzero(fg)
    m = 4 * band
    y0, y1 = max(0, ys.min() - m), min(wh, ys.max() + 1 + m)
    x0, x1 = max(0, xs.min() - m), min(ww, xs.max() + 1 + m)
    sub = np.ascontiguousarray(gc[y0:y1, x0:x1])
    if not ((sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)).any() or not (
            (sub == cv2.GC_BGD) | (sub == cv2.GC_PR_BGD)).any():
        return prob > 0.5
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    crop = cv2.cvtColor(np.ascontiguousarray(img[y0:y1, x0:x1]), cv2.COLOR_RGB2BGR)
    try:
        cv2.grabCut(crop, sub, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return prob > 0.5
    gc[y0:y1, x0:x1] = sub
    out = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
    if s < 1:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out > 0.5
