"""Overload without loss: more pages clicking than the cores can decode. Every prompt is stored
at once, in order, however far the decoder has fallen behind; each page then gets the mask of
its newest prompt (the ones between drawn in the same step) and is told meanwhile that it is
behind. bench/soak.py measures the same at scale."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from maskweb.asgi import application
from maskweb.masking import editing
from maskweb.masking.decoding import engine
from maskweb.masking.models import MaskSession
from maskweb.masking.plumbing import pools
from tests.web.client import split_frame, two_tone_photo
from tests.web.conftest import make_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def stored(session: MaskSession) -> int:
    current = editing.reload(session).current
    return len(current.effective_prompts()) if current is not None else 0


async def _next(comm: WebsocketCommunicator, timeout: float = 30) -> Any:
    message = await comm.receive_output(timeout=timeout)
    assert message["type"] == "websocket.send", f"the socket closed: {message}"
    if message.get("bytes") is not None:
        return split_frame(message["bytes"])
    return json.loads(message["text"])


async def _until_covered(comm: WebsocketCommunicator, count: int,
                         seen: list[Any]) -> dict[str, Any]:
    while True:
        item = await _next(comm)
        seen.append(item)
        if isinstance(item, tuple) and len(item[0]["prompts"]) >= count:
            return item[0]


class HeldDecoder:
    """engine.decode that waits until released: a decoder far behind its clickers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.release = threading.Event()
        self.calls: list[int] = []
        self.lock = threading.Lock()
        real = engine.decode

        def decode(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls.append(len(args[2].points))
            assert self.release.wait(60), "never released"
            return real(*args, **kwargs)

        monkeypatch.setattr(engine, "decode", decode)


def test_prompts_are_stored_at_once_while_every_render_waits_for_a_decode(monkeypatch):
    """More sockets than render threads, every decode held: the prompts still reach the
    database in order within a moment. Before the write pool, writes waited in the same pool
    as the renders and only 1336 of 3193 prompts of 16 clicking pages were ever stored."""
    sockets = pools.renders.threads + 4
    sessions = [make_session(two_tone_photo(seed=seed)) for seed in range(sockets)]
    held = HeldDecoder(monkeypatch)
    per_page = 4

    async def scenario() -> list[dict[str, Any]]:
        comms = []
        for session in sessions:
            comm = WebsocketCommunicator(application, f"/ws/sessions/{session.edit_token}/")
            assert (await comm.connect(timeout=10))[0]
            assert (await _next(comm))["type"] == "hello"
            comms.append(comm)
        try:
            for n in range(per_page):
                for comm in comms:
                    await comm.send_to(text_data=json.dumps(
                        {"v": 1, "type": "prompt", "id": f"c{n}",
                         "prompt": {"kind": "point", "x": 220 + 5 * n, "y": 170 + 3 * n}}))
            deadline = time.monotonic() + 30
            while sum([await asyncio.to_thread(stored, s) for s in sessions]) \
                    < per_page * sockets:
                assert time.monotonic() < deadline, "prompts waited behind the decodes"
                assert not held.release.is_set()
                await asyncio.sleep(0.05)
            assert held.calls, "the decoder was busy all along"
        finally:
            held.release.set()
        finals = []
        for comm in comms:
            finals.append(await _until_covered(comm, per_page, []))
            await comm.disconnect()
        return finals

    finals = asyncio.run(scenario())
    assert [f["id"] for f in finals] == [f"c{per_page - 1}"] * sockets, \
        "each page's first frame of all its prompts answers its newest one"
    for session in sessions:
        log = editing.reload(session).current.effective_prompts()
        assert [round(p["x"]) for p in log] == [220 + 5 * n for n in range(per_page)]
    # Each page's later prompts were drawn together, not one decode each.
    assert len(held.calls) < per_page * sockets, held.calls


def test_a_page_that_falls_behind_is_told_and_then_gets_its_newest_mask(settings, monkeypatch):
    settings.WS_BEHIND_AFTER_SECONDS = 0.3
    session = make_session()
    held = HeldDecoder(monkeypatch)

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session.edit_token}/")
        assert (await comm.connect(timeout=10))[0]
        assert (await _next(comm))["type"] == "hello"
        seen: list[Any] = []
        try:
            for n in range(3):
                await comm.send_to(text_data=json.dumps(
                    {"v": 1, "type": "prompt", "id": f"b{n}",
                     "prompt": {"kind": "point", "x": 230 + 4 * n, "y": 175}}))
            while True:
                item = await _next(comm)
                seen.append(item)
                if isinstance(item, dict) and item.get("type") == "behind":
                    break
        finally:
            held.release.set()
        final = await _until_covered(comm, 3, seen)
        # Caught up: no more `behind` (a ping's pong comes back before any stray one would).
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": "after"}))
        while (item := await _next(comm)) != {"v": 1, "type": "pong", "id": "after"}:
            seen.append(item)
        await comm.disconnect()
        return seen, final

    seen, final = asyncio.run(scenario())
    behind = [i for i in seen if isinstance(i, dict) and i.get("type") == "behind"]
    assert behind and behind[0]["pending"] >= 1 and behind[0]["waited_ms"] >= 300
    assert behind[0]["id"] == "b2", "it names the newest prompt, which the next mask answers"
    assert final["id"] == "b2" and len(final["prompts"]) == 3
    assert stored(session) == 3
    assert not [i for i in seen[seen.index(behind[-1]) + 1:]
                if isinstance(i, dict) and i.get("type") == "behind"]


def test_a_socket_flooding_faster_than_it_is_read_loses_nothing_it_was_not_told_about(
        settings):
    """A page sending as fast as it can: every prompt is either stored or refused with an
    error frame naming it (rate_limited); none disappears."""
    settings.WS_RATE_PER_SECOND, settings.WS_RATE_BURST = 50.0, 40
    session = make_session()
    sent = 120

    async def scenario() -> tuple[set[str], dict[str, Any]]:
        comm = WebsocketCommunicator(application, f"/ws/sessions/{session.edit_token}/")
        assert (await comm.connect(timeout=10))[0]
        assert (await _next(comm))["type"] == "hello"
        for n in range(sent):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": f"f{n}",
                 "prompt": {"kind": "point", "x": 100 + n, "y": 175}}))
        refused: set[str] = set()
        final: dict[str, Any] = {}
        # Every prompt is refused by name or covered by the newest frame, in the end.
        while len(refused) + len(final.get("prompts", [])) < sent:
            item = await _next(comm)
            if isinstance(item, dict) and item.get("type") == "error":
                assert item["code"] == "rate_limited"
                refused.add(item["id"])
            elif isinstance(item, tuple):
                final = item[0]
        await comm.disconnect()
        return refused, final

    refused, final = asyncio.run(scenario())
    log = editing.reload(session).current.effective_prompts()
    stored_ids = {f"f{round(p['x']) - 100}" for p in log}
    assert stored_ids.isdisjoint(refused) and len(stored_ids) + len(refused) == sent
    assert len(final["prompts"]) == len(log)
