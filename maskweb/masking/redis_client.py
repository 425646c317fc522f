"""One Redis connection pool per process, made on first use (settings may change in tests)."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

from maskweb import redis_retry

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def redis_url() -> str:
    return settings.REDIS_URL or settings.CELERY_BROKER_URL


def get_redis() -> redis.Redis:
    url = redis_url()
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = redis.Redis.from_url(url, socket_timeout=30, health_check_interval=30,
                                          **redis_retry.sync_options())
            _clients[url] = client
        return client
