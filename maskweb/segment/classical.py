"""The classical engine: OpenCV grabCut seeded by the prompts. Works with no model files.

"Encoding" keeps what every click reuses: the photo at a working resolution (long side
``WORK_SIDE``, where one grabCut costs a few tens of ms) and the guide image for the
full-resolution edge. Each decode runs grabCut at the working resolution, seeded by:
- clicks and stroke samples: small discs of certain foreground / background;
- brush strokes: every pixel the brush covered, certain foreground / background;
- a box: outside certain background, inside probable foreground;
- the previous result (``previous.feedback``): probable foreground / background, so each click
  corrects the last mask instead of starting over;
- with nothing else, a disc of probable foreground around the positive clicks.
The soft result is upsampled to full resolution, snapped to the photo's edges with a guided
filter, thresholded and cleaned (prompted regions only, no specks or pinholes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import cv2
import numpy as np

from maskweb.segment.postprocess import (
    bounds,
    clean_mask,
    guide_image,
    refine_guided,
    resample,
)
from maskweb.segment.prompts import all_points, clamp_point, resample_stroke, stroke_mask
from maskweb.segment.types import Box, Candidate, Embedding, Point, Prediction, Prompts

WORK_SIDE = 400
GRABCUT_SEED = 12345


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate and normalise an input photo to uint8 RGB (H, W, 3); grey and RGBA accepted."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"image must be uint8, not {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"image must be (H, W, 3) RGB, not shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


class GrabCutSegmenter:
    """Implements :class:`maskweb.segment.types.Segmenter` with cv2.grabCut."""

    def __init__(self, model_id: str = "grabcut", work_side: int = WORK_SIDE,
                 iterations: int = 1, prior_radius: float = 0.12, seed_radius: float = 0.012,
                 negative_cut: float = 0.6, refine: str = "guided", flood_tol: int = 20,
                 flood_max: float = 0.6, shift_sp: int = 6, shift_sr: int = 12,
                 crop_margin: float = 0.3, crop_min: int = 16, collapse: float = 0.15,
                 max_pixels: int | None = 20000, stroke_prior: float = 1.0) -> None:
        self.model_id = model_id
        self.work_side = work_side
        # One grabCut iteration: with the crop and the clicks' colour regions it starts close
        # to the answer, and more iterations bought next to nothing on COCO_MVal (at 40000
        # px, NoC@90 9.40 with one, 9.31 with two or three) while each cost 20-25 ms;
        # docs/engine.md.
        self.iterations = iterations
        # Fractions of the working image's long side.
        self.prior_radius = prior_radius
        self.seed_radius = seed_radius
        # A foreground pixel is given up when it is this much closer to a negative click than
        # to every positive one: grabCut alone keeps a same-coloured region under a
        # background click, and that is exactly what the user is correcting.
        self.negative_cut = negative_cut
        self.refine = refine
        # Each click's colour region: a flood fill (within ``flood_tol`` of the clicked
        # colour) on the mean-shift-smoothed working image, capped at ``flood_max`` of the
        # image. It tells grabCut roughly what the click means before any colour model exists.
        self.flood_tol = flood_tol
        self.flood_max = flood_max
        self.shift_sp = shift_sp
        self.crop_margin = crop_margin
        self.crop_min = crop_min
        self.collapse = collapse
        # See grabcut_near_foreground. 40000 with three iterations, 20000 since one suffices:
        # both chosen on COCO_MVal by the rule in docs/engine.md.
        self.max_pixels = max_pixels
        self.shift_sr = shift_sr
        # A stroke's probable foreground: the painted band grown by this many brush widths.
        self.stroke_prior = stroke_prior

    # -- encode -----------------------------------------------------------------------------
    def encode(self, image: np.ndarray,
               progress: Callable[[float], None] | None = None) -> Embedding:
        rgb = as_rgb_uint8(image)
        h, w = rgb.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        ww, wh = max(2, round(w * scale)), max(2, round(h * scale))
        work = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        work = np.ascontiguousarray(work)
        if progress:
            progress(0.2)
        # Mean shift flattens texture inside regions while keeping their edges: the flood
        # fills of each click run on it. It is the slow part, done once per photo.
        smooth = cv2.pyrMeanShiftFiltering(work, self.shift_sp, self.shift_sr)
        if progress:
            progress(0.8)
        guide = guide_image(rgb)
        if progress:
            progress(1.0)
        return Embedding(model_id=self.model_id, image_size=(h, w),
                         arrays={"work": work, "smooth": smooth, "guide": guide},
                         meta={"family": "classical", "work_size": [wh, ww]})

    # -- decode -----------------------------------------------------------------------------
    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        if embedding.model_id != self.model_id:
            raise ValueError(f"embedding is for {embedding.model_id!r}, not {self.model_id!r}")
        h, w = embedding.image_size
        work = embedding.arrays["work"]
        wh, ww = work.shape[:2]
        if prompts.is_empty():
            return Prediction([Candidate(np.zeros((h, w), bool), 0.0)], None)
        points = [clamp_point(p, h, w) for p in all_points(prompts)]
        sx, sy = ww / w, wh / h
        wpoints = [Point(p.x * sx, p.y * sy, p.positive) for p in points]
        wbox = None
        if prompts.box is not None:
            b = prompts.box.ordered()
            wbox = Box(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)
        prev = previous.feedback if previous is not None else None
        if prev is not None and prev.shape != (wh, ww):
            prev = None
        seed_r = [max(2.0, self.seed_radius * max(wh, ww))] * len(wpoints)
        # What the brush covered is certain, every pixel of it (not only discs at its samples).
        painted = [(stroke_mask(s, wh, ww, sx, sy), s.positive) for s in prompts.strokes]
        smooth = embedding.arrays.get("smooth", work)
        samples = [len(resample_stroke(s)) for s in prompts.strokes]
        widths = [2 * s.radius * sx for s in prompts.strokes]
        fg = self._grabcut(work, wpoints, seed_r, wbox, prev, smooth, painted, samples, widths)
        fg = self._cut_negatives(fg, wpoints)
        mask = self._full_size(fg, embedding, points, prompts.box)
        # grabCut has no estimate of its own quality: no score (None), rather than a made-up one.
        candidates = [Candidate(mask, None)]
        if (len(prompts.points) == 1 and prompts.points[0].positive and not prompts.strokes
                and prompts.box is None and self.flood_tol > 0):
            # One click may mean a part (the uniformly coloured region it landed on: a shirt,
            # a wheel) or the whole (grabCut's object): both are offered, the whole first.
            part = self._flood(smooth, wpoints[0]) & fg
            if part.any():
                candidates.append(Candidate(
                    self._full_size(part, embedding, points, None), None))
        return Prediction(candidates, self.feedback_for(embedding, mask))

    def _full_size(self, fg: np.ndarray, embedding: Embedding, points: list[Point],
                   box: Box | None) -> np.ndarray:
        """A working-resolution decision at full size: blurred a little, upsampled, snapped to
        the photo, cleaned."""
        h, w = embedding.image_size
        wh, ww = fg.shape
        soft = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.8)
        full = resample(soft, ww / w, wh / h, (h, w))
        if self.refine == "guided":
            full = refine_guided(full, embedding.arrays["guide"])
        return clean_mask(full > 0.5, points, box)

    def feedback_for(self, embedding: Embedding, mask: np.ndarray) -> np.ndarray:
        """What the next decode starts from when ``mask`` (full size) is what the user sees:
        the mask at the working resolution."""
        wh, ww = embedding.arrays["work"].shape[:2]
        small = cv2.resize(mask.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_AREA)
        return np.asarray(small, np.uint8)

    def _flood(self, smooth: np.ndarray, p: Point) -> np.ndarray:
        wh, ww = smooth.shape[:2]
        ff = np.zeros((wh + 2, ww + 2), np.uint8)
        t = (self.flood_tol,) * 3
        cv2.floodFill(smooth, ff, (min(int(p.x), ww - 1), min(int(p.y), wh - 1)), (0, 0, 0),
                      t, t, 8 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
        region = ff[1:-1, 1:-1] > 0
        if region.mean() > self.flood_max:  # a sky or a wall: not a useful hint
            return np.zeros_like(region)
        return region

    def _grabcut(self, work: np.ndarray, points: list[Point], seed_r: list[float],
                 box: Box | None, prev: np.ndarray | None,
                 smooth: np.ndarray | None = None,
                 painted: list[tuple[np.ndarray, bool]] | None = None,
                 stroke_samples: list[int] | None = None,
                 stroke_widths: list[float] | None = None) -> np.ndarray:
        wh, ww = work.shape[:2]
        gc = np.full((wh, ww), cv2.GC_PR_BGD, np.uint8)
        if prev is not None:
            gc[prev > 0] = cv2.GC_PR_FGD
        elif box is None:
            r = max(3, round(self.prior_radius * max(wh, ww)))
            # A click says "about here"; a stroke says where and how wide: its prior is the
            # painted band grown by stroke_prior brush widths, not a disc at every sample
            # (twelve discs of a tenth of the photo each swallowed small objects).
            clicks = len(points) - sum(n for n in stroke_samples) if stroke_samples else None
            for p in points[:clicks]:
                if p.positive:
                    cv2.circle(gc, (int(p.x), int(p.y)), r, cv2.GC_PR_FGD, -1)
            for (pixels, positive), width in zip(painted or (), stroke_widths or (),
                                                 strict=False):
                if positive:
                    grow = max(1, round(self.stroke_prior * width))
                    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                       (2 * grow + 1, 2 * grow + 1))
                    gc[cv2.dilate(pixels.view(np.uint8), kernel) > 0] = cv2.GC_PR_FGD
        if smooth is not None and self.flood_tol > 0:
            for p in sorted(points, key=lambda q: q.positive, reverse=True):
                if box is not None and p.positive:
                    continue  # the box already says where the object is
                region = self._flood(smooth, p)
                # A colour region that holds clicks of both kinds says nothing.
                if any(region[min(int(q.y), wh - 1), min(int(q.x), ww - 1)]
                       for q in points if q.positive != p.positive):
                    continue
                gc[region] = cv2.GC_PR_FGD if p.positive else cv2.GC_PR_BGD
        if box is not None:
            x0, y0 = max(0, int(np.floor(box.x0))), max(0, int(np.floor(box.y0)))
            x1, y1 = min(ww, int(np.ceil(box.x1))), min(wh, int(np.ceil(box.y1)))
            inside = gc[y0:y1, x0:x1]
            if prev is None:
                inside[...] = cv2.GC_PR_FGD
            outside = np.ones((wh, ww), bool)
            outside[y0:y1, x0:x1] = False
            gc[outside] = cv2.GC_BGD
        for p, r in zip(points, seed_r, strict=True):
            cv2.circle(gc, (int(p.x), int(p.y)), max(1, round(r)),
                       cv2.GC_FGD if p.positive else cv2.GC_BGD, -1)
        for pixels, positive in painted or ():
            gc[pixels] = cv2.GC_FGD if positive else cv2.GC_BGD
        return grabcut_near_foreground(work, gc, self.iterations, self.crop_margin,
                                       self.crop_min, self.max_pixels, collapse=self.collapse)

    def _cut_negatives(self, fg: np.ndarray, points: list[Point]) -> np.ndarray:
        neg = [p for p in points if not p.positive]
        pos = [p for p in points if p.positive]
        if not neg or not pos or not fg.any():
            return fg
        wh, ww = fg.shape

        def distance_to(ps: list[Point]) -> np.ndarray:
            seeds = np.ones((wh, ww), np.uint8)
            for p in ps:
                seeds[min(int(p.y), wh - 1), min(int(p.x), ww - 1)] = 0
            return cv2.distanceTransform(seeds, cv2.DIST_L2, 3)

        d_neg, d_pos = distance_to(neg), distance_to(pos)
        return fg & ~(d_neg < self.negative_cut * d_pos)


def refine_with_grabcut(prob: np.ndarray, guide: np.ndarray, points: list[Point],
                        box: Box | None, work_side: int = 512, iterations: int = 2,
                        confident: float = 0.95, band: float = 0.02,
                        crop_margin: float | None = 0.3, crop_min: int = 16,
                        max_pixels: int | None = 20000, edge_pass: bool = True,
                        collapse: float = 0.15) -> np.ndarray:
    """Post-process a model's soft mask (H, W) with grabCut along its uncertain edge.

    The model's confident regions become certain foreground / background (confident
    foreground shrunk a little, background only when far from the model's edge), the rest is
    "probable" as the model says, the clicks are certain; grabCut then moves the edge to where
    the photo's colours change. ``band`` is the half-width of the free zone around the model's
    edge as a fraction of the working image's long side. Returns a bool mask (H, W).

    A small model is rarely confident (litemedsam-photo after one click: background at p 0.1
    to 0.4 across the photo), so in practice grabCut decides every pixel it is given, and on
    the whole 512-px photo that took 0.2 to 2.2 s a decode on DAVIS. So grabCut gets only
    the crop around the model's mask, at most ``max_pixels`` of it, with a full-resolution
    pass along the edge (see grabcut_near_foreground). The three settings (crop 0.3, 20000
    pixels, the collapse guard) were chosen on COCO_MVal; MODEL_CARD.md of litemedsam-photo
    has the figures.
    """
    h, w = prob.shape
    gh, gw = guide.shape[:2]
    scale = min(1.0, work_side / max(gh, gw))
    ww, wh = max(2, round(gw * scale)), max(2, round(gh * scale))
    work = cv2.resize(guide, (ww, wh), interpolation=cv2.INTER_AREA)
    p = cv2.resize(prob.astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA)
    inside = (p >= 0.5).astype(np.uint8)
    free = max(2, round(band * max(ww, wh)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * free + 1, 2 * free + 1))
    sure_fg = cv2.erode(((p > confident) & (inside > 0)).astype(np.uint8), kernel) > 0
    sure_bg = cv2.dilate(inside, kernel) == 0
    sure_bg &= p < 1.0 - confident
    gc = np.where(inside > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[sure_fg] = cv2.GC_FGD
    gc[sure_bg] = cv2.GC_BGD
    sx, sy = ww / w, wh / h
    box_px = None
    if box is not None:
        box_px = (max(0, int(box.x0 * sx)), max(0, int(box.y0 * sy)),
                  int(np.ceil(box.x1 * sx)), int(np.ceil(box.y1 * sy)))
        outside = np.ones((wh, ww), bool)
        outside[box_px[1]:box_px[3], box_px[0]:box_px[2]] = False
        gc[outside] = cv2.GC_BGD
    r = max(1, round(0.01 * max(ww, wh)))
    for pt in points:
        cv2.circle(gc, (int(pt.x * sx), int(pt.y * sy)), r,
                   cv2.GC_FGD if pt.positive else cv2.GC_BGD, -1)
    fg = grabcut_near_foreground(work, gc, iterations, crop_margin, crop_min,
                                 max_pixels=max_pixels, box=box_px, edge_pass=edge_pass,
                                 collapse=collapse).astype(np.float32)
    soft = resample(cv2.GaussianBlur(fg, (0, 0), 0.8), sx, sy, (h, w))
    return refine_guided(soft, guide) > 0.5


def grabcut_near_foreground(work: np.ndarray, gc: np.ndarray, iterations: int,
                            crop_margin: float | None, crop_min: int,
                            max_pixels: int | None = None,
                            box: tuple[int, int, int, int] | None = None,
                            edge_pass: bool = True, collapse: float = 0.0) -> np.ndarray:
    """Run grabCut on the trimap ``gc`` (cv2.GC_* labels, same size as ``work``); returns
    the bool foreground.

    grabCut runs only where the answer can be: around what is (probably) foreground, with a
    margin of ``crop_margin`` times the foreground's larger side (at least ``crop_min`` px) to
    grow into, and all of ``box`` (x0, y0, x1, y1 in ``work``'s pixels) where the user drew
    one; outside stays background. Faster (grabCut's cost is per pixel, and its
    max-flow gets slower still on a large undecided area) and the background colour model
    becomes local, which suits it better. ``crop_margin=None`` runs on the whole image.
    A crop of more than ``max_pixels`` is scaled down to that many first (the certain seeds
    kept), so a large object costs no more than a small one; the answer is scaled back up
    and its edge decided again at full resolution (``edge_pass``).

    If grabCut keeps less than ``collapse`` of the foreground it was given, the colour models
    could not tell the object from its surroundings (a zebra among zebras) and the given
    foreground is returned instead: a better answer than next to nothing.
    """
    wh, ww = gc.shape
    is_fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    fg_bounds = bounds(is_fg)
    if fg_bounds is None:
        return is_fg
    y0, y1, x0, x1 = 0, wh, 0, ww
    if crop_margin is not None:
        y0, y1, x0, x1 = fg_bounds
        if box is not None:
            y0, y1 = min(y0, box[1]), max(y1, box[3])
            x0, x1 = min(x0, box[0]), max(x1, box[2])
        m = max(crop_min, round(crop_margin * max(y1 - y0, x1 - x0)))
        y0, y1, x0, x1 = max(0, y0 - m), min(wh, y1 + m), max(0, x0 - m), min(ww, x1 + m)
    sub = np.ascontiguousarray(gc[y0:y1, x0:x1])
    image = np.ascontiguousarray(work[y0:y1, x0:x1])
    # The edge pass needs the crop as given; the scaled-down pass below works on new arrays,
    # so these stay untouched without a copy.
    image_full, full_trimap = image, sub
    ch, cw = sub.shape
    if max_pixels is not None and ch * cw > max_pixels:
        f = (max_pixels / (ch * cw)) ** 0.5
        size = (max(2, round(cw * f)), max(2, round(ch * f)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(sub, size, interpolation=cv2.INTER_NEAREST)
        # A click's disc may fall between the samples: any part of a certain label that
        # covers a scaled-down pixel makes it certain (background first, clicks win).
        for label in (cv2.GC_BGD, cv2.GC_FGD):
            cover = cv2.resize((sub == label).astype(np.float32), size,
                               interpolation=cv2.INTER_AREA)
            small[cover > 0.0] = label
        sub = small
    sub_fg = (sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)
    if sub_fg.all():
        # grabCut needs both colour models: treat the frame as probable background.
        sub[[0, -1], :] = np.where(sub[[0, -1], :] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
        sub[:, [0, -1]] = np.where(sub[:, [0, -1]] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    # Too few samples for a colour model (tiny image, all-certain mask): keep the seeds.
    with contextlib.suppress(cv2.error):
        # grabCut seeds its k-means from OpenCV's per-thread RNG: reseed so the same
        # prompts always give the same mask, whatever ran before on this thread.
        cv2.setRNGSeed(GRABCUT_SEED)
        # The rect is ignored with GC_INIT_WITH_MASK.
        cv2.grabCut(image, sub, (0, 0, 1, 1), bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = (sub == cv2.GC_FGD) | (sub == cv2.GC_PR_FGD)
    if fg.shape != (ch, cw):
        fg = cv2.resize(fg.astype(np.float32), (cw, ch), interpolation=cv2.INTER_LINEAR) > 0.5
        if edge_pass and bgd.any() and fgd.any():
            fg = _regrab_edge(image_full, full_trimap, fg, bgd, fgd, ch / sub.shape[0])
    out = np.zeros((wh, ww), bool)
    out[y0:y1, x0:x1] = fg
    if out.sum() < collapse * is_fg.sum():
        return is_fg
    return out


def _regrab_edge(image: np.ndarray, trimap: np.ndarray, fg: np.ndarray, bgd: np.ndarray,
                 fgd: np.ndarray, step: float) -> np.ndarray:
    """One grabCut at full resolution along the edge of a scaled-down answer ``fg``.

    ``step`` is the size of one scaled-down pixel here. Only a band of two of them on either
    side of the edge is left open; the rest is certain, and the colour models are the
    scaled-down pass's (GC_EVAL: no k-means again), so this pass costs little.
    """
    band = max(2, int(np.ceil(2 * step)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    inside = fg.astype(np.uint8)
    fine = np.where(fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    fine[cv2.erode(inside, kernel) > 0] = cv2.GC_FGD
    fine[cv2.dilate(inside, kernel) == 0] = cv2.GC_BGD
    # What the caller made certain stays so (clicks, outside a box).
    fine[trimap == cv2.GC_FGD] = cv2.GC_FGD
    fine[trimap == cv2.GC_BGD] = cv2.GC_BGD
    with contextlib.suppress(cv2.error):
        cv2.grabCut(image, fine, (0, 0, 1, 1), bgd, fgd, 1, cv2.GC_EVAL)
    return np.asarray((fine == cv2.GC_FGD) | (fine == cv2.GC_PR_FGD))
