"""Turning what the user did (clicks, a box, brush strokes) into the points a model reads.

Coordinates stay continuous, in pixels of the encoded image (see :mod:`maskweb.segment.types`).
"""

from __future__ import annotations

import math

import numpy as np

from maskweb.segment.types import Point, Prompts, Stroke

# darktable's AI mask tool places a sample every ~2/3 of the brush radius: dense enough that
# the model sees the whole stroke, sparse enough not to drown the clicks.
STROKE_SPACING_FACTOR = 2.0 / 3.0
# Models are trained with a handful of points; a long stroke must not produce hundreds.
MAX_POINTS_PER_STROKE = 32


def resample_stroke(stroke: Stroke, spacing_factor: float = STROKE_SPACING_FACTOR,
                    max_points: int = MAX_POINTS_PER_STROKE) -> list[Point]:
    """Points spaced evenly along the stroke's arc length, ends included.

    The spacing is ``spacing_factor * radius`` (at least one pixel); if that gives more than
    ``max_points`` the spacing grows so the samples still span the whole stroke.
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
    count = max(2, min(count, max_points))
    dist = np.linspace(0.0, total, count)
    xs = np.interp(dist, cum, pts[:, 0])
    ys = np.interp(dist, cum, pts[:, 1])
    return [Point(float(x), float(y), stroke.positive) for x, y in zip(xs, ys, strict=True)]


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
