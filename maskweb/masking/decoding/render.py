"""From a prompt log to a mask: decoding with the previous mask fed back, and the mask frames.

The decoder is fed each prompt in turn with the previous prediction (that is how refinement
builds on the last mask), so a log of n prompts is n decodes. Predictions are kept per prompt
prefix in an in-process LRU bounded in bytes: a new click on top of the last one is a single
decode, an undo is a cache hit.

``latest_only`` is for a live socket that fell behind (prompts arrived while it decoded): the
prompts since the last computed prediction (or all of them, when nothing of this log was
decoded yet) are decoded in ONE step on top of it, instead of one decode each: nobody saw a
mask of them. (Walking the chain there, an overloaded server spent 14-20 s on each page's
first mask, one decode per prompt that had piled up meanwhile.) ``one_step`` does the same for
prompts that waited for an encode (150 prompts sent during an encode kept the worker busy 55 s,
one decode each). Otherwise a from-scratch replay (nothing cached, e.g. a page reconnecting
after a restart) walks the chain, so the mask is the one the person saw, but only the last
REPLAY_STEPS prompts one by one.

A click's decode starts before its prompt is committed (``prefetch``, called as the message
arrives and while the prompt is written) when a core is free; a prediction being decoded is
waited for, never decoded twice (``decoding``), so the render that follows picks up the
running decode. The decode cores themselves: maskweb.masking.decoding.cores; in the web
process each decode runs in a child process (maskweb.masking.decoding.decode_procs).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from PIL import Image

from maskweb.masking.decoding import decode_procs, embeddings, engine
from maskweb.masking.decoding.cores import Cores
from maskweb.masking.decoding.flight import SingleFlight
from maskweb.masking.decoding.grids import engine_prompts
from maskweb.masking.decoding.lru import ByteLRU
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.photos.ingest import read_stored_image
from maskweb.photos.models import Photo
from maskweb.segment.orientation import to_stored
from maskweb.segment.postprocess import bounds
from maskweb.segment.types import Embedding, Prediction
from maskweb.segment.upsample import upsample_mask

log = logging.getLogger(__name__)


class EmbeddingMissing(Exception):
    """The photo has no embedding for the session's model (not encoded yet, or lost)."""


def prediction_bytes(prediction: Prediction) -> int:
    masks = sum(c.mask.nbytes for c in prediction.candidates)
    return masks + (prediction.feedback.nbytes if prediction.feedback is not None else 0)


# Per prompt prefix: a new click on top of the last one is one decode, an undo a cache hit.
predictions: ByteLRU[Prediction] = ByteLRU(lambda: settings.PREDICTION_CACHE_BYTES,
                                           prediction_bytes)
# The predictions being decoded now, by the same keys.
decoding: SingleFlight[Prediction] = SingleFlight()
CORES = os.cpu_count() or 1
# At most this many decodes for a log with nothing cached (see predict): an object of 500
# prompts must not cost a process that lost its cache 500 decodes for one click.
REPLAY_STEPS = 16
_prefetcher = ThreadPoolExecutor(max_workers=CORES, thread_name_prefix="prefetch")
cores = Cores(CORES)
_prefetching: Counter[str] = Counter()  # prefetches queued or running, by embedding key
_prefetch_lock = threading.Lock()


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


def in_hand(session: MaskSession, stored_prompts: list[dict[str, Any]]) -> bool:
    """Whether the prediction for these prompts is cached or being decoded (no core needed)."""
    key = embeddings.embedding_key(session.photo, session.model_id)
    wanted = (key, prefix_digests(stored_prompts)[-1])
    return predictions.get(wanted) is not None or decoding.running(wanted) is not None


