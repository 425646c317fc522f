import cv2
import numpy as np
import pytest

from maskweb.segment.postprocess import (
    FEW_LABELS,
    clean_mask,
    guided_filter,
    keep_prompted_regions,
    not_flat,
    pixels_labelled,
    refine_guided,
    region_areas,
    remove_small,
    resample,
)
from maskweb.segment.types import Box, Point
from tests.segment.synthetic import disc_mask, iou


def test_upsampled_logits_put_the_edge_where_the_low_res_edge_is():
    # A disc drawn in a 64x64 "low-res" frame that covers a 256x256 image (scale 1/4):
    # upsampling the logits must keep its centre and radius in full-res pixels.
    low = disc_mask(20.0, 40.0, 10.0, 64, 64).astype(np.float32) * 2 - 1
    full = resample(low, 0.25, 0.25, (256, 256)) > 0
    assert iou(full, disc_mask(80.0, 160.0, 40.0, 256, 256)) > 0.95


def test_upsampled_logits_are_smoother_than_an_upsampled_binary_mask():
    low = np.linspace(-3, 3, 16, dtype=np.float32)[None, :].repeat(4, 0)
    up = resample(low, 0.25, 0.25, (16, 64))
    # The zero crossing (edge) lands between input samples 7 and 8, i.e. at x ~ 32 full-res.
    crossing = np.argmax(up[0] > 0)
    assert 31 <= crossing <= 33
    assert len(np.unique(np.round(up[0], 3))) > 16  # interpolated, not blocky


def test_keep_prompted_regions_drops_unclicked_blobs():
    a = disc_mask(50, 50, 20, 120, 200)
    b = disc_mask(150, 60, 20, 120, 200)
    kept = keep_prompted_regions(a | b, [Point(50, 50)])
    assert kept[a].all() and not kept[b].any()


def test_keep_prompted_regions_without_a_hit_keeps_the_mask():
    a = disc_mask(50, 50, 20, 120, 200)
    kept = keep_prompted_regions(a, [Point(190, 110)])
    assert (kept == a).all()


def test_box_crops_the_mask_to_the_box():
    a = disc_mask(50, 50, 30, 120, 200)
    kept = keep_prompted_regions(a, [], Box(40, 0, 200, 120))
    assert not kept[:, :40].any() and kept[:, 40:].sum() == a[:, 40:].sum()


def test_specks_dropped_and_pinholes_filled_but_border_background_kept():
    m = disc_mask(100, 60, 40, 120, 200)
    m[60:62, 100:102] = False  # pinhole
    m[5:7, 5:7] = True  # speck
    out = remove_small(m, min_area=16)
    assert out[60:62, 100:102].all()
    assert not out[5:7, 5:7].any()
    assert not out[0, :].any()  # the outside is not a hole


def test_clicked_speck_is_kept():
    m = np.zeros((50, 50), bool)
    m[10:12, 10:12] = True
    out = clean_mask(m, [Point(10.5, 10.5)], min_area=16)
    assert out[10:12, 10:12].all()


def test_guided_filter_snaps_a_blurry_edge_to_the_photo_edge():
    h, w = 80, 120
    truth = np.zeros((h, w), bool)
    truth[:, 60:] = True
    guide = np.where(truth[..., None], 200, 40).astype(np.uint8).repeat(3, axis=2)
    # A soft mask whose 0.5 crossing is 4 px off (at x = 56) and blurred.
    x = np.arange(w, dtype=np.float32)
    prob = np.clip((x - 56) / 8 + 0.5, 0, 1)[None, :].repeat(h, 0)
    before = iou(prob > 0.5, truth)
    after = iou(refine_guided(prob, guide, radius=6, eps=1e-3) > 0.5, truth)
    assert before < 0.96 and after > before and after > 0.98


def test_colour_and_grey_guided_filters_agree_on_a_grey_guide():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 255, (30, 40)).astype(np.uint8)
    p = rng.random((30, 40)).astype(np.float32)
    grey = guided_filter(g, p, 2, 1e-2)
    colour = guided_filter(np.repeat(g[..., None], 3, axis=2), p, 2, 3e-2)
    # A colour guide of three identical channels is a grey guide with 3x the variance.
    assert np.allclose(grey, colour, atol=2e-2)


def test_a_flat_window_is_one_near_0_or_near_1_and_a_sharp_step_is_not_flat():
    p = np.zeros((40, 40), np.float32)
    p[:, 20:] = 1.0  # a step with no value in between: still an edge
    p[5, 5] = 0.004  # within the tolerance of 0
    flat = ~not_flat(p, 2)
    assert flat[:, :18].all() and flat[:, 22:].all()
    assert not flat[:, 18:22].any()


@pytest.mark.parametrize("grey", [False, True])
def test_solving_the_guided_filter_only_off_the_flat_areas_gives_the_same_mask(grey: bool):
    """Where the probability is flat around a pixel, the filter's own slope is next to
    nothing; solving only elsewhere must not move the mask, and barely the soft values."""
    rng = np.random.default_rng(3)
    h, w = 90, 130
    photo = rng.integers(0, 255, (h, w, 3)).astype(np.uint8)
    photo[20:70, 30:100] //= 3  # a dark object in texture
    guide = photo[..., 0] if grey else photo
    object_ = np.zeros((h, w), np.float32)
    object_[22:68, 34:98] = 1.0
    prob = cv2.GaussianBlur(object_, (0, 0), 3.0)
    where = not_flat(prob, 4)
    assert 0.1 < where.mean() < 0.7  # the edge's band, not all or nothing
    whole = guided_filter(guide, prob, 4, 1e-3)
    banded = guided_filter(guide, prob, 4, 1e-3, where=where)
    assert np.array_equal(whole > 0.5, banded > 0.5)
    assert np.abs(whole - banded).max() < 0.05
    assert np.allclose(whole[where], banded[where], atol=0.05)


