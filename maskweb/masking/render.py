"""From a prompt log to a mask: decoding with the previous mask fed back, and the mask frames.

The decoder is fed each prompt in turn with the previous prediction (that is how refinement
builds on the last mask), so a log of n prompts is n decodes. Predictions are kept per prompt
prefix in an in-process LRU bounded in bytes: a new click on top of the last one is a single
decode, an undo is a cache hit.

``latest_only`` is for a live socket that fell behind (prompts arrived while it decoded): the
prompts since the last computed prediction are decoded in ONE step on top of it, instead of
one decode each. A from-scratch replay (nothing cached) still walks the whole chain.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image

from maskweb.masking import embeddings, engine
from maskweb.masking.lru import ByteLRU
from maskweb.masking.models import MaskObject, MaskSession
from maskweb.masking.prompts import engine_prompts, to_upright
from maskweb.photos.models import Photo
from maskweb.segment.orientation import to_stored
from maskweb.segment.types import Prediction


class EmbeddingMissing(Exception):
    """The photo has no embedding for the session's model (not encoded yet, or lost)."""


def prediction_bytes(prediction: Prediction) -> int:
    masks = sum(c.mask.nbytes for c in prediction.candidates)
    return masks + (prediction.feedback.nbytes if prediction.feedback is not None else 0)


# Per prompt prefix: a new click on top of the last one is one decode, an undo a cache hit.
predictions: ByteLRU[Prediction] = ByteLRU(lambda: settings.PREDICTION_CACHE_BYTES,
                                           prediction_bytes)


def prefix_digests(stored_prompts: list[dict[str, Any]]) -> list[str]:
    """One short key per prefix of the prompt log (the i-th names prompts[:i + 1]), chained
    so that n prompts cost O(n), not the O(n^2) of writing out every prefix."""
    chain = hashlib.blake2b(digest_size=16)
    digests = []
    for prompt in stored_prompts:
        chain.update(json.dumps(prompt, sort_keys=True).encode())
        chain.update(b"\n")
        digests.append(chain.copy().hexdigest())
    return digests


def predict(session: MaskSession, stored_prompts: list[dict[str, Any]],
            latest_only: bool = False) -> Prediction | None:
    """The prediction for these prompts (None when there are none).

    Raises EmbeddingMissing when the embedding is neither here nor in Redis.
    """
    if not stored_prompts:
        return None
    photo = session.photo
    key = embeddings.embedding_key(photo, session.model_id)
    prefixes = prefix_digests(stored_prompts)
    start, previous = 0, None
    for i in range(len(prefixes), 0, -1):
        hit = predictions.get((key, prefixes[i - 1]))
        if hit is not None:
            start, previous = i, hit
            break
    if start == len(prefixes):
        return previous
    embedding = embeddings.load(key)
    if embedding is None:
        raise EmbeddingMissing(key)
    if latest_only and start > 0:
        start = len(prefixes) - 1
    for i in range(start, len(prefixes)):
        previous = engine.decode(session.model_id, embedding,
                                 engine_prompts(stored_prompts[: i + 1], photo), previous)
        predictions.put((key, prefixes[i]), previous)
    return previous


@dataclass
class CurrentMask:
    """The current object's mask at the work size, upright, with what the page shows."""

    mask: np.ndarray | None
    candidate: int
    scores: list[float]


def current_mask(session: MaskSession, obj: MaskObject,
                 latest_only: bool = False) -> CurrentMask:
    prediction = predict(session, obj.effective_prompts(), latest_only)
    if prediction is None or not prediction.candidates:
        return CurrentMask(None, 0, [])
    index = min(obj.candidate, len(prediction.candidates) - 1)
    mask = np.asarray(prediction.candidates[index].mask, dtype=bool)
    photo = session.photo
    if mask.shape != (photo.work_height, photo.work_width):
        mask = resize_mask(mask, photo.work_width, photo.work_height)
    return CurrentMask(mask, index, [round(float(c.score), 4) for c in prediction.candidates])


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear on the 0/1 mask, threshold at one half: smooth edges instead of stair steps."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)) >= 128


def png_bytes(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buf, format="PNG",
                                                               compress_level=3)
    return buf.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) >= 128


def bbox(mask: np.ndarray | None) -> list[int] | None:
    if mask is None or not mask.any():
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def stored_full_mask(photo: Photo, work_mask: np.ndarray) -> np.ndarray:
    """A work-size upright mask -> the stored grid at full resolution (for downloads)."""
    stored = np.ascontiguousarray(to_stored(work_mask, photo.orientation))
    if stored.shape != (photo.stored_height, photo.stored_width):
        stored = resize_mask(stored, photo.stored_width, photo.stored_height)
    return stored


def stored_area(photo: Photo, work_mask: np.ndarray) -> int:
    scale = (photo.stored_width * photo.stored_height) / (photo.work_width * photo.work_height)
    return int(round(int(work_mask.sum()) * scale))


def mask_header(session: MaskSession, obj: MaskObject, current: CurrentMask,
                request_id: str | None) -> dict[str, Any]:
    photo = session.photo
    return {
        "type": "mask", "v": 1, "seq": session.revision, "id": request_id,
        "object_id": obj.number, "width": photo.work_width, "height": photo.work_height,
        "candidate": current.candidate, "scores": current.scores, "bbox": bbox(current.mask),
        "prompts": [to_upright(p, photo) for p in obj.effective_prompts()],
        "can_undo": obj.can_undo, "can_redo": obj.can_redo,
        "empty": current.mask is None,
    }


def mask_frame(header: dict[str, Any], png: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(head)) + head + png


def split_frame(frame: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack(">I", frame[:4])
    return json.loads(frame[4:4 + length]), frame[4 + length:]