def predict(session: MaskSession, stored_prompts: list[dict[str, Any]],
            latest_only: bool = False, alongside: bool = False,
            wait_for_core: bool = True, one_step: bool = False) -> Prediction | None:
    """The prediction for these prompts (None when there are none, or when it needs a decode,
    every core is busy and not ``wait_for_core``).

    ``alongside``: decode in one step on top of the longest prefix already decoded (or of
    nothing), without waiting for a shorter prefix that is still being decoded: for a click
    that comes while the previous one decodes, when a core is free to decode it at once.

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
        if hit is None and (i == len(prefixes) or not alongside):
            running = decoding.running((key, prefixes[i - 1]))
            if running is not None:
                with cores.lent():  # the running decode holds a core of its own
                    hit = running.result()
        if hit is not None:
            start, previous = i, hit
            break
    if start == len(prefixes):
        return previous
    embedding = embeddings.load(key)
    if embedding is None:
        raise EmbeddingMissing(key)
    if alongside or one_step or latest_only:
        # From the longest prefix decoded (or from nothing): the prompts since, in one step.
        start = len(prefixes) - 1
    elif start == 0 and len(prefixes) > REPLAY_STEPS:
        # Nothing cached (a restarted process, an evicted session) and a long log: the
        # older prompts in one step, the last REPLAY_STEPS - 1 one by one on top.
        start = len(prefixes) - REPLAY_STEPS
    steps = [(i, (key, prefixes[i])) for i in range(start, len(prefixes))]
    # The core first, then the claim on the key: a decode others wait for is running, and its
    # waiters lend their cores meanwhile (see maskweb.masking.decoding.cores).
    if not wait_for_core:
        with cores.hold_if_free() as free:
            return _decode_steps(session, embedding, stored_prompts, previous, steps) \
                if free else None
    with cores.hold():
        return _decode_steps(session, embedding, stored_prompts, previous, steps)


def _decode_steps(session: MaskSession, embedding: Embedding,
                  stored_prompts: list[dict[str, Any]], previous: Prediction | None,
                  steps: list[tuple[int, tuple[str, str]]]) -> Prediction | None:
    """Decodes prompts[:i + 1] for each (i, cache key) in turn, each on top of the last."""
    for i, cache_key in steps:
        previous = decoding.run(cache_key, _decoder(
            session, embedding, stored_prompts[: i + 1], previous, cache_key),
            waiting=cores.lent)
    return previous


def _decoder(session: MaskSession, embedding: Embedding, stored_prompts: list[dict[str, Any]],
             previous: Prediction | None, cache_key: tuple[str, str]) -> Callable[[], Prediction]:
    def decode() -> Prediction:
        prompts = engine_prompts(stored_prompts, session.photo)
        with cores.hold():  # a no-op for the core the step holds, unless it was lent
            pool = decode_procs.active()  # the web process: in a child, off the GIL
            prediction = engine.decode(session.model_id, embedding, prompts, previous) \
                if pool is None else \
                pool.decode(session.model_id, cache_key[0], embedding, prompts, previous)
        predictions.put(cache_key, prediction)
        return prediction
    return decode


def prefetch(session: MaskSession, stored_prompts: list[dict[str, Any]],
             new: bool = False) -> bool:
    """Starts decoding this prompt log in the background if a core is free (True then).

    Called while a new prompt is being committed: the database write, the hop back to the
    socket and the render's reads then overlap the decode instead of preceding it. A click
    that comes while the previous one still decodes is decoded alongside it (a quick second
    click need not wait for the first one's mask); a third waits, and the render decodes it
    with whatever else came meanwhile, in one step, as it does when every core is busy. The
    log may still change (the commit can fail, another editor can add a prompt): a prefetched
    prediction is keyed by its exact prompts, so it is only ever used for them.

    A log that is decoding or decoded already is not queued again (it would hold one of the
    key's two places, and a quick next click would find none), unless the caller says it is
    ``new``: checking hashes the whole log, which editing.guess_next, on the event loop, does
    not do.
    """
    if not stored_prompts or session.status != Status.READY:
        return False
    if cores.busy() >= CORES:  # the cheap check first: in_hand hashes the whole log
        return False
    key = embeddings.embedding_key(session.photo, session.model_id)
    if not new and in_hand(session, stored_prompts):
        return False
    with _prefetch_lock:
        pending = _prefetching[key]
        if pending >= 2 or _prefetching.total() >= CORES or cores.busy() >= CORES:
            return False
        _prefetching[key] += 1
    _prefetcher.submit(_prefetch, key, session, list(stored_prompts), pending > 0)
    return True


def work_in_flight() -> int:
    """Prefetches queued or running plus decodes running: 0 once this process is quiet."""
    with _prefetch_lock:
        queued = _prefetching.total()
    return queued + decoding.count()


def _prefetch(key: str, session: MaskSession, stored_prompts: list[dict[str, Any]],
              alongside: bool) -> None:
    try:
        if not alongside and len(stored_prompts) > 1:
            # The click before is decoding in a render (it found no core free, or came with no
            # guess): this one does not wait for it either.
            before = (key, prefix_digests(stored_prompts)[-2])
            alongside = decoding.running(before) is not None
        # Every core taken meanwhile: give up rather than wait and decode a log that may be
        # stale by then; the render decodes the newest log when it gets a core.
        predict(session, stored_prompts, latest_only=True, alongside=alongside,
                wait_for_core=False)
    except EmbeddingMissing:
        pass  # the render asks for an encode
    except Exception:  # the render decodes again and reports the failure to the page
        log.debug("prefetching a prediction failed", exc_info=True)
    finally:
        with _prefetch_lock:
            _prefetching[key] -= 1
            if _prefetching[key] <= 0:
                del _prefetching[key]


@dataclass
class CurrentMask:
    """The current object's mask at the work size, upright, with what the page shows."""

    mask: np.ndarray | None
    candidate: int
    scores: list[float | None]  # None: the engine has no estimate of its own quality


def current_mask(session: MaskSession, obj: MaskObject,
                 latest_only: bool = False, one_step: bool = False) -> CurrentMask:
    prediction = predict(session, obj.effective_prompts(), latest_only, one_step=one_step)
    if prediction is None or not prediction.candidates:
        return CurrentMask(None, 0, [])
    index = min(obj.candidate, len(prediction.candidates) - 1)
    mask = np.asarray(prediction.candidates[index].mask, dtype=bool)
    photo = session.photo
    if mask.shape != (photo.work_height, photo.work_width):
        mask = resize_mask(mask, photo.work_width, photo.work_height)
    return CurrentMask(mask, index, [None if c.score is None else round(float(c.score), 4)
                                     for c in prediction.candidates])


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear on the 0/1 mask, threshold at one half: smooth edges instead of stair steps."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)) >= 128


def png_bytes(mask: np.ndarray) -> bytes:
    """A 1-bit grayscale PNG: a mask has two values, and packing 8 pixels a byte before
    compressing takes 40% of the time of an 8-bit PNG at half the size (every click pays it).
    Browsers and png_to_mask read it as 0/255."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def png_to_mask(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L")) >= 128


def bbox(mask: np.ndarray | None) -> list[int] | None:
    found = bounds(mask) if mask is not None else None
    if found is None:
        return None
    y0, y1, x0, x1 = found
    return [x0, y0, x1, y1]


def stored_full_mask(photo: Photo, work_mask: np.ndarray) -> np.ndarray:
    """A work-size upright mask -> the stored grid at full resolution (for downloads)."""
    return stored_full_masks(photo, [work_mask])[0]


def stored_full_masks(photo: Photo, work_masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Work-size upright masks -> the stored grid at full resolution, each edge moved onto
    the photo's own edges (maskweb.segment.upsample; the photo is read once for them all).
    Without a readable original, scaled up bilinearly."""
    full = (photo.stored_height, photo.stored_width)
    stored = [np.ascontiguousarray(to_stored(m, photo.orientation)) for m in work_masks]
    if all(m.shape == full for m in stored):
        return stored
    guide = read_stored_image(photo)
    if guide is None:
        log.warning("photo %s: original unreadable, downloads scaled up unguided", photo.pk)
    return [m if m.shape == full else
            resize_mask(m, photo.stored_width, photo.stored_height) if guide is None else
            upsample_mask(m, guide) for m in stored]


def stored_area(photo: Photo, work_mask: np.ndarray) -> int:
    scale = (photo.stored_width * photo.stored_height) / (photo.work_width * photo.work_height)
    return int(round(int(work_mask.sum()) * scale))


def mask_frame(header: dict[str, Any], png: bytes) -> bytes:
    # Sorted keys: the same mask gives the same bytes whichever database stored its prompts
    # (PostgreSQL's jsonb hands a prompt's keys back in its own order, SQLite in the written
    # one).
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    return struct.pack(">I", len(head)) + head + png
