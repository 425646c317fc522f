import numpy as np

from bench.quality import fixed_subset, next_click, noc, run_image, summarise
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
