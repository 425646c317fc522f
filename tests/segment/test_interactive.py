"""The interactive wrapper holds any engine to what the user said (maskweb.segment.interactive).

A scripted engine stands in for a model's whims (it answers each decode with the mask the
test gives it), so each rule is checked against the exact mistake it is there to stop; the
last tests run the real grabCut engine and the registry behind it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from maskweb.segment.classical import GrabCutSegmenter
from maskweb.segment.interactive import (
    ClickPolicy,
    InteractiveSegmenter,
    engine_variant,
    wrap,
)
from maskweb.segment.registry import build_model
from maskweb.segment.types import Candidate, Embedding, Point, Prediction, Prompts, Stroke
from tests.segment.synthetic import disc_mask, paint, textured_background

H, W = 120, 200


class Scripted:
    """A Segmenter whose decode returns what ``answer(prompts)`` says."""

    model_id = "scripted"

    def __init__(self, answer: Callable[[Prompts], list[tuple[np.ndarray, float | None]]]):
        self.answer = answer
        self.calls: list[Prompts] = []

    def encode(self, image: np.ndarray, progress: Callable[[float], None] | None = None
               ) -> Embedding:
        return Embedding(self.model_id, image.shape[:2], {})

    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        self.calls.append(prompts)
        return Prediction([Candidate(m.copy(), s) for m, s in self.answer(prompts)],
                          feedback=None)


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


EMB = Embedding("scripted", (H, W), {})
OBJECT = rect(30, 90, 40, 120)          # the object the user wants
WRONG = rect(30, 90, 120, 160)          # a look-alike part next to it (the log, the water)


def two_steps(answers: list[np.ndarray], second: Point,
              policy: ClickPolicy | None = None) -> tuple[Prediction, Prediction]:
    """A first click at the object's centre, then ``second``; the engine answers in turn."""
    queue = list(answers)
    seg = InteractiveSegmenter(Scripted(lambda _p: [(queue.pop(0), 0.9)]), policy)
    first = seg.decode(EMB, Prompts(points=(Point(80.5, 60.5),)))
    after = seg.decode(EMB, Prompts(points=(Point(80.5, 60.5), second)), first)
    return first, after


def test_a_background_click_removes_the_part_it_landed_on_not_the_object():
    # The model answers the background click on the look-alike part by dropping everything
    # but a sliver: the wrapper takes only its change where the click is.
    sliver = rect(30, 40, 40, 60)
    first, after = two_steps([OBJECT | WRONG, sliver], Point(140.5, 60.5, positive=False),
                             ClickPolicy(merge="local", claim=0.6))
    mask = after.best.mask
    assert not mask[60, 140]                      # the clicked spot is out
    assert mask[OBJECT].mean() > 0.98             # the object stays
    assert mask[WRONG].mean() < 0.05              # the wrong part it landed on is gone


def test_without_the_wrapper_the_same_model_answer_would_lose_the_object():
    sliver = rect(30, 40, 40, 60)
    _, after = two_steps([OBJECT | WRONG, sliver], Point(140.5, 60.5, positive=False),
                         ClickPolicy(merge="none"))
    assert after.best.mask[OBJECT].mean() < 0.1  # what the rule above is there to stop


def test_a_foreground_click_adds_the_part_under_it_without_flooding_elsewhere():
    body = rect(30, 90, 40, 100)
    leg = rect(90, 118, 60, 70)
    flood = rect(0, 20, 0, 200)  # the model also grabs the sky, far from the click
    _, after = two_steps([body, body | leg | flood], Point(65.5, 105.5))
    mask = after.best.mask
    assert mask[leg].all() and mask[body].all()
    assert not mask[flood].any()


