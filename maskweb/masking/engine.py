"""The one place the web app talks to the segmentation engine (maskweb.segment).

Models are loaded once per process and kept: a worker keeps its encoder sessions warm, a web
process its decoders.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from maskweb.segment.types import Embedding, Prediction, Prompts, Segmenter


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str


_lock = threading.Lock()
_loaded: dict[str, Segmenter] = {}


def _registry() -> Any:
    from maskweb.segment import registry  # the engine: imported late, it loads onnxruntime

    return registry


def installed_models() -> list[ModelInfo]:
    infos = []
    for item in _registry().list_models():
        if isinstance(item, str):
            infos.append(ModelInfo(item, item))
            continue
        model_id = getattr(item, "id", None) or getattr(item, "model_id", None) or str(item)
        name = getattr(item, "name", None) or getattr(item, "title", None) or model_id
        infos.append(ModelInfo(str(model_id), str(name)))
    return infos


def default_model() -> str:
    configured = settings.DEFAULT_MODEL
    if configured:
        return str(configured)
    return str(_registry().default_model_id())


def is_installed(model_id: str) -> bool:
    return any(info.id == model_id for info in installed_models())


def segmenter(model_id: str) -> Segmenter:
    with _lock:
        model = _loaded.get(model_id)
        if model is None:
            model = _registry().load_model(model_id)
            _loaded[model_id] = model
        return model


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
    from maskweb.segment.embedding import embedding_to_bytes as to_bytes

    return bytes(to_bytes(embedding, dtype="float16"))


def embedding_from_bytes(data: bytes) -> Embedding:
    from maskweb.segment.embedding import embedding_from_bytes as from_bytes

    result: Embedding = from_bytes(data)
    return result
