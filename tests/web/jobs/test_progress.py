"""The analysis progress moves while an opaque encoder runs (maskweb.masking.jobs.progress)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from maskweb.masking import editing
from maskweb.masking.decoding import engine
from maskweb.masking.jobs import encoding, progress
from maskweb.masking.models import Status
from maskweb.masking.plumbing import notify
from tests.web.conftest import make_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_estimate_rises_steadily_and_never_claims_the_end():
    expected = 4.0
    values = [progress.estimate(t / 10, expected) for t in range(0, 400)]
    assert values[0] == 0.0
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    assert max(b - a for a, b in zip(values, values[1:], strict=False)) < 0.05
    assert 0.75 < progress.estimate(expected, expected) < 0.9
    assert max(values) < progress.CEILING
    assert progress.estimate(0.1, expected, floor=0.5) == 0.5  # never below the encoder's own


def test_an_encoder_that_reports_only_10_and_95_percent_gives_a_moving_meter(monkeypatch):
    """Like an ONNX encoder: 10 % before its one opaque call, 95 % after. The page now hears
    values in between, rising, from the meter; the duration is learned for next time."""
    session = make_session(ready=False)
    sent: list[tuple[str, float]] = []
    lock = threading.Lock()
    real_status, real_encode = notify.status_or_log, engine.encode

    def record(pk: int, status: str, value: float, message: str = "") -> None:
        with lock:
            sent.append((status, value))
        real_status(pk, status, value, message)

    def between() -> int:
        with lock:
            return sum(1 for s, v in sent if s == Status.ENCODING and 0.1 < v < 0.95)

    def opaque_encoder(model_id: str, image: Any, report: Any = None) -> Any:
        report(0.1)
        deadline = time.monotonic() + 30
        # The opaque call: it lasts until the meter has moved three times (a condition, not a
        # guess at how long the meter needs on a busy machine).
        while between() < 3:
            assert time.monotonic() < deadline, sent
            time.sleep(0.02)
        embedding = real_encode(model_id, image)
        report(0.95)
        report(1.0)
        return embedding

    monkeypatch.setattr(notify, "status_or_log", record)
    monkeypatch.setattr(engine, "encode", opaque_encoder)
    started = time.monotonic()
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    took = time.monotonic() - started
    encoding_values = [v for s, v in sent if s == Status.ENCODING]
    assert encoding_values == sorted(encoding_values), "the meter never goes back"
    assert between() >= 3
    assert sent[-1] == (Status.READY, 1.0)
    assert editing.reload(session).status == Status.READY
    learned = progress.expected_seconds("grabcut")
    assert learned != progress.DEFAULT_SECONDS and learned <= 0.5 * progress.DEFAULT_SECONDS \
        + 0.5 * took + 0.01
