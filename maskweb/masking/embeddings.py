"""The embedding cache: Redis (shared by every process, keyed by content hash and model), with a
small LRU in front of it in each web process so a click does not pull megabytes from Redis.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from django.conf import settings

from maskweb.masking import engine
from maskweb.masking.redis_client import get_redis
from maskweb.photos.models import Photo
from maskweb.segment.types import Embedding


def embedding_key(photo: Photo, model_id: str) -> str:
    # The work size is part of the key: the same photo at another MASKWEB_WORK_MAX_SIDE is
    # another picture for the encoder.
    return f"maskweb:emb:v1:{model_id}:{photo.sha256}:{photo.work_width}x{photo.work_height}"


class EmbeddingLRU:
    def __init__(self) -> None:
        self._items: OrderedDict[str, Embedding] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Embedding | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: Embedding) -> None:
        size = settings.EMBEDDING_LRU_SIZE
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > size:
                self._items.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


local_cache = EmbeddingLRU()


def store(key: str, embedding: Embedding) -> None:
    get_redis().set(key, engine.embedding_to_bytes(embedding), ex=settings.EMBEDDING_TTL_SECONDS)
    local_cache.put(key, embedding)


def in_redis(key: str) -> bool:
    return bool(get_redis().exists(key))


def load(key: str) -> Embedding | None:
    """The embedding, or None when neither this process nor Redis has it.

    When this process still holds one that Redis lost (flush, eviction), it is written back,
    so the other processes find it again without an encode.
    """
    client = get_redis()
    cached = local_cache.get(key)
    if cached is not None:
        if not client.exists(key):
            client.set(key, engine.embedding_to_bytes(cached), ex=settings.EMBEDDING_TTL_SECONDS,
                       nx=True)
        return cached
    data = client.get(key)
    if data is None:
        return None
    embedding = engine.embedding_from_bytes(bytes(data))  # type: ignore[arg-type]
    local_cache.put(key, embedding)
    return embedding
