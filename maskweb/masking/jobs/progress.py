"""A photo's analysis progress that moves all the time, not in two jumps.

An ONNX encoder is one opaque call: it can say 10 % before it and 95 % after it, nothing in
between, so the page sat at 10 % for the whole encode and then jumped. The meter fills that
gap with an estimate from how long this model's encodes took before (kept in Redis, shared by
the workers): it rises steadily while the encoder runs, slows down as it nears the next real
report, and never passes it, so it neither goes back nor claims to be done before it is.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from django.db import connection

from maskweb.masking.plumbing.redis_client import get_redis

log = logging.getLogger(__name__)

# The estimate stays below this until the encoder reports more (its own "95 %" comes last).
CEILING = 0.95
# How often the meter reports: as often as the encoder's own reports were allowed.
INTERVAL = 0.25
# Until a model has been timed on this server.
DEFAULT_SECONDS = 6.0


def duration_key(model_id: str) -> str:
    return f"maskweb:encode-seconds:{model_id}"


def expected_seconds(model_id: str) -> float:
    """How long an encode of this model takes here (a running average), or a default."""
    try:
        raw = get_redis().get(duration_key(model_id))
        return max(0.2, float(raw)) if raw is not None else DEFAULT_SECONDS
    except Exception:  # only an estimate: a Redis hiccup must not fail the encode
        log.warning("reading the encode time of %s failed", model_id, exc_info=True)
        return DEFAULT_SECONDS


def remember_seconds(model_id: str, seconds: float) -> None:
    """Folds one encode's duration into the model's average (half old, half new)."""
    try:
        client = get_redis()
        raw = client.get(duration_key(model_id))
        average = seconds if raw is None else 0.5 * float(raw) + 0.5 * seconds
        client.set(duration_key(model_id), f"{average:.3f}")
    except Exception:
        log.warning("storing the encode time of %s failed", model_id, exc_info=True)


def estimate(elapsed: float, expected: float, floor: float = 0.0) -> float:
    """The share done after ``elapsed`` seconds of an encode expected to take ``expected``:
    about 86 % of the way to CEILING at the expected time, closer and closer after it, never
    at it; never below ``floor`` (what the encoder itself last said)."""
    guess = CEILING * (1.0 - math.exp(-2.0 * max(0.0, elapsed) / max(expected, 1e-3)))
    return max(floor, min(guess, CEILING - 1e-3))


class ProgressMeter:
    """Reports ``estimate`` every INTERVAL seconds while an encode runs, and the encoder's own
    reports as they come; each report is higher than the one before."""

    def __init__(self, report: Callable[[float], None], expected: float) -> None:
        self.report, self.expected = report, expected
        self.started = time.monotonic()
        self.floor = 0.0
        self.sent = -1.0
        self.lock = threading.Lock()
        self.sending = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="encode-progress")

    def __enter__(self) -> ProgressMeter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def step(self, fraction: float) -> None:
        """The encoder's own report."""
        with self.lock:
            self.floor = max(self.floor, float(fraction))
        self._send(self.floor)

    def _send(self, value: float) -> None:
        # One report at a time, under the lock: two threads must not overtake each other, or
        # the page would see the meter go back.
        with self.sending:
            if value <= self.sent + 0.005 and value < 1.0:
                return
            self.sent = max(self.sent, value)
            self.report(value)

    def _run(self) -> None:
        try:
            while not self.stop.wait(INTERVAL):
                with self.lock:
                    floor = self.floor
                if floor >= CEILING:
                    continue  # the encoder is past its opaque part: its own reports follow
                self._send(estimate(time.monotonic() - self.started, self.expected, floor))
        except Exception:
            log.warning("the encode progress meter stopped", exc_info=True)
        finally:
            connection.close()  # this thread's own database connection
