import numpy as np
import pytest

from bench.quality import fixed_subset, iou, next_click, noc, run_image, summarise
from maskweb.segment.classical import GrabCutSegmenter
from tests.segment.synthetic import disc_mask, paint, textured_background


def test_first_click_is_the_deepest_point_of_the_object():
    gt = np.zeros((50, 80), bool)
    gt[10:31, 20:61] = True  # 21 rows x 41 columns
    positive, r, c = next_click(np.zeros_like(gt), gt, np.ones(gt.shape, np.float32))
    # The distance ridge runs along row 20; RITM takes its first pixel (row-major).
    assert positive and r == 20 and 30 <= c <= 50


def test_next_click_goes_to_the_larger_error_and_never_repeats():
    gt = np.zeros((50, 80), bool)
    gt[10:40, 10:40] = True
    pred = gt.copy()
    pred[:, 50:78] = True  # a large false positive on the right
    positive, r, c = next_click(pred, gt, np.ones(gt.shape, np.float32))
    assert not positive and 50 <= c < 78
    not_clicked = np.ones(gt.shape, np.float32)
    not_clicked[r, c] = 0
    assert next_click(pred, gt, not_clicked)[1:] != (r, c)


def test_fixed_subset_is_deterministic_and_evenly_spread():
    assert fixed_subset(345, 100) == fixed_subset(345, 100)
    sub = fixed_subset(345, 5)
    assert sub == [0, 86, 172, 258, 344]
    assert fixed_subset(10, None) == list(range(10))


def test_noc_counts_clicks_to_threshold_or_twenty():
    assert noc([0.5, 0.86, 0.91], 0.85) == 2
    assert noc([0.5, 0.86, 0.91], 0.90) == 3
    assert noc([0.5] * 20, 0.90) == 20


def test_protocol_runs_end_to_end_on_a_synthetic_photo():
    truth = disc_mask(120.0, 110.0, 60.0)
    photo = paint(textured_background(), truth, (220, 40, 40))
    r = run_image(GrabCutSegmenter(), photo, truth, "float16")
    s = summarise([r])
    assert r["ious"][0] > 0.9 and s["NoC@90"] == 1 and s["NoF@90"] == 0
    assert s["box IoU"] > 0.9


def test_boundary_iou_scores_the_edge_not_the_bulk():
    from bench.quality import boundary_iou

    gt = disc_mask(120.0, 110.0, 60.0)
    assert boundary_iou(gt, gt) == 1.0
    shifted = np.roll(gt, 6, axis=1)
    # A 6 px shift keeps most of the area but much less of the 2 %-wide edge band.
    assert iou(shifted, gt) > 0.85
    assert boundary_iou(shifted, gt) < iou(shifted, gt) - 0.1
    assert boundary_iou(np.zeros_like(gt), gt) == 0.0


def test_the_simulated_stroke_lies_inside_the_object_along_its_long_axis():
    from bench.quality import simulated_stroke
    from maskweb.segment.prompts import stroke_mask

    gt = np.zeros((120, 300), bool)
    gt[40:80, 30:270] = True  # a bar, 40 high, 240 long
    stroke = simulated_stroke(gt)
    painted = stroke_mask(stroke, *gt.shape)
    assert painted.any() and not (painted & ~gt).any()
    xs = [x for x, _ in stroke.points]
    assert max(xs) - min(xs) > 150  # along the bar, not across it
    assert 6.0 <= stroke.radius <= 10.0  # 0.4 of the inscribed radius (20 px)


def test_worsening_counts_falls_of_more_than_a_hundredth():
    from bench.quality import extra_columns, worsening

    assert worsening([0.5, 0.7, 0.695, 0.6, 0.9]) == pytest.approx([0.095])
    cols = extra_columns([{"ious": [0.5, 0.7, 0.695, 0.6, 0.9]}, {"ious": [0.3, 0.2]}])
    assert cols["worse %"] == 40.0  # 2 of the 5 later clicks
    assert cols["worse drop"] == pytest.approx(0.0975)


def test_the_brush_protocol_starts_with_a_stroke():
    truth = disc_mask(120.0, 110.0, 60.0)
    photo = paint(textured_background(), truth, (220, 40, 40))
    r = run_image(GrabCutSegmenter(), photo, truth, "float16")
    assert len(r["brush_ious"]) == 5 and r["brush_ious"][0] > 0.8
    assert len(r["bious"]) == len(r["ious"])
