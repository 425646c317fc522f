import math

import numpy as np

from maskweb.segment.prompts import all_points, resample_stroke, stroke_mask
from maskweb.segment.types import Point, Prompts, Stroke


def test_stroke_is_resampled_by_arc_length_one_point_per_brush_diameter():
    # An L-shaped stroke, 60 + 60 px long, radius 10: a point every 20 px (one diameter),
    # as darktable's object tool places them.
    stroke = Stroke(points=((0.0, 0.0), (60.0, 0.0), (60.0, 60.0)), radius=10.0)
    pts = resample_stroke(stroke)
    assert len(pts) == 7
    assert (pts[0].x, pts[0].y) == (0.0, 0.0)
    assert (pts[-1].x, pts[-1].y) == (60.0, 60.0)
    gaps = [math.hypot(b.x - a.x, b.y - a.y) for a, b in zip(pts, pts[1:], strict=False)]
    # Evenly spaced along the path (the corner sample sits exactly on the corner).
    assert np.allclose(gaps, 20.0)
    assert any(p.x == 60.0 and p.y == 0.0 for p in pts)


def test_uneven_input_spacing_gives_even_samples():
    stroke = Stroke(points=((0.0, 5.0), (1.0, 5.0), (2.0, 5.0), (90.0, 5.0)), radius=15.0)
    xs = [p.x for p in resample_stroke(stroke)]
    assert np.allclose(np.diff(xs), 30.0)


def test_a_short_stroke_still_gets_three_points():
    pts = resample_stroke(Stroke(points=((0.0, 0.0), (10.0, 0.0)), radius=20.0))
    assert [p.x for p in pts] == [0.0, 5.0, 10.0]
    # Shorter than three pixels apart: its two ends.
    assert len(resample_stroke(Stroke(points=((0.0, 0.0), (1.0, 0.0)), radius=20.0))) == 2


def test_long_stroke_is_capped_at_32_and_still_spans_the_path():
    stroke = Stroke(points=((0.0, 0.0), (10000.0, 0.0)), radius=3.0)
    pts = resample_stroke(stroke)
    assert len(pts) == 32
    assert pts[-1].x == 10000.0


def test_stroke_mask_covers_the_brush_and_nothing_far_from_it():
    stroke = Stroke(points=((20.0, 30.0), (80.0, 30.0)), radius=6.0)
    mask = stroke_mask(stroke, 60, 100)
    yy, xx = np.mgrid[0:60, 0:100] + 0.5
    # Distance of each pixel centre to the segment.
    d = np.hypot(xx - np.clip(xx, 20, 80), yy - 30)
    assert mask[d <= 5.0].all()
    assert not mask[d >= 7.5].any()
    # On a grid half the size, the same stroke covers the same place.
    half = stroke_mask(stroke, 30, 50, 0.5, 0.5)
    assert half[15, 10:40].all() and not half[:10].any()


def test_dot_stroke_gives_one_point_with_its_polarity():
    pts = resample_stroke(Stroke(points=((5.0, 7.0),), radius=4.0, positive=False))
    assert pts == [Point(5.0, 7.0, False)]
    assert resample_stroke(Stroke(points=(), radius=4.0)) == []


def test_all_points_keeps_clicks_then_stroke_samples():
    prompts = Prompts(points=(Point(1, 1), Point(2, 2, False)),
                      strokes=(Stroke(((0.0, 0.0), (36.0, 0.0)), radius=6.0, positive=False),))
    pts = all_points(prompts)
    assert pts[:2] == [Point(1, 1), Point(2, 2, False)]
    assert [p.x for p in pts[2:]] == [0.0, 12.0, 24.0, 36.0]
    assert not any(p.positive for p in pts[2:])