def test_a_click_beyond_the_objects_frame_keeps_no_region_of_its_own():
    """clean_mask works on the foreground's bounding box; a click outside it must not be
    clamped onto the box's edge, where region B lies."""
    m = np.zeros((100, 100), bool)
    m[20:40, 20:40] = True  # A
    m[50:70, 50:70] = True  # B, in the bounding box's bottom-right corner
    out = clean_mask(m, [Point(30.5, 30.5), Point(95.5, 95.5)], min_area=16)
    assert out[20:40, 20:40].all() and not out[50:70, 50:70].any()


def test_cleaning_the_objects_frame_decides_as_cleaning_the_whole_image():
    """The whole-image computation (the two steps on the full mask) is the reference."""
    rng = np.random.default_rng(11)
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(8, 70, 2))
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(0, 4))):
            cv2.circle(m, (int(rng.integers(-5, w + 5)), int(rng.integers(-5, h + 5))),
                       int(rng.integers(1, 20)), 1, -1)
        mask = m.astype(bool) ^ (rng.random((h, w)) < rng.choice([0.0, 0.02, 0.06]))
        points = [Point(float(rng.uniform(-3, w + 3)), float(rng.uniform(-3, h + 3)),
                        bool(rng.random() < 0.6)) for _ in range(int(rng.integers(0, 4)))]
        box = None
        if rng.random() < 0.3:
            box = Box(*(float(v) for v in rng.uniform(-5, max(h, w) + 5, 4)))
        area = int(rng.integers(1, 50))
        whole = remove_small(keep_prompted_regions(mask, points, box), area, protect=points)
        assert np.array_equal(clean_mask(mask, points, box, min_area=area), whole)


def test_cleaning_a_fragmented_mask_decides_as_the_two_steps():
    """Larger masks in many pieces, as a weak model gives on a photo: many regions kept,
    many dropped, holes large and small (clean_mask picks them out by other means then)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(120, 260, 2))
        blobs = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
        mask = blobs > np.quantile(blobs, float(rng.uniform(0.3, 0.8)))
        points = [Point(float(rng.uniform(0, w)), float(rng.uniform(0, h)),
                        bool(rng.random() < 0.7)) for _ in range(int(rng.integers(1, 12)))]
        area = int(rng.integers(4, 400))
        whole = remove_small(keep_prompted_regions(mask, points), area, protect=points)
        assert np.array_equal(clean_mask(mask, points, min_area=area), whole)


def test_a_small_region_is_kept_when_every_region_is_clicked():
    m = np.zeros((60, 60), bool)
    m[5:30, 5:30] = True
    m[50:52, 50:52] = True  # 4 pixels, under min_area, but clicked
    out = clean_mask(m, [Point(10.5, 10.5), Point(50.5, 50.5)], min_area=16)
    assert np.array_equal(out, m)


@pytest.mark.parametrize("count", [0, 1, FEW_LABELS, FEW_LABELS + 1, 20])
def test_pixels_labelled_is_the_lookup_of_the_chosen_labels(count):
    rng = np.random.default_rng(count)
    labels = rng.integers(0, 24, (40, 50)).astype(np.int32)
    for chosen_ones in (count, 24 - count):  # few chosen, or few left out
        chosen = np.zeros(24, bool)
        chosen[rng.choice(24, min(chosen_ones, 24), replace=False)] = True
        assert np.array_equal(pixels_labelled(labels, chosen), chosen[labels])


# The one-region layers take a shortcut past connectedComponentsWithStats; these pin that
# the shortcut decides as the general case does.
def test_a_lone_pinhole_in_a_mask_that_covers_the_border_is_filled():
    m = np.ones((60, 80), bool)
    m[30:32, 40:42] = False  # the only background region, and it touches no border
    assert remove_small(m, min_area=16).all()
    m[30:40, 40:50] = False  # 100 px: a real hole, kept
    assert not remove_small(m, min_area=16)[30:40, 40:50].any()


def test_a_lone_small_speck_is_dropped_unless_clicked():
    m = np.zeros((60, 80), bool)
    m[10:12, 10:12] = True  # the only foreground region
    assert not remove_small(m, min_area=16).any()
    assert remove_small(m, min_area=16, protect=[Point(10.5, 10.5)])[10:12, 10:12].all()


def test_every_region_clicked_keeps_them_all():
    a = disc_mask(50, 50, 20, 120, 200)
    b = disc_mask(150, 60, 20, 120, 200)
    kept = keep_prompted_regions(a | b, [Point(50, 50), Point(150, 60)])
    assert (kept == (a | b)).all()


@pytest.mark.parametrize("density", [0.0005, 0.05, 0.3, 0.6])
def test_region_areas_count_every_label_exactly(density):
    layer = (np.random.default_rng(3).random((240, 427)) < density).astype(np.uint8)
    n, labels = cv2.connectedComponents(layer, connectivity=8)
    assert n > 2
    assert region_areas(layer, labels, n).tolist() == np.bincount(labels.ravel()).tolist()


def test_region_areas_of_one_region_and_its_outside():
    layer = disc_mask(50, 50, 20, 120, 200).astype(np.uint8)
    n, labels = cv2.connectedComponents(layer, connectivity=8)
    assert n == 2
    assert region_areas(layer, labels, n).tolist() == np.bincount(labels.ravel()).tolist()
