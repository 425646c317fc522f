import cv2
import numpy as np
import pytest

from maskweb.segment.classical import (
    GrabCutSegmenter,
    grabcut_near_foreground,
    refine_with_grabcut,
)
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.types import Box, Point, Prompts, Stroke
from tests.segment.synthetic import disc_mask, iou, paint, textured_background

cv2.setNumThreads(1)

DISC = disc_mask(120.0, 110.0, 60.0)


@pytest.fixture(scope="module")
def engine():
    return GrabCutSegmenter()


@pytest.fixture(scope="module")
def photo():
    return paint(textured_background(), DISC, (220, 40, 40))


def test_click_inside_disc_selects_the_disc(engine, photo):
    emb = engine.encode(photo)
    pred = engine.decode(emb, Prompts(points=(Point(120.5, 110.5),)))
    mask = pred.best.mask
    assert mask.dtype == bool and mask.shape == photo.shape[:2]
    assert iou(mask, DISC) > 0.9


def test_box_around_disc_selects_the_disc(engine, photo):
    emb = engine.encode(photo)
    pred = engine.decode(emb, Prompts(box=Box(185, 175, 55, 45)))  # corners in any order
    assert iou(pred.best.mask, DISC) > 0.9


def test_stroke_inside_disc_selects_the_disc(engine, photo):
    emb = engine.encode(photo)
    stroke = Stroke(points=((100.0, 100.0), (140.0, 120.0)), radius=6.0)
    assert iou(engine.decode(emb, Prompts(strokes=(stroke,))).best.mask, DISC) > 0.9


def test_grabcut_has_no_score_of_its_own(engine, photo):
    # It used to say 1.00 on every mask, also on one at IoU 0.07.
    emb = engine.encode(photo)
    assert engine.decode(emb, Prompts(points=(Point(120.5, 110.5),))).best.score is None


def test_a_stroke_is_certain_foreground_across_its_whole_width(engine):
    # A stroke that crosses from the red disc onto the background: grabCut's colours would
    # drop the background part, but the user painted it.
    photo = paint(textured_background(), DISC, (220, 40, 40))
    stroke = Stroke(points=((120.0, 110.0), (230.0, 110.0)), radius=5.0)
    emb = engine.encode(photo)
    mask = engine.decode(emb, Prompts(strokes=(stroke,))).best.mask
    assert mask[107:114, 120:229].all()
    assert iou(mask & DISC, DISC) > 0.9


def test_a_short_stroke_on_a_small_object_does_not_swallow_its_surroundings(engine):
    # The prior of a stroke is its band grown by a brush width, not a tenth of the photo
    # around each of its samples.
    small = disc_mask(120.0, 110.0, 18.0)
    photo = paint(textured_background(), small, (220, 40, 40))
    stroke = Stroke(points=((110.0, 110.0), (130.0, 110.0)), radius=4.0)
    mask = engine.decode(engine.encode(photo), Prompts(strokes=(stroke,))).best.mask
    assert iou(mask, small) > 0.8


def test_background_click_removes_region(engine):
    # Two touching red objects: a disc and a bar to its right. A click on the disc takes
    # both (same colour, connected); a background click on the bar removes the bar.
    bar = np.zeros_like(DISC)
    bar[95:125, 170:330] = True
    photo = paint(textured_background(seed=3), DISC | bar, (220, 40, 40))
    emb = engine.encode(photo)
    first = engine.decode(emb, Prompts(points=(Point(120, 110), Point(250, 110))))
    assert first.best.mask[bar].mean() > 0.9
    prompts = Prompts(points=(Point(120, 110), Point(250, 110, False)))
    second = engine.decode(emb, prompts, previous=first)
    assert second.best.mask[:, 200:][bar[:, 200:]].mean() < 0.1
    assert iou(second.best.mask, DISC) > 0.85


def test_empty_prompts_give_an_empty_mask(engine, photo):
    emb = engine.encode(photo)
    pred = engine.decode(emb, Prompts())
    assert not pred.best.mask.any() and pred.best.mask.shape == photo.shape[:2]


def test_embedding_survives_serialisation_and_gives_the_same_mask(engine, photo):
    emb = engine.encode(photo)
    back = embedding_from_bytes(embedding_to_bytes(emb))
    p = Prompts(points=(Point(120, 110),))
    assert (engine.decode(back, p).best.mask == engine.decode(emb, p).best.mask).all()


def test_coordinates_are_full_resolution_pixels_on_a_large_photo(engine):
    # 4x the size: the working resolution is smaller than the photo; a click must still land
    # on the disc in full-resolution pixels and the mask must be full resolution.
    big_disc = disc_mask(480.0, 440.0, 240.0, 960, 1440)
    photo = paint(textured_background(960, 1440, seed=5), big_disc, (30, 200, 60))
    emb = engine.encode(photo)
    mask = engine.decode(emb, Prompts(points=(Point(480, 440),))).best.mask
    assert mask.shape == (960, 1440)
    assert iou(mask, big_disc) > 0.9


