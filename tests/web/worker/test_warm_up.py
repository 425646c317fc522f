"""What processes do when they start: a worker warms its encoder up and keeps small caches, the
web process warms its decoder up (onnxruntime's first runs of a session are the slow ones).
Uses the bundled LiteMedSAM."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from maskweb.masking.decoding import engine
from maskweb.masking.worker import tasks
from maskweb.segment import registry


@pytest.fixture
def fresh_models() -> Iterator[None]:
    def forget() -> None:
        engine._loaded.pop("litemedsam", None)
        registry.forget_loaded()

    forget()
    yield
    forget()


def test_a_starting_worker_runs_the_default_models_encoder_only(settings, fresh_models):
    settings.DEFAULT_MODEL = "litemedsam"
    tasks.warm_up_encoder()
    model = engine._loaded["litemedsam"]
    assert model._encoder is not None and model._decoder is None


def test_a_starting_web_process_runs_the_default_models_decoder_only(settings, fresh_models):
    settings.DEFAULT_MODEL = "litemedsam"
    engine.warm_up_default("decoder")  # what maskweb.asgi starts in a thread
    model = engine._loaded["litemedsam"]
    assert model._decoder is not None and model._encoder is None


def test_a_web_process_freezes_what_it_loaded_at_start_so_full_collections_skip_it(
        settings, fresh_models):
    import gc
    import threading

    from maskweb.asgi import settle_in

    settings.DEFAULT_MODEL = "litemedsam"
    for thread in threading.enumerate():  # importing maskweb.asgi started one of its own
        if thread.name == "warm-up":
            thread.join(60)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        settle_in()
        assert engine._loaded["litemedsam"]._decoder is not None
        assert gc.get_freeze_count() > 10_000, "Django and the models are not out of sight"
    finally:
        gc.unfreeze()


def test_warm_up_can_be_turned_off(settings, fresh_models):
    settings.DEFAULT_MODEL = "litemedsam"
    settings.WARM_UP = False
    tasks.warm_up_encoder()
    assert "litemedsam" not in engine._loaded


def test_a_worker_keeps_small_caches_unless_told_otherwise(settings, monkeypatch):
    monkeypatch.delenv("MASKWEB_EMBEDDING_CACHE_MB", raising=False)
    monkeypatch.setenv("MASKWEB_PREDICTION_CACHE_MB", "100")
    settings.EMBEDDING_CACHE_BYTES = settings.PREDICTION_CACHE_BYTES = 100 * 2**20
    tasks.small_caches()
    assert settings.EMBEDDING_CACHE_BYTES == tasks.WORKER_CACHE_MB * 2**20
    assert settings.PREDICTION_CACHE_BYTES == 100 * 2**20, "a budget set by its variable stays"
