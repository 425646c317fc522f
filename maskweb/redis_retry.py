"""How maskweb's Redis clients ride out a Redis restart.

A client keeps its connections in a pool. After a restart every pooled connection is dead,
and redis-py's default is to raise on the first command that meets one: each would fail one
request, kill one socket's channel-layer reader (Daphne closes that socket with 1011), or cost
a click an error. With these options a command that meets a closed connection, or a Redis
that refuses connections (it is starting again), reconnects and runs again, waiting a little
longer each time (0.1, 0.2, 0.4, 0.8, then 1 s), for up to ``seconds`` in all
(MASKWEB_REDIS_RETRY_SECONDS, 10 s by default): a restart that short is invisible, only
slower. A Redis that stays down fails every command after that long.

No Django here: settings.py builds the channel layer's options from it.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 1.0
DEFAULT_SECONDS = 10.0


def retries_for(seconds: float) -> int:
    """How many tries again fit in ``seconds`` of pauses (at least one)."""
    total, count = 0.0, 0
    while total < seconds:
        total += min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** count)
        count += 1
    return max(1, count)


def _options(retry_class: Any, seconds: float) -> dict[str, Any]:
    # ExponentialBackoff waits base * 2**n, capped: 0.1, 0.2, 0.4, 0.8, 1, 1, ...
    return {"retry": retry_class(ExponentialBackoff(cap=LONGEST_PAUSE, base=FIRST_PAUSE / 2),
                                 retries_for(seconds)),
            "retry_on_error": [redis.exceptions.ConnectionError]}


def sync_options(seconds: float = DEFAULT_SECONDS) -> dict[str, Any]:
    """For redis.Redis (and its pool)."""
    return _options(Retry, seconds)


def async_options(seconds: float = DEFAULT_SECONDS) -> dict[str, Any]:
    """For redis.asyncio connections (channels_redis passes a host's options to its pool)."""
    return _options(AsyncRetry, seconds)
