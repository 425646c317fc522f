"""Turning what the user did (clicks, a box, brush strokes) into the points a model reads.

Coordinates stay continuous, in pixels of the encoded image (see :mod:`maskweb.segment.types`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from maskweb.segment.types import Point, Prompts, Stroke

# darktable's object mask tool (src/develop/masks/object.c) places about one point per brush
# DIAMETER along a stroke, at least 3 and at most 32: enough that the model sees the whole
# stroke, few enough not to drown the clicks (models are trained with a handful of points).
STROKE_SPACING_FACTOR = 2.0  # times the radius: one diameter
MIN_POINTS_PER_STROKE = 3
MAX_POINTS_PER_STROKE = 32


def resample_stroke(stroke: Stroke, spacing_factor: float = STROKE_SPACING_FACTOR,
                    max_points: int = MAX_POINTS_PER_STROKE,
                    min_points: int = MIN_POINTS_PER_STROKE) -> list[Point]:
    """Points spaced evenly along the stroke's arc length, ends included.

    The spacing is ``spacing_factor * radius`` (one brush diameter; at least one pixel),
    giving between ``min_points`` and ``max_points`` samples: a short stroke still gets
    ``min_points`` (fewer only when it is shorter than that many pixels), a long one spreads
    ``max_points`` over its whole length. A dot (no length) is one point.
    """
    pts = np.asarray(stroke.points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return []
    seg = np.hypot(*np.diff(pts, axis=0).T) if len(pts) > 1 else np.zeros(0)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(cum[-1])
    if total <= 0.0:
        return [Point(float(pts[0, 0]), float(pts[0, 1]), stroke.positive)]
    spacing = max(1.0, spacing_factor * float(stroke.radius))
    count = int(math.floor(total / spacing)) + 1
    # Samples closer than a pixel say nothing new: a 1-px stroke gets its two ends.
    floor = max(2, min(min_points, int(math.floor(total)) + 1))
    count = max(floor, min(count, max_points))
    dist = np.linspace(0.0, total, count)
    xs = np.interp(dist, cum, pts[:, 0])
    ys = np.interp(dist, cum, pts[:, 1])
    return [Point(float(x), float(y), stroke.positive) for x, y in zip(xs, ys, strict=True)]


def stroke_mask(stroke: Stroke, height: int, width: int, scale_x: float = 1.0,
                scale_y: float = 1.0) -> np.ndarray:
    """The pixels the brush covered: bool (height, width), the polyline drawn as wide as the
    brush (round ends and joints). ``scale_x``/``scale_y`` map the stroke's coordinates into
    this grid (a working image smaller than the photo)."""
    out = np.zeros((height, width), np.uint8)
    pts = np.asarray(stroke.points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return out.astype(bool)
    shift = 4  # sub-pixel drawing: coordinates in 1/16 px
    # Pixel (c, r) covers [c, c+1): its centre is c + 0.5; cv2 draws on pixel centres.
    xy = np.stack([pts[:, 0] * scale_x - 0.5, pts[:, 1] * scale_y - 0.5], axis=1)
    fixed = np.round(xy * (1 << shift)).astype(np.int32)
    radius = max(0.5, float(stroke.radius) * 0.5 * (scale_x + scale_y))
    if len(fixed) > 1:
        thickness = max(1, round(2 * radius))
        cv2.polylines(out, [fixed.reshape(-1, 1, 2)], False, 1, thickness, cv2.LINE_8, shift)
    for x, y in fixed[[0, -1]]:
        cv2.circle(out, (int(x), int(y)), round(radius * (1 << shift)), 1, -1, cv2.LINE_8,
                   shift)
    return out.astype(bool)


def all_points(prompts: Prompts) -> list[Point]:
    """Clicks followed by resampled strokes, in the order the user made them per kind."""
    points = list(prompts.points)
    for stroke in prompts.strokes:
        points.extend(resample_stroke(stroke))
    return points


def clamp_point(point: Point, height: int, width: int) -> Point:
    """Keep a point inside the image (a click on the very edge may land a hair outside)."""
    x = min(max(point.x, 0.0), width - 1e-3)
    y = min(max(point.y, 0.0), height - 1e-3)
    return Point(x, y, point.positive)


def pixel_of(point: Point, height: int, width: int) -> tuple[int, int]:
    """(row, column) of the pixel a continuous point falls in, clamped to the image."""
    c = min(max(int(math.floor(point.x)), 0), width - 1)
    r = min(max(int(math.floor(point.y)), 0), height - 1)
    return r, c
