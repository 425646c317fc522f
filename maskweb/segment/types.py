"""The contract between the segmentation engine and everything that uses it.

Coordinate convention: every ``x, y`` here is continuous, in pixels of the image array that
was passed to :meth:`Segmenter.encode`: x to the right, y down, pixel (column c, row r) covers
[c, c+1) x [r, r+1), so the centre of that pixel is (c + 0.5, r + 0.5). The web app hands the
engine the *upright* photo (EXIF orientation applied) and converts to the stored pixel grid
itself with :mod:`maskweb.segment.orientation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Point:
    """A click. ``positive`` is foreground (click), False is background (shift+click)."""

    x: float
    y: float
    positive: bool = True


@dataclass(frozen=True)
class Box:
    """A dragged rectangle, corners in any order (normalised by :meth:`ordered`)."""

    x0: float
    y0: float
    x1: float
    y1: float

    def ordered(self) -> Box:
        return Box(min(self.x0, self.x1), min(self.y0, self.y1),
                   max(self.x0, self.x1), max(self.y0, self.y1))


@dataclass(frozen=True)
class Stroke:
    """A brush stroke: a polyline and the brush radius in pixels.

    Every engine takes the pixels it covers as the user's answer for them (foreground, or
    background when ``positive`` is False). Point-prompted models also get points along
    it, resampled by arc length as darktable's object tool does: about one per brush
    diameter, 3 to 32 a stroke (:func:`maskweb.segment.prompts.resample_stroke`).
    """

    points: tuple[tuple[float, float], ...]
    radius: float
    positive: bool = True


@dataclass(frozen=True)
class Prompts:
    """Everything the user has said about the current object, oldest first."""

    points: tuple[Point, ...] = ()
    box: Box | None = None
    strokes: tuple[Stroke, ...] = ()

    def is_empty(self) -> bool:
        return not self.points and self.box is None and not self.strokes


@dataclass
class Embedding:
    """What the encoder computed once per photo; the decoder reuses it for every prompt.

    ``arrays`` holds the model's named tensors (e.g. ``image_embeddings``); ``meta`` holds
    small JSON-able facts needed to map coordinates (original and resized sizes, padding).
    ``image_size`` is (height, width) of the array given to ``encode``.
    Serialisation (``to_bytes`` / ``from_bytes``) never uses pickle.
    """

    model_id: str
    image_size: tuple[int, int]
    arrays: dict[str, np.ndarray]
    meta: dict[str, object] = field(default_factory=dict)


@dataclass
class Candidate:
    """One possible mask for the prompts.

    ``mask`` is bool (H, W) at the encoded image's full resolution; ``score`` is the
    model's own quality estimate (higher is better, roughly an IoU in 0..1), or None for an
    engine that has none (grabCut): a made-up number would tell the user nothing.
    """

    mask: np.ndarray
    score: float | None


@dataclass
class Prediction:
    """The decoder's answer: candidates best first, plus what to feed back next time.

    ``feedback`` is the model-specific previous-mask input (e.g. SAM's 256x256 low-res
    logits, SegNext's 1024x1024 probabilities: the sigmoid of its logits); pass the whole
    Prediction back as ``previous``.
    """

    candidates: list[Candidate]
    feedback: np.ndarray | None = None
    # The prompts this prediction answers, where the engine records them (the interactive
    # wrapper does): the next decode tells from them which prompt is new.
    prompts: Prompts | None = None

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@runtime_checkable
class Segmenter(Protocol):
    """A loaded model. Built once per process; ``decode`` is safe to call from threads."""

    model_id: str

    def encode(self, image: np.ndarray,
               progress: Callable[[float], None] | None = None) -> Embedding:
        """``image``: uint8 RGB (H, W, 3). Heavy (seconds on CPU): run it in the worker.

        ``progress`` (optional) is called with a fraction 0..1 as the work advances.
        """
        ...

    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        """Light (tens of ms): run it per prompt, off the event loop."""
        ...
