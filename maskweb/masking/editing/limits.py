"""One anonymous client's share of the machine: rates, disk, and who the client is.

Nobody logs in, so a client is its network address: an IPv4 address, or an IPv6 /64 (one
household or machine gets a whole /64 and could otherwise step through it). The address is kept
only as a keyed hash (``client_key``), enough to count a client's uploads and disk, not to
know who it was.

Rates are counted in Redis (every web process shares them) with the generic cell rate
algorithm: a sustained rate with bursts, one key per client and kind, which expires on its
own. When Redis cannot be reached the limits let requests through (logged): refusing every
upload because the counter is down would hurt everyone to stop one.

Every refusal is a ``LimitExceeded`` with the HTTP status (429 too fast, 507 no room), the
protocol's error code, a message a person can act on and, for 429, when to try again.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import shutil
from pathlib import Path

import redis
from django.conf import settings
from django.db.models import Sum

from maskweb.masking.plumbing.redis_client import get_redis

log = logging.getLogger(__name__)


class LimitExceeded(Exception):
    def __init__(self, status: int, code: str, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after


def client_key(address: str | None) -> str:
    """A short keyed hash of the client's address (IPv6: its /64)."""
    text = (address or "").strip()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        network = text or "unknown"
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        network = str(ipaddress.ip_network(f"{ip}/64", strict=False)) \
            if isinstance(ip, ipaddress.IPv6Address) else str(ip)
    digest = hmac.new(settings.SECRET_KEY.encode(), network.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


# GCRA: the key holds the theoretical arrival time (ms) of the next request at the sustained
# rate. A request is let through when it is no more than burst intervals ahead of now.
# Redis's own clock, so every web process counts the same.
_GCRA = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - interval * burst
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return 0
"""


def take(key: str, per_second: float, burst: int) -> float:
    """Counts one request against ``key``; 0 when let through, else the seconds to wait."""
    interval_ms = 1000.0 / per_second
    try:
        script = get_redis().register_script(_GCRA)
        wait_ms = float(script(keys=[key], args=[interval_ms, burst]))
    except redis.exceptions.RedisError:
        log.warning("rate limit %s not checked: Redis unreachable", key, exc_info=True)
        return 0.0
    return wait_ms / 1000.0


def check_upload_rate(client: str) -> None:
    wait = take(f"maskweb:rate:upload:{client}", settings.UPLOAD_RATE_PER_HOUR / 3600.0,
                settings.UPLOAD_BURST)
    if wait > 0:
        raise LimitExceeded(429, "rate_limited", f"Too many uploads from your address: at "
                            f"most {settings.UPLOAD_BURST} at once and "
                            f"{settings.UPLOAD_RATE_PER_HOUR:g} an hour. Try again in "
                            f"{_seconds(wait)}.", retry_after=wait)


def check_session_writes(session_pk: int) -> None:
    """The HTTP API's writes to one session, at the socket's rate (MASKWEB_WS_RATE/BURST)."""
    wait = take(f"maskweb:rate:session:{session_pk}", settings.WS_RATE_PER_SECOND,
                settings.WS_RATE_BURST)
    if wait > 0:
        raise LimitExceeded(429, "rate_limited", f"Too many changes to this session: at most "
                            f"{settings.WS_RATE_PER_SECOND:g} a second. Try again in "
                            f"{_seconds(wait)}; nothing changed.", retry_after=wait)


def client_disk_bytes(client: str) -> int:
    """What the photos of this client's sessions take on disk (a photo counted once)."""
    from maskweb.photos.models import Photo

    total = Photo.objects.filter(sessions__client=client).distinct() \
        .aggregate(total=Sum("disk_bytes"))["total"]
    return int(total or 0)


def check_disk(client: str, incoming: int) -> None:
    """Room for an upload of ``incoming`` bytes: the disk's free space and the client's
    quota. A stored photo takes its original plus a preview: ``incoming`` is a lower bound."""
    media = Path(settings.MEDIA_ROOT)
    probe = media if media.exists() else Path(settings.DATA_DIR)
    free = shutil.disk_usage(probe).free
    if free - incoming < settings.MIN_FREE_DISK_BYTES:
        raise LimitExceeded(507, "insufficient_storage", "The server is short of disk space "
                            "and takes no uploads for now; try again later.")
    used = client_disk_bytes(client)
    if used + incoming > settings.CLIENT_QUOTA_BYTES:
        raise LimitExceeded(507, "quota_exceeded", f"Your photos take {used / 2**20:.0f} MB "
                            f"of the {settings.CLIENT_QUOTA_BYTES / 2**20:.0f} MB an address "
                            "may use. Delete sessions you no longer need (DELETE on a "
                            "session's edit link) or wait for old ones to expire.")


def _seconds(wait: float) -> str:
    whole = max(1, math.ceil(wait))
    return f"{whole} s" if whole < 120 else f"{math.ceil(whole / 60)} min"
