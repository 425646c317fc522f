"""Redis connection pools, one per process and kind, made on first use (settings may change in
tests).

``get_redis``: patient, for what needs Redis to go on (an embedding, the queue): a command
waits out a Redis restart of up to MASKWEB_REDIS_RETRY_SECONDS (maskweb.redis_retry).
``get_quick_redis``: for what may be skipped when Redis is away (a cache write-back, telling
the other sockets): one reconnect at most, short timeouts, so a click's own mask is never
held up by it.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.conf import settings

from maskweb import redis_retry

_lock = threading.Lock()
_clients: dict[tuple[str, str], redis.Redis] = {}


def redis_url() -> str:
    return settings.REDIS_URL or settings.CELERY_BROKER_URL


def get_redis() -> redis.Redis:
    return _client("patient", socket_timeout=30,
                   **redis_retry.sync_options(settings.REDIS_RETRY_SECONDS))


def get_quick_redis() -> redis.Redis:
    return _client("quick", socket_timeout=2, socket_connect_timeout=1,
                   **redis_retry.sync_options(0))


def _client(kind: str, **options: Any) -> redis.Redis:
    """This process's client of ``kind`` for the current Redis URL, made on first use."""
    url = redis_url()
    with _lock:
        client = _clients.get((url, kind))
        if client is None:
            client = redis.Redis.from_url(url, health_check_interval=30, **options)
            _clients[(url, kind)] = client
        return client
