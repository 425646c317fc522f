"""Downloads made once per object revision and settings, a bounded number at a time.

A full-resolution download is the heaviest thing a client can ask for: a 60 MP photo with 20
objects took 10-11 s of CPU per SVG or XMP, six at once 51 s each, and another user's click
waited up to 25.6 s meanwhile; anyone with a view link can ask, again and again. So:

- A made download is kept in Redis (MASKWEB_DOWNLOAD_CACHE_TTL, if at most
  MASKWEB_DOWNLOAD_CACHE_MAX_MB) under a key of everything it is made from: the photo, the
  name it is saved under, the uploaded sidecar, the settings, and each object's number, name,
  visibility and mask (an applied object's stored PNG; the current object's prompts, chosen
  candidate and model). Any change makes a new key; asking again costs a Redis read. The key
  is also the response's ETag, so a client that has it gets 304.
- Making one runs in this process's download threads (MASKWEB_DOWNLOAD_CONCURRENCY, one by
  default), off the event loop and away from the threads that serve clicks and uploads. At
  most MASKWEB_DOWNLOAD_QUEUE more may wait; past that the answer is 503 with Retry-After.
  Vectorising holds the GIL part of the time: with one download running, a 1.6 ms piece of
  Python (a click's own work) took 1.7 ms at p50 and 6.8 ms at p95 (48 MP, 4 objects).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from maskweb.masking.models import MaskObject, MaskSession
from maskweb.masking.plumbing.pools import Pool
from maskweb.masking.plumbing.redis_client import get_quick_redis

log = logging.getLogger(__name__)

# Bumped when the writers change what they make from the same inputs.
FORMAT_VERSION = 1
RETRY_AFTER_SECONDS = 5


class Busy(Exception):
    """Every download thread is busy and the queue is full."""


@dataclass
class Job:
    """A download to make (``make()`` returns its bytes), what to call it and its key."""

    key: str
    make: Callable[[], bytes]
    content_type: str
    filename: str


def cache_key(kind: str, session: MaskSession, objects: Iterable[MaskObject],
              params: dict[str, Any]) -> str:
    photo = session.photo
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps([FORMAT_VERSION, kind, photo.sha256, photo.orientation,
                              photo.stored_width, photo.stored_height, session.photo_name,
                              session.model_id, params], sort_keys=True).encode())
    if kind.endswith("xmp") and session.sidecar_file:  # named by its content's hash
        digest.update(session.sidecar_file.encode())
    for obj in objects:
        drawn = None if obj.applied else [obj.effective_prompts(), obj.candidate]
        digest.update(json.dumps([obj.number, obj.name, obj.visible, obj.applied, drawn],
                                 sort_keys=True).encode())
        if obj.applied and obj.mask_png:
            digest.update(hashlib.blake2b(bytes(obj.mask_png)).digest())
    return f"maskweb:download:{digest.hexdigest()}"


def cached(key: str) -> bytes | None:
    """The download kept under ``key``; None when not kept (or Redis is away)."""
    if settings.DOWNLOAD_CACHE_TTL <= 0:
        return None
    try:
        data = get_quick_redis().get(key)
    except redis.exceptions.RedisError:
        log.info("download cache skipped: Redis unreachable")
        return None
    return bytes(data) if data is not None else None  # type: ignore[arg-type]


def keep(key: str, data: bytes) -> None:
    if settings.DOWNLOAD_CACHE_TTL <= 0 or len(data) > settings.DOWNLOAD_CACHE_MAX_BYTES:
        return
    try:
        get_quick_redis().set(key, data, ex=settings.DOWNLOAD_CACHE_TTL)
    except redis.exceptions.RedisError:
        log.info("download not kept: Redis unreachable")


_pool: Pool | None = None


def pool() -> Pool:
    global _pool
    if _pool is None or _pool.threads != settings.DOWNLOAD_CONCURRENCY:
        _pool = Pool("download", settings.DOWNLOAD_CONCURRENCY)
    return _pool


async def run(job: Job) -> bytes:
    """Makes the download in a download thread and keeps it; Busy when too many wait."""
    threads = pool()
    if threads.taken() >= threads.threads + settings.DOWNLOAD_QUEUE:
        raise Busy()

    def make_and_keep() -> bytes:
        data = cached(job.key)  # made meanwhile by a request that asked first
        if data is None:
            data = job.make()
            keep(job.key, data)
        return data

    return await threads.run(make_and_keep)
