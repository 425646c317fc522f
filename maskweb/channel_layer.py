"""The channel layer of the session sockets: channels_redis's, patient with a Redis that is down.

Every socket of a web process waits on the layer's ``receive`` for its group messages (masks
drawn by others, status of the encode). channels_redis raises out of ``receive`` when Redis
cannot be reached for longer than the connection's retries (maskweb.redis_retry), and Channels
then ends the consumer: Daphne closes the page's socket with 1011. A Redis that is restarted,
or down for a minute, is no reason to close any socket, so ``receive`` here waits for Redis to
come back (pausing up to 2 s between tries) and goes on. The sockets' own messages never needed
Redis to be read; what they write goes to the database. Messages sent to a group while Redis was
down are lost, as they would be without a listener: pages rejoin and catch up (see the
consumer's ``on_ping``), and the next change sends a full frame.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from channels_redis.core import RedisChannelLayer

log = logging.getLogger(__name__)

LONGEST_PAUSE = 2.0


class PatientRedisChannelLayer(RedisChannelLayer):
    async def receive(self, channel: str) -> dict[str, Any]:
        pause = 0.1
        failing = False
        while True:
            try:
                message: dict[str, Any] = await super().receive(channel)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    ConnectionError, OSError) as exc:
                if not failing:
                    log.warning("the channel layer cannot reach Redis (%s); waiting for it",
                                exc)
                failing = True
                await asyncio.sleep(pause)
                pause = min(LONGEST_PAUSE, pause * 2)
                continue
            if failing:
                log.info("the channel layer reaches Redis again")
            return message
