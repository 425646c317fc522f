"""From a model's low-resolution logits to a clean full-resolution mask.

Order matters: the LOGITS are upsampled (a binary mask upsampled shows staircase edges), then
optionally refined along the photo's edges, then thresholded, then cleaned topologically
(regions the user did not ask for, specks, pinholes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskweb.segment.prompts import pixel_of
from maskweb.segment.types import Box, Point

# Specks and pinholes smaller than this fraction of the image are noise, not intent.
DEFAULT_MIN_AREA_FRACTION = 2e-4
MIN_AREA_FLOOR = 16
# The guide image kept in an embedding for edge refinement; larger photos are refined at this
# size and the soft result is upsampled (memory and time stay bounded for 50 MP photos).
GUIDE_MAX_SIDE = 2048


def resample(values: np.ndarray, scale_x: float, scale_y: float,
             out_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling where a continuous output point (x, y) reads input (x*sx, y*sy).

    Works for any frame that shares its origin with the output (SAM's padded frame: padding is
    at the bottom/right so the origin is common). Pixel centres are honoured: output pixel c
    (centre c+0.5) reads input position (c+0.5)*sx - 0.5 in index units.
    """
    h, w = out_hw
    m = np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5],
                  [0.0, scale_y, 0.5 * scale_y - 0.5]], dtype=np.float64)
    return cv2.warpAffine(values.astype(np.float32, copy=False), m, (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def bounds(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1), end exclusive, of the mask's set pixels grown by ``margin`` on every
    side and kept inside the mask's frame; None when no pixel is set."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape[:2]
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))).astype(np.float32)


