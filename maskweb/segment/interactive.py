"""Clicks that act where they are placed: a wrapper that every Segmenter goes through.

A model answers each click with a whole new mask, and that new mask may undo what the user
said before: a background click on a wrong part can take the object with it, a foreground
click on a neck can flood the water. The wrapper holds every engine (grabCut, the bundled
models, SAM 2.1, SegNext) to what the user said, whatever the model made of it:

- **What the brush covered** is foreground (background for a background stroke), every pixel;
  a prompt of strokes alone stays within reach of them (``stroke_reach``).
- **Every click's spot** stays as the user said: a small disc around each click takes the
  click's label; a later click wins over an earlier one where their discs meet.
- **The new click acts locally** (``merge="local"``, FocalClick's idea of a focus region,
  here without re-running the model): of the model's changes to the previous mask only
  those of the click's sign (a foreground click adds, a background click takes away), and of
  them only the connected part that contains the new click, inside a window around it, are
  taken; the rest of the previous mask stays. A flood across the photo, or the object
  vanishing under a background click, is not taken. The window's half-side is ``focus``
  times the square root of the object's area (or of the click's distance to the previous
  mask's other side). The model's changes that would flip an earlier click are cut at that
  click (its disc), so they cannot spread through it; with ``claim``, a click takes only
  the pixels nearer to it than to the earlier clicks of the other label.

Each model's settings: :func:`policy_for`. Other ways of merging, kept for the bench
(``bench.quality --click-merge`` / ``--variant``): ``"none"`` (the
model's mask as it is, strokes still painted), ``"hard"`` (only the clicks' discs enforced),
``"refuse"`` (the model's whole new mask unless it flips an earlier click; then only its
change around the new click is taken).

**Automatic re-prompting** (``reprompt`` > 0, darktable's approach, only for a model whose
candidates carry a score, only for a first single click): the model is asked again with a
point at the deepest point of its own mask and the mask's bounding box added, its mask fed
back, as long as its score improves.

Candidates that are the same mask (IoU above ``same_candidate``) as a better one are dropped,
so the page offers a choice only where there is one.

The previous prediction tells which prompt is new (``Prediction.prompts``); a previous one
that answered other prompts (an undo, several prompts decoded in one step) gets no local
merge, only the constraints.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from maskweb.segment.postprocess import bounds, clean_mask
from maskweb.segment.prompts import clamp_point, pixel_of, stroke_mask
from maskweb.segment.types import (
    Box,
    Candidate,
    Embedding,
    Point,
    Prediction,
    Prompts,
    Segmenter,
    Stroke,
)

MERGES = ("none", "hard", "refuse", "local")
# MASKWEB_ENGINE_VARIANT=plain serves the models as they are, without this wrapper: today's
# engine, for side-by-side latency runs (bench.latency --engine-variant).
VARIANTS = ("interactive", "plain")


@dataclass(frozen=True)
class ClickPolicy:
    """How the wrapper holds a model to the prompts (chosen on COCO_MVal, docs/engine.md)."""

    merge: str = "local"
    # Half-side of the focus window around a new click, times sqrt(object area); inf: the
    # whole connected change around the click, however far it reaches.
    focus: float = 1.0
    # What ``focus`` multiplies: "area", sqrt(object area); "distance", the new click's
    # distance to the previous mask's other side (to the mask for a click outside it, to
    # the outside for a click inside it): the size of the mistake the click corrects.
    focus_by: str = "area"
    # A new click claims only the pixels at most ``claim`` times as far from it as from the
    # nearest earlier click of the other label (inf: no such limit). A background click
    # between the object's clicks and a wrong part then takes the wrong part, not the object,
    # even where the model drops both.
    claim: float = math.inf
    # A new click's change larger than ``cap`` times the object is cut to twice the click's
    # distance to the previous mask's other side (inf: never).
    cap: float = math.inf
    # Radius of the disc that takes a click's label, as a fraction of the image's long side
    # (5 px at 854 x 480, 12 px at 2048).
    click_radius: float = 0.006
    # Feed the merged mask back to a model that can take it (``feedback_for``) instead of its
    # own answer, so the next click builds on what the user sees.
    feed_merged: bool = True
    reprompt: int = 0
    same_candidate: float = 0.95
    # Where only strokes were given, the mask stays within their reach: the strokes' bounding
    # box grown by this much of its longer side (0: chosen on COCO_MVal, 0 to 0.5 and no
    # window tried) plus two brush widths. A stroke says where
    # the object is; a point model given a dozen positive points along it floods the photo.
    stroke_reach: float = 0.0

    def __post_init__(self) -> None:
        if self.merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, not {self.merge!r}")
        if self.focus_by not in ("area", "distance"):
            raise ValueError(f"focus_by must be 'area' or 'distance', not {self.focus_by!r}")
        if not self.focus > 0 or self.click_radius < 0 or self.reprompt < 0:
            raise ValueError("focus must be > 0, click_radius and reprompt >= 0")


def engine_variant() -> str:
    """``MASKWEB_ENGINE_VARIANT``: ``interactive`` (default) or ``plain``."""
    value = os.environ.get("MASKWEB_ENGINE_VARIANT", "").strip() or "interactive"
    if value not in VARIANTS:
        raise ValueError(f"MASKWEB_ENGINE_VARIANT must be one of {VARIANTS}, not {value!r}")
    return value


class InteractiveSegmenter:
    """Any :class:`Segmenter`, held to what the user said (see the module's docstring)."""

    def __init__(self, inner: Segmenter, policy: ClickPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or ClickPolicy()
        self.model_id = inner.model_id

    def __getattr__(self, name: str) -> Any:
        # warm_up, decoder_file, descriptor, ...: the model's own.
        return getattr(self.inner, name)

    def encode(self, image: np.ndarray,
               progress: Callable[[float], None] | None = None) -> Embedding:
        return self.inner.encode(image, progress=progress)

    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        pred = self.inner.decode(embedding, prompts, previous)
        if prompts.is_empty():
            return pred
        if (self.policy.reprompt and previous is None and len(prompts.points) == 1
                and prompts.box is None and not prompts.strokes):
            # The first click only: the app also decodes a longer prompt log from scratch
            # (a click decoded alongside the one before it), and re-prompting those tripled
            # their time in the live stack (bench.latency: p50 1.66x with, see docs).
            pred = self._reprompt(embedding, prompts, pred)
        h, w = embedding.image_size
        before, new_click = _what_is_new(previous, prompts, (h, w))
        candidates = []
        for cand in pred.candidates:
            mask = self.act(cand.mask, prompts, before, new_click)
            candidates.append(Candidate(mask, cand.score))
        candidates = distinct(candidates, self.policy.same_candidate)
        feedback = pred.feedback
        feed = getattr(self.inner, "feedback_for", None)
        if self.policy.feed_merged and callable(feed) and self.policy.merge != "none":
            feedback = feed(embedding, candidates[0].mask)
        return Prediction(candidates, feedback, prompts)

    # -- the rules --------------------------------------------------------------------------
    def act(self, mask: np.ndarray, prompts: Prompts, before: np.ndarray | None,
            new_click: Point | None) -> np.ndarray:
        """The model's ``mask`` held to ``prompts`` (``before``: the mask the user saw,
        ``new_click``: the one click added since, when that is all that changed)."""
        h, w = mask.shape
        out = np.asarray(mask, bool)
        merge = self.policy.merge
        points = [clamp_point(p, h, w) for p in prompts.points]
        radius = max(1.0, self.policy.click_radius * max(h, w))
        if before is not None and new_click is not None and merge in ("local", "refuse"):
            earlier = points[:-1]
            if merge == "local":
                out = merge_near_click(before, out, new_click, earlier, radius,
                                       self.policy.focus, self.policy.focus_by,
                                       self.policy.claim, self.policy.cap)
            elif flips_a_click(out, earlier):
                out = merge_near_click(before, out, new_click, earlier, radius, math.inf)
        out = out.copy()
        if prompts.strokes and not prompts.points and prompts.box is None \
                and math.isfinite(self.policy.stroke_reach):
            out &= stroke_reach(prompts.strokes, h, w, self.policy.stroke_reach)
        for stroke in prompts.strokes:
            out[stroke_mask(stroke, h, w)] = stroke.positive
        if merge != "none":
            for p in points:
                out[disc(p, radius, h, w)] = p.positive
        if merge in ("local", "refuse") or prompts.strokes:
            out = clean_mask(out, points + stroke_points(prompts), prompts.box)
        return out

    def _reprompt(self, embedding: Embedding, prompts: Prompts,
                  pred: Prediction) -> Prediction:
        """darktable's automatic re-prompting: the mask's deepest point and its box, as long
        as the model's own score improves."""
        best = pred
        for _ in range(self.policy.reprompt):
            score = best.best.score
            mask = best.best.mask
            if score is None or not mask.any():
                break
            found = bounds(mask)
            assert found is not None
            y0, y1, x0, x1 = found
            dist = cv2.distanceTransform(np.pad(mask, 1).view(np.uint8), cv2.DIST_L2, 5)
            r, c = np.unravel_index(int(np.argmax(dist[1:-1, 1:-1])), mask.shape)
            again = dataclasses.replace(
                prompts, points=(*prompts.points, Point(c + 0.5, r + 0.5)),
                box=prompts.box or Box(float(x0), float(y0), float(x1), float(y1)))
            trial = self.inner.decode(embedding, again, best)
            trial_score = trial.best.score
            if trial_score is None or trial_score <= score:
                break
            best = trial
        return best


def _what_is_new(previous: Prediction | None, prompts: Prompts,
                 shape: tuple[int, int]) -> tuple[np.ndarray | None, Point | None]:
    """(the mask the user saw, the one click added since), or None where it is not that."""
    if previous is None or previous.prompts is None or not previous.candidates:
        return None, None
    before = previous.best.mask
    if before.shape != shape:
        return None, None
    old = previous.prompts
    n = len(old.points)
    if (old.box != prompts.box or old.strokes != prompts.strokes
            or len(prompts.points) != n + 1 or prompts.points[:n] != old.points):
        return before, None
    h, w = shape
    return before, clamp_point(prompts.points[-1], h, w)


def stroke_points(prompts: Prompts) -> list[Point]:
    """A point at each end of every stroke: what the clean-up keeps (positive) or protects."""
    out = []
    for s in prompts.strokes:
        for x, y in (s.points[0], s.points[-1]) if s.points else ():
            out.append(Point(x, y, s.positive))
    return out


def stroke_reach(strokes: Sequence[Stroke], h: int, w: int, reach: float) -> np.ndarray:
    """The window a stroke-only prompt's mask stays in (see ClickPolicy.stroke_reach)."""
    out = np.zeros((h, w), bool)
    positive = [s for s in strokes if s.positive and s.points]
    if not positive:
        return ~out
    xy = np.array([p for s in positive for p in s.points], np.float64)
    brush = max(s.radius for s in positive)
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    grow = reach * max(x1 - x0, y1 - y0) + 4 * brush
    ya, yb = max(0, int(y0 - grow)), min(h, int(math.ceil(y1 + grow)))
    xa, xb = max(0, int(x0 - grow)), min(w, int(math.ceil(x1 + grow)))
    out[ya:yb, xa:xb] = True
    return out


def disc(point: Point, radius: float, h: int, w: int) -> np.ndarray:
    """A bool mask of the pixels whose centres lie within ``radius`` of the point
    (the point's own pixel always)."""
    out = np.zeros((h, w), np.uint8)
    shift = 4
    cv2.circle(out, (round((point.x - 0.5) * 16), round((point.y - 0.5) * 16)),
               round(radius * 16), 1, -1, cv2.LINE_8, shift)
    out[pixel_of(point, h, w)] = 1
    return out.astype(bool)


def flips_a_click(mask: np.ndarray, points: Sequence[Point]) -> bool:
    h, w = mask.shape
    return any(bool(mask[pixel_of(p, h, w)]) != p.positive for p in points)


def merge_near_click(before: np.ndarray, after: np.ndarray, click: Point,
                     earlier: Sequence[Point], radius: float, focus: float,
                     focus_by: str = "area", claim: float = math.inf,
                     cap: float = math.inf) -> np.ndarray:
    """``before`` with ``after``'s changes of the click's sign (added pixels for a
    foreground click, removed ones for a background click) taken only where they connect
    to ``click`` inside its focus window (half-side ``focus`` x sqrt(object area), or x the
    click's distance to the previous mask's other side), never through the disc of an
    earlier click whose label the change would flip."""
    h, w = before.shape
    r, c = pixel_of(click, h, w)
    if math.isinf(focus):
        y0, y1, x0, x1 = 0, h, 0, w
    else:
        if focus_by == "distance":
            side = before if not before[r, c] else ~before
            if side.any():
                far = cv2.distanceTransform(np.pad(~side, 1).view(np.uint8), cv2.DIST_L2, 3)
                size = float(far[r + 1, c + 1])
            else:
                size = float(max(h, w))
        else:
            size = math.sqrt(max(int(before.sum()), int(after.sum()), 1))
        half = max(radius * 4, focus * size)
        y0, y1 = max(0, int(r - half)), min(h, int(r + half) + 1)
        x0, x1 = max(0, int(c - half)), min(w, int(c + half) + 1)
    b, a = before[y0:y1, x0:x1], after[y0:y1, x0:x1]
    # A foreground click only adds, a background click only takes away: what the model
    # changed the other way (dropping a leg on a click at the tail) is not what was asked.
    changed = (a & ~b) if click.positive else (b & ~a)
    if not changed[r - y0, c - x0]:
        return before  # the model did not act at the click: the click's disc will
    sub_h, sub_w = changed.shape
    for p in earlier:
        pr, pc = pixel_of(p, h, w)
        if not (y0 <= pr < y1 and x0 <= pc < x1):
            continue
        local = Point(p.x - x0, p.y - y0, p.positive)
        if bool(a[pr - y0, pc - x0]) != p.positive:
            changed &= ~disc(local, radius, sub_h, sub_w)
    others = [p for p in earlier if p.positive != click.positive]
    if others and math.isfinite(claim):
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
        d_new = np.hypot(xx - click.x, yy - click.y)
        d_other = np.min([np.hypot(xx - p.x, yy - p.y) for p in others], axis=0)
        changed &= d_new <= claim * d_other
    if not changed[r - y0, c - x0]:
        return before
    _, labels = cv2.connectedComponents(changed.view(np.uint8), connectivity=8)
    taken = labels == labels[r - y0, c - x0]
    if math.isfinite(cap):
        # A change larger than ``cap`` times the object is a flood, not the part the click
        # landed on: keep only what lies within twice the click's distance to the mask's
        # other side (the size of the mistake it corrects).
        area = max(int(np.count_nonzero(before)), 1)
        if np.count_nonzero(taken) > cap * area:
            side = before if not before[r, c] else ~before
            if side.any():
                far = cv2.distanceTransform(np.pad(~side, 1).view(np.uint8), cv2.DIST_L2, 3)
                reach = 2.0 * float(far[r + 1, c + 1]) + radius
                yy, xx = np.mgrid[y0:y1, x0:x1]
                taken &= np.hypot(xx + 0.5 - click.x, yy + 0.5 - click.y) <= reach
    out = before.copy()
    out[y0:y1, x0:x1][taken] = a[taken]
    return out


def distinct(candidates: list[Candidate], same: float) -> list[Candidate]:
    """Candidates in their order, less those that are the same mask as one before them."""
    kept: list[Candidate] = []
    for cand in candidates:
        if all(mask_iou(cand.mask, k.mask) < same for k in kept):
            kept.append(cand)
    return kept


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.count_nonzero(a | b))
    return int(np.count_nonzero(a & b)) / union if union else 1.0


def policy_for(model: Segmenter) -> ClickPolicy:
    """The model's own settings where it has them (``click_policy`` on the engine, or
    ``x_click_policy`` in a model.json: the same rules, tuned per model on COCO_MVal), else
    the defaults."""
    settings = getattr(model, "click_policy", None)
    if settings is None:
        descriptor = getattr(model, "descriptor", None)
        settings = getattr(descriptor, "extra", {}).get("x_click_policy")
    if not settings:
        return ClickPolicy()
    if not isinstance(settings, dict) or not set(settings) <= set(ClickPolicy.__annotations__):
        raise ValueError(f"{model.model_id}: bad click policy {settings!r}")
    return ClickPolicy(**settings)


def wrap(model: Segmenter, policy: ClickPolicy | None = None) -> Segmenter:
    """``model`` behind the wrapper with ``policy`` (or its own, see policy_for), unless
    MASKWEB_ENGINE_VARIANT=plain."""
    if engine_variant() == "plain" or isinstance(model, InteractiveSegmenter):
        return model
    return InteractiveSegmenter(model, policy or policy_for(model))
