"""ONNX model families (sam, sam2, segnext): being written; see the engine branch history."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from maskweb.segment.descriptor import ModelDescriptor
from maskweb.segment.types import Embedding, Prediction, Prompts


class OnnxSegmenter:
    def __init__(self, descriptor: ModelDescriptor) -> None:
        self.model_id = descriptor.id
        raise NotImplementedError(f"ONNX family {descriptor.family!r} is not wired in yet")

    def encode(self, image: np.ndarray,
               progress: Callable[[float], None] | None = None) -> Embedding:
        raise NotImplementedError

    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        raise NotImplementedError