def logit(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    q = np.clip(p, eps, 1.0 - eps)
    return np.log(q / (1.0 - q)).astype(np.float32)


def guide_image(image: np.ndarray, max_side: int = GUIDE_MAX_SIDE) -> np.ndarray:
    """The photo as kept for edge refinement: uint8 RGB, long side at most ``max_side``."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return np.ascontiguousarray(image[..., :3])
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image[..., :3], size, interpolation=cv2.INTER_AREA)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float,
                  where: np.ndarray | None = None) -> np.ndarray:
    """He et al.'s guided filter with a colour guide, built on cv2.boxFilter.

    (opencv-contrib's ximgproc.guidedFilter is not available.) ``guide``: uint8 or float RGB
    (H, W, 3) or grey (H, W); ``src``: float (H, W), here a probability. The output follows
    ``src`` in flat areas and snaps its transitions to the guide's edges.

    ``where`` (bool (H, W)): the pixels whose local model (a, b) is solved; elsewhere a = 0
    and b is the window's mean of ``src``, which is the filter's own answer where ``src`` is
    flat around the pixel. The per-pixel algebra is most of the cost and a mask's edge is a
    thin line, so a caller that knows where ``src`` is flat saves most of it.
    """
    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, (2 * radius + 1, 2 * radius + 1),
                             normalize=True, borderType=cv2.BORDER_REFLECT)

    p = src.astype(np.float32, copy=False)
    g = guide.astype(np.float32) / (255.0 if guide.dtype == np.uint8 else 1.0)

    def pick(a: np.ndarray) -> np.ndarray:
        """The pixels that are solved, as a flat array."""
        return a[where] if where is not None else a.reshape(-1)

    def spread(values: np.ndarray, rest: np.ndarray | None = None) -> np.ndarray:
        """Solved values back into an (H, W) array that holds ``rest`` (or 0) elsewhere."""
        if where is None:
            return values.reshape(p.shape)
        out = np.zeros(p.shape, np.float32) if rest is None else rest.copy()
        out[where] = values
        return out

    if g.ndim == 2:
        mean_i, mean_p = box(g), box(p)
        m_i, m_p = pick(mean_i), pick(mean_p)
        cov = pick(box(g * p)) - m_i * m_p
        var = pick(box(g * g)) - m_i * m_i
        a_flat = cov / (var + eps)
        a = spread(a_flat)
        b = spread(m_p - a_flat * m_i, mean_p)
        return box(a) * g + box(b)
    # Colour guide: a per-pixel 3x3 system (Sigma + eps I) a = cov(I, p), solved in closed form.
    chans = [g[..., i] for i in range(3)]
    means = [pick(box(c)) for c in chans]
    mean_p = box(p)
    m_p = pick(mean_p)
    cov_ip = [pick(box(c * p)) - m * m_p for c, m in zip(chans, means, strict=True)]
    var = np.empty(m_p.shape + (3, 3), dtype=np.float32)
    for i in range(3):
        for j in range(i, 3):
            v = pick(box(chans[i] * chans[j])) - means[i] * means[j]
            if i == j:
                v = v + eps
            var[..., i, j] = v
            var[..., j, i] = v
    a_flat = _solve3(var, np.stack(cov_ip, axis=-1))
    b = spread(m_p - (a_flat * np.stack(means, axis=-1)).sum(axis=-1), mean_p)
    out = box(b)
    for i in range(3):
        out += box(spread(np.ascontiguousarray(a_flat[..., i]))) * chans[i]
    return out


def _solve3(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Solve the symmetric 3x3 systems m @ x = v per pixel by cofactors (np.linalg is ~5x
    slower on millions of tiny systems)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    e, f, i = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    c00, c01, c02 = e * i - f * f, c * f - b * i, b * f - c * e
    c11, c12, c22 = a * i - c * c, b * c - a * f, a * e - b * b
    det = a * c00 + b * c01 + c * c02
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([(c00 * x + c01 * y + c02 * z) / det,
                     (c01 * x + c11 * y + c12 * z) / det,
                     (c02 * x + c12 * y + c22 * z) / det], axis=-1)


def not_flat(prob: np.ndarray, radius: int, tol: float = 0.01) -> np.ndarray:
    """The pixels whose (2 radius + 1)-square window holds a value above ``tol`` and one
    below 1 - ``tol``. Elsewhere the probability is flat around the pixel, and the guided
    filter's own slope there, cov(I, p) / (var(I) + eps), is at most tol / (4 sqrt(eps))
    (0.08 at eps 1e-3): the answer stays far from the 0.5 that decides the mask (on DAVIS
    photos scaled to 2048 px, soft values moved by 0.0003 at most)."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    above = cv2.dilate((prob > tol).view(np.uint8), kernel) > 0
    below = cv2.dilate((prob < 1.0 - tol).view(np.uint8), kernel) > 0
    return np.asarray(above & below)


def refine_guided(prob: np.ndarray, guide: np.ndarray, radius: int | None = None,
                  eps: float = 1e-3) -> np.ndarray:
    """Snap a soft mask (H, W) to the photo's edges; ``guide`` may be smaller (see GUIDE_MAX_SIDE).

    The radius defaults to about 1/160 of the guide's long side (3 px at 480 px) so the
    correction stays within the band where a low-res decoder's edge is uncertain.
    """
    h, w = prob.shape
    gh, gw = guide.shape[:2]
    r = radius if radius is not None else max(2, round(max(gh, gw) / 160))
    p = prob if (gh, gw) == (h, w) else cv2.resize(prob, (gw, gh), interpolation=cv2.INTER_AREA)
    q = p.astype(np.float32, copy=True)
    # Only the uncertain band can change; filter the box around it (plus the filter's
    # two-pass support) instead of the whole photo.
    around_band = bounds((p > 0.01) & (p < 0.99), 2 * r + 1)
    if around_band is not None:
        y0, y1, x0, x1 = around_band
        sub = p[y0:y1, x0:x1]
        q[y0:y1, x0:x1] = np.clip(
            guided_filter(guide[y0:y1, x0:x1], sub, r, eps, where=not_flat(sub, r)), 0.0, 1.0)
    if (gh, gw) != (h, w):
        return np.asarray(cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    return q


def min_area_for(shape: tuple[int, ...], fraction: float = DEFAULT_MIN_AREA_FRACTION) -> int:
    return max(MIN_AREA_FLOOR, int(round(shape[0] * shape[1] * fraction)))


def inside_box(shape: tuple[int, ...], box: Box) -> np.ndarray:
    """1 on the pixels a box covers (partly covered ones included), 0 elsewhere (uint8)."""
    h, w = shape[:2]
    b = box.ordered()
    x0, y0 = max(0, int(np.floor(b.x0))), max(0, int(np.floor(b.y0)))
    x1, y1 = min(w, int(np.ceil(b.x1))), min(h, int(np.ceil(b.y1)))
    inside = np.zeros((h, w), np.uint8)
    inside[y0:y1, x0:x1] = 1
    return inside


def keep_prompted_regions(mask: np.ndarray, points: Sequence[Point],
                          box: Box | None = None) -> np.ndarray:
    """Keep only the connected regions the user asked for.

    With ``remove_small`` after it, the definition of what clean_mask does (the tests hold
    clean_mask to the two), which computes the same with fewer passes over the pixels.

    With positive points: the regions containing one. With only a box: the regions touching
    the box (and nothing outside it). If no region contains a positive point (the model
    disagreed with every click), the mask is returned unchanged rather than emptied: an empty
    answer to a click is worse than an imperfect one.
    """
    h, w = mask.shape
    m = mask.astype(np.uint8)
    if box is not None:
        m &= inside_box(m.shape, box)
    positives = [p for p in points if p.positive]
    if not positives:
        return m.astype(bool)
    n, labels = cv2.connectedComponents(m, connectivity=8)
    keep = {int(labels[pixel_of(p, h, w)]) for p in positives} - {0}
    if not keep or len(keep) == n - 1:  # no region clicked, or every region clicked
        return m.astype(bool)
    return np.isin(labels, sorted(keep))


def region_areas(layer: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Pixels per label of ``cv2.connectedComponents(layer)``.

    Not connectedComponentsWithStats: at 854x480 its statistics took 1.5-2 ms, a histogram
    of the labels 0.4 ms, and the usual layer (one region, or one outside) needs only a count.
    """
    if n == 2:
        inside = np.count_nonzero(layer)
        return np.array([layer.size - inside, inside])
    if n <= 65535:
        hist = cv2.calcHist([labels.astype(np.uint16)], [0], None, [n], [0, n])
        return hist.ravel().astype(np.int64)
    return np.bincount(labels.ravel(), minlength=n)


def small_regions(layer: np.ndarray, min_area: int, protected: Sequence[tuple[int, int]],
                  inner_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """The labels of a 0/1 layer, and per label whether it is a region of fewer than
    ``min_area`` pixels under none of the ``protected`` (row, col) pixels. Label 0, what the
    layer leaves out, never is. ``inner_only``: nor is a region on the layer's edge (a
    background region there is the outside, not a hole)."""
    n, labels = cv2.connectedComponents(layer, connectivity=8)
    if n <= 1:
        return labels, np.zeros(n, bool)
    small = region_areas(layer, labels, n) < min_area
    small[0] = False
    if inner_only:
        small[np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))] = False
    for rc in protected:
        small[labels[rc]] = False
    return labels, small


def remove_small(mask: np.ndarray, min_area: int, protect: Sequence[Point] = ()) -> np.ndarray:
    """Drop foreground specks and fill background pinholes smaller than ``min_area`` pixels.

    A speck or a hole under a click is the user's intent and is kept as it is.
    """
    h, w = mask.shape
    protected_fg = [pixel_of(p, h, w) for p in protect if p.positive]
    protected_bg = [pixel_of(p, h, w) for p in protect if not p.positive]
    out = mask.astype(bool).copy()
    for value, protected in ((True, protected_fg), (False, protected_bg)):
        layer = (out == value).view(np.uint8)
        labels, small = small_regions(layer, min_area, protected, inner_only=not value)
        if small.any():
            out[small[labels]] = not value
    return out


def clean_mask(mask: np.ndarray, points: Sequence[Point], box: Box | None = None,
               min_area: int | None = None) -> np.ndarray:
    """Prompted regions only, no specks, no pinholes (see object_frame and clean_frame)."""
    area = min_area if min_area is not None else min_area_for(mask.shape)
    h, w = mask.shape
    framed = object_frame(mask, points, box)
    out = np.zeros((h, w), bool)
    if framed is not None:
        (y0, y1, x0, x1), sub, inside = framed
        out[y0:y1, x0:x1] = clean_frame(sub, inside, area)
    return out


def object_frame(mask: np.ndarray, points: Sequence[Point], box: Box | None = None
                 ) -> tuple[tuple[int, int, int, int], np.ndarray, list[Point]] | None:
    """Where the clean-up works: the foreground's bounding box (in the box, if any) one pixel
    wider where the image allows, (y0, y1, x0, x1); the mask there; the clicks in it, in its
    coordinates. None when the mask is empty.

    Every region, speck and hole lies inside that frame, and a background region that
    reaches its one-pixel rim is the outside, as one that reaches the image's border is. On a
    12 MP photo's 2048-px work image the object is often a fifth of the frame.
    """
    h, w = mask.shape
    m = np.asarray(mask, dtype=bool)
    if box is not None:
        m = m & (inside_box(m.shape, box) > 0)
    frame = bounds(m, 1)
    if frame is None:
        return None
    y0, y1, x0, x1 = frame
    # The clicks in the frame, at their pixels' centres there; one outside lies on the
    # outside (no region to keep, no hole to protect) and would be clamped onto the frame.
    inside = []
    for point in points:
        r, c = pixel_of(point, h, w)
        if y0 <= r < y1 and x0 <= c < x1:
            inside.append(Point(c - x0 + 0.5, r - y0 + 0.5, point.positive))
    return frame, m[y0:y1, x0:x1], inside


# A label set this small is picked out by comparing the labels with each (half a millisecond
# per label at 2048 x 1363), a larger one by a lookup (label -> kept) at 5 ms.
FEW_LABELS = 6


def clean_frame(mask: np.ndarray, points: Sequence[Point], min_area: int) -> np.ndarray:
    """keep_prompted_regions, then remove_small, on the object's frame: the same mask from
    two labellings of the pixels instead of three (bench.cleanup times the two).

    The foreground is labelled once for both of its steps: removing whole regions leaves the
    others as they were, so remove_small would label the kept regions the same again. Where
    some regions are clicked and some not, the clicked ones are kept and nothing else: every
    kept region holds a click, which protects it from being dropped as a speck.
    """
    fh, fw = mask.shape
    layer = np.ascontiguousarray(mask).view(np.uint8)
    n, labels = cv2.connectedComponents(layer, connectivity=8)
    foreground = mask
    clicked = sorted({int(labels[pixel_of(p, fh, fw)]) for p in points if p.positive} - {0})
    if len(clicked) < n - 1:  # else there is no region, or every one is clicked: all stay
        if clicked:
            keep = np.zeros(n, bool)
            keep[clicked] = True
        else:  # none clicked: all stay but the specks
            keep = region_areas(layer, labels, n) >= min_area
            keep[0] = False
        if not keep[1:].all():
            foreground = pixels_labelled(labels, keep)
    background = np.ascontiguousarray(~foreground).view(np.uint8)
    # A hole under a background click is the user's intent.
    labels, hole = small_regions(background, min_area,
                                 [pixel_of(p, fh, fw) for p in points if not p.positive],
                                 inner_only=True)
    if not hole.any():
        return np.asarray(foreground, bool)
    stays_background = ~hole
    stays_background[0] = False
    return ~pixels_labelled(labels, stays_background)


def pixels_labelled(labels: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Where ``labels`` holds a chosen label (``chosen``: one bool per label)."""
    picked = np.flatnonzero(chosen)
    if len(picked) <= FEW_LABELS:
        out = np.zeros(labels.shape, bool)
        for k in picked:
            out |= labels == k
        return out
    left = np.flatnonzero(~chosen)
    if len(left) <= FEW_LABELS:
        out = np.ones(labels.shape, bool)
        for k in left:
            out &= labels != k
        return out
    return np.asarray(chosen[labels])


def finish_logits(logits_full: np.ndarray, points: Sequence[Point], box: Box | None,
                  guide: np.ndarray | None = None, refine: str = "none",
                  threshold: float = 0.0) -> np.ndarray:
    """Full-resolution logits -> final bool mask: optional guided refinement, threshold, clean."""
    if refine == "guided" and guide is not None:
        prob = refine_guided(sigmoid(logits_full), guide)
        mask = prob > sigmoid(np.array(threshold, dtype=np.float32))
    else:
        mask = logits_full > threshold
    return clean_mask(mask, points, box)