def test_progress_is_reported(engine, photo):
    seen = []
    engine.encode(photo, progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_bad_images_are_refused(engine):
    with pytest.raises(ValueError):
        engine.encode(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        engine.encode(np.zeros((10, 10, 5), np.uint8))


def test_embedding_of_another_model_is_refused(engine, photo):
    emb = engine.encode(photo)
    emb.model_id = "other"
    with pytest.raises(ValueError):
        engine.decode(emb, Prompts(points=(Point(1, 1),)))


def test_same_prompts_give_the_same_mask_whatever_ran_before(engine, photo):
    emb = engine.encode(photo)
    p = Prompts(points=(Point(120, 110),))
    first = engine.decode(emb, p).best.mask
    engine.decode(emb, Prompts(points=(Point(30, 30), Point(300, 200, False))))
    cv2.randu(np.zeros((4, 4), np.float32), 0, 1)  # move OpenCV's RNG on
    assert (engine.decode(emb, p).best.mask == first).all()


# Two red discs far apart; the trimap (or the model) only says "probably the left one".
LEFT, RIGHT = disc_mask(70.0, 120.0, 35.0), disc_mask(300.0, 120.0, 35.0)


@pytest.fixture(scope="module")
def two_discs():
    return paint(textured_background(), LEFT | RIGHT, (220, 40, 40))


def test_grabcut_stays_near_the_foreground_it_was_given(two_discs):
    trimap = np.full(LEFT.shape, cv2.GC_PR_BGD, np.uint8)
    trimap[disc_mask(70.0, 120.0, 45.0)] = cv2.GC_PR_FGD
    whole = grabcut_near_foreground(two_discs, trimap.copy(), 2, None, 16)
    near = grabcut_near_foreground(two_discs, trimap.copy(), 2, 0.3, 16)
    # On the whole image the red colour model also claims the other disc; within the crop
    # around the given foreground it cannot, and the edge is found just as well.
    assert whole[RIGHT].mean() > 0.9
    assert near[RIGHT].sum() == 0
    assert iou(near, LEFT) > 0.9


def test_grabcut_refines_an_unsure_model_mask_to_the_object(two_discs):
    # What a small model says after one click: nowhere confident, a blob a little off the
    # object, and the rest of the photo far from certain background (p 0.3).
    prob = np.full(LEFT.shape, 0.3, np.float32)
    prob[disc_mask(78.0, 114.0, 30.0)] = 0.7
    mask = refine_with_grabcut(prob, two_discs, [Point(70, 120)], None)
    assert iou(mask, LEFT) > 0.9
    assert mask[RIGHT].sum() == 0


def test_grabcut_refinement_reaches_all_of_a_box(two_discs):
    # The model found only a sliver of the boxed object: the crop still spans the whole box.
    prob = np.full(LEFT.shape, 0.3, np.float32)
    prob[disc_mask(45.0, 120.0, 8.0)] = 0.7
    mask = refine_with_grabcut(prob, two_discs, [], Box(30, 80, 112, 162))
    assert iou(mask, LEFT) > 0.9


def test_grabcut_on_a_scaled_down_crop_keeps_the_answer_and_the_clicks(two_discs):
    trimap = np.full(LEFT.shape, cv2.GC_PR_BGD, np.uint8)
    trimap[disc_mask(70.0, 120.0, 45.0)] = cv2.GC_PR_FGD
    # A click on plain background, smaller than one pixel of the scaled-down crop.
    cv2.circle(trimap, (200, 40), 1, cv2.GC_FGD, -1)
    full = grabcut_near_foreground(two_discs, trimap.copy(), 2, None, 16)
    coarse = grabcut_near_foreground(two_discs, trimap.copy(), 2, None, 16, max_pixels=1500,
                                     edge_pass=False)
    fine = grabcut_near_foreground(two_discs, trimap.copy(), 2, None, 16, max_pixels=1500)
    assert full[40, 200] and coarse[40, 200] and fine[40, 200]
    # 1500 px is a 13% scale: the coarse edge is blocky, the edge pass puts it back where
    # grabCut at full resolution has it.
    assert 0.85 < iou(coarse, full) < 0.95
    assert iou(fine, full) > 0.98


def test_grabcut_that_keeps_next_to_nothing_gives_back_what_it_was_given():
    # A region with nothing to tell it from its surroundings: grabCut drops all of it.
    plain = textured_background(seed=3)
    given = disc_mask(180.0, 120.0, 30.0)
    trimap = np.full(given.shape, cv2.GC_PR_BGD, np.uint8)
    trimap[given] = cv2.GC_PR_FGD
    assert grabcut_near_foreground(plain, trimap.copy(), 2, 0.3, 16).sum() == 0
    kept = grabcut_near_foreground(plain, trimap.copy(), 2, 0.3, 16, collapse=0.15)
    assert (kept == given).all()


def test_one_click_offers_the_part_and_the_whole_where_they_differ():
    from maskweb.segment.interactive import InteractiveSegmenter

    # A disc, red on its left half and orange-red on its right: one object to grabCut's
    # colour models, two regions to the click's flood fill. A click on the left half.
    photo = paint(textured_background(), DISC, (220, 40, 40))
    yy, xx = np.mgrid[0:DISC.shape[0], 0:DISC.shape[1]]
    right = DISC & (xx >= 120)
    photo = paint(photo, right, (220, 80, 40), seed=2)
    seg = InteractiveSegmenter(GrabCutSegmenter())
    emb = seg.encode(photo)
    pred = seg.decode(emb, Prompts(points=(Point(95.5, 110.5),)))
    assert len(pred.candidates) == 2
    whole, part = (c.mask for c in pred.candidates)
    assert iou(whole, DISC) > 0.9 and iou(part, DISC & ~right) > 0.9 and part[110, 95]
    # On a disc of one colour the part is the whole: one candidate, nothing to cycle.
    plain = paint(textured_background(), DISC, (220, 40, 40))
    one = seg.decode(seg.encode(plain), Prompts(points=(Point(120.5, 110.5),)))
    assert len(one.candidates) == 1
