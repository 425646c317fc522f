import cv2
import numpy as np
import pytest

from maskweb.segment.classical import GrabCutSegmenter
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
