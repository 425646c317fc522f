"""How maskweb's Redis clients ride out a Redis restart.

A client keeps its connections in a pool. After a restart every pooled connection is dead,
and redis-py's default is to raise on the first command that meets one: each would fail one
request, kill one socket's channel-layer reader (Daphne closes that socket with 1011), or cost
a click an error. With these options a command that meets a closed connection reconnects and
runs again, waiting a little longer each time (0.1, 0.2, 0.4, 0.8 s), so a restart of a
second or two is invisible; a Redis that stays down still fails within about 1.5 s.

No Django here: settings.py builds the channel layer's options from it.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

RETRIES = 4


def _options(retry_class: Any) -> dict[str, Any]:
    return {"retry": retry_class(ExponentialBackoff(cap=0.8, base=0.05), RETRIES),
            "retry_on_error": [redis.exceptions.ConnectionError]}


def sync_options() -> dict[str, Any]:
    """For redis.Redis (and its pool)."""
    return _options(Retry)


def async_options() -> dict[str, Any]:
    """For redis.asyncio connections (channels_redis passes a host's options to its pool)."""
    return _options(AsyncRetry)