def test_earlier_clicks_keep_their_label_whatever_the_model_says():
    # Third click: the model answers with a mask that drops the first (positive) click's
    # spot and takes in the second (negative) click's spot.
    queue = [OBJECT, OBJECT, rect(0, 120, 100, 200)]
    seg = InteractiveSegmenter(Scripted(lambda _p: [(queue.pop(0), None)]),
                               ClickPolicy(merge="hard"))
    clicks = (Point(80.5, 60.5), Point(140.5, 60.5, positive=False), Point(110.5, 100.5))
    pred = None
    for k in range(1, 4):
        pred = seg.decode(EMB, Prompts(points=clicks[:k]), pred)
    assert pred is not None
    mask = pred.best.mask
    assert mask[60, 80] and not mask[60, 140] and mask[100, 110]


@pytest.mark.parametrize("merge", ["hard", "refuse", "local"])
def test_a_click_the_model_ignores_still_acts_at_its_spot(merge):
    first, after = two_steps([OBJECT, OBJECT], Point(150.5, 20.5), ClickPolicy(merge=merge))
    assert after.best.mask[20, 150]
    assert after.best.mask[OBJECT].all()


def test_refuse_takes_the_whole_answer_unless_it_flips_an_earlier_click():
    far = rect(90, 110, 40, 100)  # joined to the object, away from the new click
    right = rect(30, 90, 120, 150)
    _, after = two_steps([OBJECT, OBJECT | right | far], Point(130.5, 60.5),
                         ClickPolicy(merge="refuse"))
    assert after.best.mask[100, 50]  # nothing flipped: the far change is taken too
    _, after = two_steps([OBJECT, right | far], Point(130.5, 60.5), ClickPolicy(merge="refuse"))
    # The answer drops the first click: only its change around the new click is taken.
    mask = after.best.mask
    assert mask[60, 80] and mask[60, 130] and not mask[100, 50]


def test_a_brush_stroke_is_foreground_for_every_engine():
    stroke = Stroke(((50.0, 60.0), (110.0, 60.0)), radius=6.0)
    seg = InteractiveSegmenter(Scripted(lambda _p: [(np.zeros((H, W), bool), 0.5)]))
    mask = seg.decode(EMB, Prompts(strokes=(stroke,))).best.mask
    assert mask[55:66, 50:110].all()
    erase = Stroke(((50.0, 60.0), (110.0, 60.0)), radius=6.0, positive=False)
    seg = InteractiveSegmenter(Scripted(lambda _p: [(OBJECT, 0.5)]))
    mask = seg.decode(EMB, Prompts(points=(Point(80.5, 40.5),), strokes=(erase,))).best.mask
    assert not mask[56:65, 51:109].any() and mask[35:45, 45:115].all()


def test_a_stroke_alone_keeps_the_mask_near_the_stroke():
    stroke = Stroke(((60.0, 60.0), (100.0, 60.0)), radius=5.0)
    everything = np.ones((H, W), bool)
    seg = InteractiveSegmenter(Scripted(lambda _p: [(everything, 0.5)]))
    mask = seg.decode(EMB, Prompts(strokes=(stroke,))).best.mask
    # The strokes' box grown by four brush radii (stroke_reach 0): x 40..120, y 40..80.
    assert mask[45:75, 45:115].all()
    assert not mask[:, :35].any() and not mask[:, 125:].any() and not mask[:30].any()


def test_the_same_mask_twice_is_one_candidate_and_no_score_stays_none():
    seg = InteractiveSegmenter(Scripted(lambda _p: [(OBJECT, None), (OBJECT.copy(), None),
                                                    (WRONG, None)]))
    pred = seg.decode(EMB, Prompts(points=(Point(80.5, 60.5),)))
    assert len(pred.candidates) == 2
    assert [c.score for c in pred.candidates] == [None, None]


