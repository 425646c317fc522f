"""Hover previews (editing.preview over the socket): the mask a click would give, stored
nowhere, sent to the asking socket only, and never waiting for a core a click could use."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from maskweb.masking import editing
from maskweb.masking.decoding import render
from maskweb.masking.decoding.cores import Cores
from tests.web.conftest import make_session
from tests.web.live.test_consumer import connect, is_error, recv, recv_until, run

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = {"kind": "point", "x": 240, "y": 180}


def is_preview(item: Any) -> bool:
    return (isinstance(item, tuple) and item[0]["type"] == "preview") or (
        isinstance(item, dict) and item.get("type") == "preview")


def test_a_preview_shows_the_clicks_mask_and_changes_nothing():
    session = make_session()
    revision = editing.reload(session).revision

    async def scenario() -> tuple[Any, Any]:
        editor, other = await connect(session.edit_token), await connect(session.view_token)
        await recv(editor)
        await recv(other)
        await editor.send_to(text_data=json.dumps(
            {"v": 1, "type": "preview", "id": "p1", "prompt": INSIDE}))
        got = await recv_until(editor, is_preview)
        # The other page hears nothing of it (a ping's pong comes first and alone).
        await other.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": "x"}))
        heard = await recv(other)
        await asyncio.gather(editor.disconnect(), other.disconnect())
        return got, heard

    (header, mask), heard = run(scenario())
    assert header["id"] == "p1" and not header["empty"]
    assert mask.shape == (360, 480) and mask[180, 240] and mask.mean() < 0.3
    assert heard["type"] == "pong"
    fresh = editing.reload(session)
    assert fresh.revision == revision and fresh.current.actions == []


def test_a_preview_does_not_wait_for_a_busy_core(monkeypatch):
    """Every core held (by a click's decode, say): the preview is skipped at once instead of
    queueing; once the core is free it is drawn."""
    session = make_session()
    monkeypatch.setattr(render, "cores", Cores(1))
    taken, release = threading.Event(), threading.Event()

    def busy_click() -> None:
        with render.cores.hold():
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=busy_click)
    holder.start()
    assert taken.wait(10)

    async def scenario() -> tuple[Any, Any]:
        comm = await connect(session.edit_token)
        await recv(comm)
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "preview", "id": "busy", "prompt": INSIDE}))
        skipped = await recv_until(comm, is_preview)
        release.set()
        await asyncio.get_running_loop().run_in_executor(None, holder.join)
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "preview", "id": "free", "prompt": INSIDE}))
        drawn = await recv_until(comm, is_preview)
        await comm.disconnect()
        return skipped, drawn

    try:
        skipped, drawn = run(scenario())
    finally:
        release.set()
        holder.join()
    assert skipped == {"v": 1, "type": "preview", "id": "busy", "skipped": True}
    assert drawn[0]["id"] == "free" and drawn[1][180, 240]


def test_previews_past_their_allowance_are_skipped_without_errors_or_eating_clicks():
    session = make_session()

    async def scenario() -> tuple[list[Any], Any]:
        comm = await connect(session.edit_token)
        await recv(comm)
        for i in range(30):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "preview", "id": f"p{i}",
                 "prompt": {"kind": "point", "x": 200 + i, "y": 180}}))
        # A click right after is not rate limited: previews have their own allowance.
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "click", "prompt": INSIDE}))
        seen: list[Any] = []
        while True:
            item = await recv(comm)
            seen.append(item)
            if isinstance(item, tuple) and item[0]["type"] == "mask" \
                    and item[0]["id"] == "click":
                break
        await comm.disconnect()
        return seen, None

    seen, _ = run(scenario())
    errors = [i for i in seen if isinstance(i, dict) and i.get("type") == "error"]
    assert errors == []
    skipped = [i for i in seen if isinstance(i, dict) and i.get("skipped")]
    assert len(skipped) >= 15  # 10 a second, at once: most of 30 sent in a burst


def test_a_view_link_and_bad_prompts_get_errors():
    session = make_session()

    async def scenario() -> tuple[Any, Any]:
        viewer = await connect(session.view_token)
        await recv(viewer)
        await viewer.send_to(text_data=json.dumps(
            {"v": 1, "type": "preview", "id": "v", "prompt": INSIDE}))
        forbidden = await recv_until(viewer, is_error("forbidden"))
        editor = await connect(session.edit_token)
        await recv(editor)
        await editor.send_to(text_data=json.dumps(
            {"v": 1, "type": "preview", "id": "b",
             "prompt": {"kind": "box", "x0": 1, "y0": 1, "x1": 50, "y1": 50}}))
        bad = await recv_until(editor, is_error("bad_field"))
        await asyncio.gather(viewer.disconnect(), editor.disconnect())
        return forbidden, bad

    forbidden, bad = run(scenario())
    assert forbidden["id"] == "v" and bad["id"] == "b"
