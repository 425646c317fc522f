"""Status messages from a process without an event loop (the Celery worker), through the
real channel layer on a real redis-server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from maskweb import runner
from maskweb.masking import editing
from maskweb.masking.jobs import encoding
from maskweb.masking.models import Status
from maskweb.masking.plumbing import notify
from maskweb.settings import channel_layer_config


@pytest.fixture
def own_loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sends go through notify's own loop, as in the worker; a send through async_to_sync
    (a new loop, thread and connection each time) fails the test."""

    def refuse(*_: Any) -> Any:
        raise AssertionError("sent through async_to_sync, not the own loop")

    notify.send_from_own_loop()
    monkeypatch.setattr(notify, "async_to_sync", refuse)
    yield
    notify.send_from_own_loop(False)


def listen(session_pk: int) -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(notify.group_name(session_pk), channel)
    return layer, channel


def receive(layer: Any, channel: str, count: int = 1) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:  # one loop: the layer buffers per loop
        return [dict(await layer.receive(channel)) for _ in range(count)]

    return async_to_sync(collect)()


def notify_threads() -> int:
    return sum(t.name == "notify-loop" for t in threading.enumerate())


def test_statuses_sent_from_the_own_loop_reach_the_session_in_order(own_loop: None) -> None:
    layer, channel = listen(41)
    for progress in (0.0, 0.1, 0.95):
        notify.status(41, "encoding", progress, "Analysing the photo.")
    got = receive(layer, channel, 3)
    assert [m["progress"] for m in got] == [0.0, 0.1, 0.95]
    assert {m["type"] for m in got} == {"session.status"}
    # One loop for every send, not one each.
    assert notify_threads() == 1


def test_a_send_after_a_redis_restart_arrives(own_loop: None, settings: Any,
                                              tmp_path: Path) -> None:
    """The own loop keeps its Redis connections; after a restart the stale one is replaced,
    and the status still arrives (a worker must not fail a finished encode over it)."""
    port = runner.free_port()
    directory = tmp_path
    url = f"redis://127.0.0.1:{port}/0"

    def start() -> Any:
        process = runner.spawn(runner.redis_command(port, directory, "64mb"), {}, directory,
                               directory / "redis.log")
        runner.wait_for_redis(url, process=process)
        return process

    process = start()
    try:
        settings.CHANNEL_LAYERS = {"default": channel_layer_config(url)}
        layer, channel = listen(42)
        notify.status(42, "encoding", 0.5)
        assert receive(layer, channel)[0]["progress"] == 0.5
        runner.stop(process)
        process = start()
        layer, channel = listen(42)  # the restart lost the group
        notify.status(42, "ready", 1.0)
        assert receive(layer, channel)[0]["status"] == "ready"
    finally:
        runner.stop(process)


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.django_db(transaction=True)
def test_an_encode_finishes_when_the_channel_layer_never_answers(
        own_loop: None, settings: Any, silent_redis: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A send that hangs is given up after SEND_TIMEOUT_SECONDS, and a status message that
    cannot be sent costs the encode nothing: the session is ready in the database, where a
    page that heard nothing asks for it (editing.encode_status)."""
    from tests.web.conftest import make_session

    monkeypatch.setattr(notify, "SEND_TIMEOUT_SECONDS", 0.3)
    session = make_session(ready=False)
    settings.CHANNEL_LAYERS = {"default": channel_layer_config(silent_redis)}
    with pytest.raises(TimeoutError):
        notify.status(session.pk, "encoding", 0.5)
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    assert editing.reload(session).status == Status.READY