def test_reprompting_keeps_going_only_while_the_score_improves():
    scores = iter([0.5, 0.7, 0.6, 0.9])
    inner = Scripted(lambda _p: [(OBJECT, next(scores))])
    seg = InteractiveSegmenter(inner, ClickPolicy(reprompt=3))
    pred = seg.decode(EMB, Prompts(points=(Point(80.5, 60.5),)))
    assert len(inner.calls) == 3  # 0.5, then 0.7 (taken), then 0.6 (worse: stop)
    assert pred.best.score == pytest.approx(0.7)
    again = inner.calls[1]
    assert again.box is not None and len(again.points) == 2
    # The added point is the mask's deepest point; the box is the mask's bounding box.
    assert (again.box.x0, again.box.y0, again.box.x1, again.box.y1) == (40, 30, 120, 90)
    assert 60 <= again.points[1].x <= 100 and 50 <= again.points[1].y <= 70


def test_no_reprompting_for_an_engine_without_scores():
    inner = Scripted(lambda _p: [(OBJECT, None)])
    InteractiveSegmenter(inner, ClickPolicy(reprompt=3)).decode(
        EMB, Prompts(points=(Point(80.5, 60.5),)))
    assert len(inner.calls) == 1


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="merge"):
        ClickPolicy(merge="magic")
    with pytest.raises(ValueError, match="focus"):
        ClickPolicy(focus=0.0)


def test_the_engine_variant_switch(monkeypatch):
    bare = GrabCutSegmenter()
    monkeypatch.delenv("MASKWEB_ENGINE_VARIANT", raising=False)
    assert engine_variant() == "interactive"
    assert isinstance(wrap(bare), InteractiveSegmenter)
    assert isinstance(build_model("grabcut"), InteractiveSegmenter)
    monkeypatch.setenv("MASKWEB_ENGINE_VARIANT", "plain")
    assert wrap(bare) is bare
    assert isinstance(build_model("grabcut"), GrabCutSegmenter)
    monkeypatch.setenv("MASKWEB_ENGINE_VARIANT", "fast")
    with pytest.raises(ValueError, match="MASKWEB_ENGINE_VARIANT"):
        engine_variant()


def test_grabcut_behind_the_wrapper_keeps_every_click_and_builds_on_what_was_shown():
    truth = disc_mask(180.0, 120.0, 60.0)
    photo = paint(textured_background(), truth, (220, 40, 40))
    seg = InteractiveSegmenter(GrabCutSegmenter())
    emb = seg.encode(photo)
    clicks = (Point(180.5, 120.5), Point(20.5, 20.5, positive=False), Point(200.5, 150.5))
    pred = None
    for k in range(1, 4):
        pred = seg.decode(emb, Prompts(points=clicks[:k]), pred)
        assert pred is not None and pred.best.score is None
        for p in clicks[:k]:
            assert pred.best.mask[int(p.y), int(p.x)] == p.positive
    assert pred is not None
    # The feedback is the mask the user saw, at grabCut's working size.
    assert pred.feedback is not None and pred.feedback.shape == emb.arrays["work"].shape[:2]
    inter = (pred.best.mask & truth).sum() / (pred.best.mask | truth).sum()
    assert inter > 0.9


def test_each_model_gets_its_own_policy_and_a_bad_one_is_refused():
    from maskweb.segment.interactive import policy_for

    assert policy_for(GrabCutSegmenter()) == ClickPolicy()
    bundled = build_model("litemedsam-photo")
    assert isinstance(bundled, InteractiveSegmenter)
    assert bundled.policy.reprompt == 2 and bundled.policy.claim == 1.0

    class Odd(Scripted):
        click_policy = {"merge": "local", "speed": "fast"}

    with pytest.raises(ValueError, match="bad click policy"):
        policy_for(Odd(lambda _p: []))


def test_reprompting_is_for_a_first_single_click_only():
    # A log of several clicks decoded from scratch (the app does that for a click decoded
    # alongside the one before it) is not re-prompted: it tripled those decodes' time.
    inner = Scripted(lambda _p: [(OBJECT, 0.5)])
    seg = InteractiveSegmenter(inner, ClickPolicy(reprompt=3))
    seg.decode(EMB, Prompts(points=(Point(80.5, 60.5), Point(150.5, 20.5, positive=False))))
    assert len(inner.calls) == 1
