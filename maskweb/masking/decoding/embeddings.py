"""The embedding cache: Redis (shared by every process, keyed by content hash and model), with
an LRU bounded in bytes in front of it in each process, so a click does not pull megabytes from
Redis.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from maskweb.masking.decoding import engine
from maskweb.masking.decoding.lru import ByteLRU
from maskweb.masking.plumbing.redis_client import get_quick_redis, get_redis
from maskweb.photos.models import Photo
from maskweb.segment.types import Embedding

log = logging.getLogger(__name__)


def embedding_key(photo: Photo, model_id: str) -> str:
    # The work size is part of the key: the same photo at another MASKWEB_WORK_MAX_SIDE is
    # another picture for the encoder.
    return f"maskweb:emb:v1:{model_id}:{photo.sha256}:{photo.work_width}x{photo.work_height}"


def embedding_bytes(embedding: Embedding) -> int:
    return sum(array.nbytes for array in embedding.arrays.values())


local_cache: ByteLRU[Embedding] = ByteLRU(lambda: settings.EMBEDDING_CACHE_BYTES,
                                          embedding_bytes)


def store(key: str, embedding: Embedding) -> None:
    get_redis().set(key, engine.embedding_to_bytes(embedding), ex=settings.EMBEDDING_TTL_SECONDS)
    local_cache.put(key, embedding)


def in_redis(key: str) -> bool:
    return bool(get_redis().exists(key))


def load(key: str) -> Embedding | None:
    """The embedding, or None when neither this process nor Redis has it.

    When this process still holds one that Redis lost (flush, eviction), it is written back,
    so the other processes find it again without an encode. That write-back is skipped when
    Redis cannot be reached at once: the click has what it needs, Redis or not.
    """
    cached = local_cache.get(key)
    if cached is not None:
        try:
            quick = get_quick_redis()
            if not quick.exists(key):
                quick.set(key, engine.embedding_to_bytes(cached),
                          ex=settings.EMBEDDING_TTL_SECONDS, nx=True)
        except redis.exceptions.RedisError:
            log.info("writing an embedding back to Redis skipped: Redis unreachable")
        return cached
    data = get_redis().get(key)
    if data is None:
        return None
    embedding = engine.embedding_from_bytes(bytes(data))  # type: ignore[arg-type]
    local_cache.put(key, embedding)
    return embedding
