"""The one place the web app talks to the segmentation engine (maskweb.segment).

Models are loaded once per process and kept: a worker keeps its encoder sessions warm, a web
process its decoders.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable

import numpy as np
from django.conf import settings

from maskweb.segment import embedding as embedding_bytes
from maskweb.segment import registry
from maskweb.segment.registry import ModelInfo
from maskweb.segment.types import Embedding, Prediction, Prompts, Segmenter

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, Segmenter] = {}


def installed_models() -> list[ModelInfo]:
    return registry.list_models()


def default_model() -> str:
    configured = settings.DEFAULT_MODEL
    if configured:
        return str(configured)
    return str(registry.default_model_id())


def is_installed(model_id: str) -> bool:
    return any(info.id == model_id for info in installed_models())


def segmenter(model_id: str) -> Segmenter:
    with _lock:
        model = _loaded.get(model_id)
        if model is None:
            model = registry.load_model(model_id)
            _loaded[model_id] = model
        return model


def warm_up_default(part: str) -> None:
    """Runs the default model's decoder (a web process) or encoder (a worker) on dummy input
    when the process starts, for models that have such a step (ONNX), so the first click or
    photo is as fast as the next. MASKWEB_WARM_UP=0 turns it off. A model that cannot start
    is logged here and fails again, with a message, where it is used."""
    if not settings.WARM_UP:
        return
    model_id = default_model()
    try:
        warm = getattr(segmenter(model_id), "warm_up", None)
        if callable(warm):
            warm(part)
    except Exception:
        log.warning("warming up the %s of %s failed", part, model_id, exc_info=True)


def one_thread_per_decode() -> None:
    """For the web process, which runs one decode per core at a time
    (maskweb.masking.decoding.cores): OpenCV's own thread pool (as many threads as cores, for
    grabCut and the clean-up) on top of that oversubscribed the cores. With one OpenCV thread
    a grabCut decode took 32 ms instead of 43 ms alone, 39 instead of 46 ms two at once, and
    two threads decoded 30.0 clicks a second instead of 22.8 (the same 96 decodes, one
    machine). The worker keeps OpenCV's threads: it encodes one photo at a time."""
    import cv2

    cv2.setNumThreads(1)


def encode(model_id: str, image: np.ndarray,
           progress: Callable[[float], None] | None = None) -> Embedding:
    model = segmenter(model_id)
    if progress is not None and "progress" in inspect.signature(model.encode).parameters:
        return model.encode(image, progress=progress)
    return model.encode(image)


def decode(model_id: str, embedding: Embedding, prompts: Prompts,
           previous: Prediction | None) -> Prediction:
    return segmenter(model_id).decode(embedding, prompts, previous=previous)


def embedding_to_bytes(embedding: Embedding) -> bytes:
    """float16 in Redis: half the bytes; masks match float32 at IoU 0.9999 (bench notes)."""
    return embedding_bytes.embedding_to_bytes(embedding, dtype="float16")


def embedding_from_bytes(data: bytes) -> Embedding:
    return embedding_bytes.embedding_from_bytes(data)
