"""The session socket through channels' WebsocketCommunicator, with the real Redis channel
layer: every kind of bad input gets an error frame, and the connection and the session go on
with nothing half-written."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from maskweb.asgi import application
from maskweb.masking import editing
from tests.web.client import split_frame
from tests.web.conftest import edit, make_session

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

INSIDE = {"kind": "point", "x": 240, "y": 180}


def run(scenario: Any) -> Any:
    return asyncio.run(scenario)


async def connect(token: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, f"/ws/sessions/{token}/")
    connected, _ = await comm.connect(timeout=10)
    assert connected
    return comm


async def recv(comm: WebsocketCommunicator, timeout: float = 20) -> Any:
    message = await comm.receive_output(timeout=timeout)
    assert message["type"] == "websocket.send", message
    if message.get("bytes") is not None:
        return split_frame(message["bytes"])
    return json.loads(message["text"])


async def recv_until(comm: WebsocketCommunicator, predicate: Any, timeout: float = 30) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        item = await recv(comm, timeout=max(0.1, deadline - loop.time()))
        if predicate(item):
            return item


def is_mask(item: Any) -> bool:
    return isinstance(item, tuple)


def is_error(code: str) -> Any:
    return lambda item: isinstance(item, dict) and item.get("type") == "error" \
        and item["code"] == code


async def pong(comm: WebsocketCommunicator) -> None:
    await comm.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": "alive"}))
    reply = await recv_until(comm, lambda i: isinstance(i, dict) and i.get("type") == "pong")
    assert reply["id"] == "alive"


async def settled(comm: WebsocketCommunicator) -> None:
    """Reads the hello and waits for the end of the connect. After its hello a socket still
    draws the session's current mask, and sends it if there is one: a test that changes the
    session before that draw is done could see its change in that frame. A ping is read only
    once the connect is done."""
    hello = await recv(comm)
    assert hello["type"] == "hello", hello
    await pong(comm)


async def mask_or_pong(comm: WebsocketCommunicator) -> Any:
    """Pings, and returns what comes first: a mask frame already on its way, or the pong."""
    await comm.send_to(text_data=json.dumps({"v": 1, "type": "ping", "id": "p"}))
    return await recv_until(comm, lambda i: is_mask(i) or i.get("type") == "pong")


def actions_of(session) -> list:
    current = editing.reload(session).current
    assert current is not None
    return current.actions


def test_hello_then_a_click_gives_a_mask_frame_to_every_socket():
    session = make_session()

    async def scenario() -> None:
        editor, other = await connect(session.edit_token), await connect(session.view_token)
        hello = await recv(editor)
        assert hello["type"] == "hello" and hello["role"] == "edit"
        assert hello["state"]["status"] == "ready"
        assert (await recv(other))["role"] == "view"
        await editor.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "a", "prompt": INSIDE}))
        header, mask = await recv_until(editor, is_mask)
        assert header["id"] == "a" and mask[180, 240] and not mask[5, 5]
        seen, seen_mask = await recv_until(other, is_mask)
        assert seen["seq"] == header["seq"] and (seen_mask == mask).all()
        # Undo empties the object: an empty frame, no PNG bytes.
        await editor.send_to(text_data=json.dumps({"v": 1, "type": "undo"}))
        header, mask = await recv_until(editor, is_mask)
        assert header["empty"] and mask is None and header["can_redo"]
        await editor.disconnect()
        await other.disconnect()

    run(scenario())


def test_two_editors_on_one_edit_link_see_each_others_prompts_live():
    """Two browsers on the same edit link: each one's prompt reaches the other as a mask
    frame, and both draw the same object, built from both people's prompts."""
    session = make_session()
    outside = {"kind": "point", "x": 40, "y": 40, "positive": False}

    def answering(request_id: str) -> Any:
        return lambda item: is_mask(item) and item[0]["id"] == request_id

    async def scenario() -> None:
        first, second = await connect(session.edit_token), await connect(session.edit_token)
        assert (await recv(first))["role"] == (await recv(second))["role"] == "edit"
        # Each frame below is its broadcast, tagged with its request's id, not a connect's draw.
        await pong(first)
        await pong(second)

        await first.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "from-first", "prompt": INSIDE}))
        own, own_mask = await recv_until(first, answering("from-first"))
        seen, seen_mask = await recv_until(second, answering("from-first"))
        assert seen["seq"] == own["seq"] and (seen_mask == own_mask).all()
        assert seen_mask[180, 240] and not seen_mask[5, 5]

        await second.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "from-second", "prompt": outside}))
        own, own_mask = await recv_until(second, answering("from-second"))
        seen, seen_mask = await recv_until(first, answering("from-second"))
        assert seen["seq"] == own["seq"] > 0 and (seen_mask == own_mask).all()
        # One object, both people's prompts: the second added to the first's, not a new one.
        assert [p.get("positive", True) for p in seen["prompts"]] == [True, False]
        assert seen["object_id"] == own["object_id"] and seen_mask[180, 240]

        # Either may undo the other's prompt, and the other sees it.
        await first.send_to(text_data=json.dumps({"v": 1, "type": "undo", "id": "undo"}))
        undone, _ = await recv_until(second, answering("undo"))
        assert len(undone["prompts"]) == 1 and undone["can_redo"]
        await pong(first)
        await pong(second)
        await first.disconnect()
        await second.disconnect()

    run(scenario())
    assert len(editing.reload(session).current.effective_prompts()) == 1


def test_a_page_that_asks_for_the_status_gets_the_stored_one():
    """What a page that waited without news does (a view link may ask too): the answer is the
    database's status, with the question's id."""

    session = make_session(ready=False)

    async def ask(comm: WebsocketCommunicator, request_id: str) -> dict[str, Any]:
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "status", "id": request_id}))
        return await recv_until(comm, lambda i: isinstance(i, dict) and i.get("id") == request_id)

    async def scenario() -> None:
        comm = await connect(session.view_token)
        assert (await recv(comm))["state"]["status"] == "encoding"
        waiting = await ask(comm, "first")
        assert (waiting["type"], waiting["status"], waiting["progress"]) == \
            ("status", "encoding", 0.0)
        await database_sync_to_async(editing.encode_and_draw)(session.photo.pk, "grabcut")
        answer = await ask(comm, "second")
        assert (answer["type"], answer["status"], answer["progress"]) == ("status", "ready", 1.0)
        await comm.disconnect()

    run(scenario())


def test_a_photo_ready_while_its_page_connects_is_shown_ready(monkeypatch):
    """The encode ends after the socket has looked its link up and before it joined the
    session's group: the worker's "ready" went to a group the socket was not in yet, so the
    hello must say ready itself. (It said "encoding", from the session read before the join,
    and the page waited with no news: a CI run caught it.)"""
    session = make_session(ready=False)
    real_resolve = editing.resolve

    def resolve_then_encode(token: str) -> editing.Access:
        access = real_resolve(token)
        editing.encode_and_draw(session.photo.pk, "grabcut")  # the worker, just now
        return access

    monkeypatch.setattr(editing, "resolve", resolve_then_encode)

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        hello = await recv(comm)
        assert hello["type"] == "hello"
        assert hello["state"]["status"] == "ready"
        await comm.disconnect()

    run(scenario())


def test_the_clicker_gets_its_mask_once_and_the_others_get_it_too():
    """The clicking socket is answered directly (no round trip through the channel layer) and
    skips the broadcast copy of the same revision; another editor still gets the broadcast."""
    session = make_session()

    async def scenario() -> None:
        clicker, other = await connect(session.edit_token), await connect(session.edit_token)
        await settled(clicker)
        await settled(other)
        await clicker.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "a", "prompt": INSIDE}))
        header, _ = await recv_until(clicker, is_mask)
        seen, _ = await recv_until(other, is_mask)
        assert seen["seq"] == header["seq"]
        await asyncio.sleep(0.5)  # time for the broadcast copy to reach the clicker
        later = await mask_or_pong(clicker)
        assert not is_mask(later), f"a second frame for seq {later[0]['seq']}"
        await clicker.disconnect()
        await other.disconnect()

    run(scenario())


def test_a_socket_alone_on_its_session_broadcasts_nothing_until_another_joins(monkeypatch):
    """Frames go through the channel layer only for other sockets: a lone clicker's click is
    not broadcast; once a viewer joins, it gets the next click's frame; once it leaves, the
    broadcasts stop again. The render says the socket is alone, so a lone click does not even
    go off the event loop to publish."""
    from maskweb.masking import editing
    from maskweb.masking.plumbing import notify

    session = make_session()
    real_mask = notify.mask
    broadcast: list[int] = []

    def counted_mask(session_pk: int, seq: int, frame: bytes, **kwargs: Any) -> bool:
        broadcast.append(seq)
        return real_mask(session_pk, seq, frame, **kwargs)

    monkeypatch.setattr(notify, "mask", counted_mask)
    real_publish = editing.publish
    publish_calls: list[int] = []

    def counted_publish(rendered: Any, *args: Any, **kwargs: Any) -> bool:
        publish_calls.append(rendered.header["seq"])
        return real_publish(rendered, *args, **kwargs)

    monkeypatch.setattr(editing, "publish", counted_publish)

    async def click(comm: WebsocketCommunicator, request_id: str, dx: int) -> Any:
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": request_id,
             "prompt": {"kind": "point", "x": 240 + dx, "y": 180}}))
        header, _ = await recv_until(comm, is_mask)
        await asyncio.sleep(0.5)  # the broadcast, if any, follows the clicker's own frame
        return header

    async def scenario() -> None:
        clicker = await connect(session.edit_token)
        await recv(clicker)
        await click(clicker, "alone", 0)
        assert broadcast == [] and publish_calls == []
        viewer = await connect(session.view_token)
        await recv(viewer)
        header = await click(clicker, "watched", 4)
        await recv_until(viewer, lambda i: is_mask(i) and i[0]["seq"] == header["seq"])
        assert broadcast == [header["seq"]] and publish_calls == [header["seq"]]
        await viewer.disconnect()
        await click(clicker, "alone again", 8)
        assert broadcast == [header["seq"]] and publish_calls == [header["seq"]]
        await clicker.disconnect()

    run(scenario())


def test_a_viewer_a_redis_flush_dropped_from_its_group_is_back_after_a_ping():
    """The session's group lives in Redis. After a flush the viewer misses the editor's
    frames, until its next ping (pages ping every 25 s) joins it again and draws what it
    missed."""
    from maskweb.masking.plumbing.redis_client import get_redis

    session = make_session()

    async def click(comm: WebsocketCommunicator, request_id: str, dx: int) -> Any:
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": request_id,
             "prompt": {"kind": "point", "x": 240 + dx, "y": 180}}))
        header, _ = await recv_until(comm, is_mask)
        await asyncio.sleep(0.5)  # time for a broadcast to reach the viewer, if it is sent
        return header

    async def scenario() -> None:
        editor, viewer = await connect(session.edit_token), await connect(session.view_token)
        await settled(editor)
        await settled(viewer)
        get_redis().flushall()
        unheard = await click(editor, "unheard", 0)
        first = await mask_or_pong(viewer)
        # Not the editor's frame (its id): the viewer's own draw of the revision it missed.
        assert is_mask(first) and first[0]["id"] is None, \
            "the flush should have dropped the viewer from the group"
        assert first[0]["seq"] == unheard["seq"]
        header = await click(editor, "heard", 4)
        await recv_until(viewer, lambda i: is_mask(i) and i[0]["seq"] == header["seq"])
        await editor.disconnect()
        await viewer.disconnect()

    run(scenario())


def test_a_revision_whose_frame_never_came_is_drawn_at_the_next_ping():
    """With several web hosts, the host that stores a prompt sends its frame to the other
    pages once it has drawn it; a host killed in between sends nothing (the live version:
    tests/web/test_many_hosts.py). The prompt is in the database: the page's next ping draws
    it there, once. Without the catch-up the ping brought only its pong."""
    session = make_session()
    editor = edit(session)

    async def scenario() -> None:
        viewer = await connect(session.view_token)
        await settled(viewer)
        # Stored as a web host stores a click before drawing it, and then nothing: the host
        # is gone.
        await database_sync_to_async(editing.add_prompt)(editor, INSIDE)
        caught_up = await mask_or_pong(viewer)
        assert is_mask(caught_up), "the ping did not draw the stored prompt"
        header, mask = caught_up
        assert header["prompts"] == [{**INSIDE, "positive": True}] and mask[180, 240]
        await recv_until(viewer, lambda i: isinstance(i, dict) and i.get("type") == "pong")
        again = await mask_or_pong(viewer)
        assert not is_mask(again), "drawn twice"
        await viewer.disconnect()

    run(scenario())


@pytest.mark.parametrize("raw,code", [
    ("this is not json", "bad_json"),
    ("[1, 2, 3]", "bad_json"),
    ('{"v": 1, "type": "teleport"}', "unknown_type"),
    ('{"v": 1}', "unknown_type"),
    ('{"v": 1, "type": "prompt"}', "bad_field"),
    ('{"v": 1, "type": "prompt", "prompt": {"kind": "point", "x": 10}}', "bad_field"),
    ('{"v": 1, "type": "prompt", "prompt": {"kind": "point", "x": 9999, "y": 10}}',
     "out_of_bounds"),
    ('{"v": 1, "type": "prompt", "prompt": {"kind": "point", "x": NaN, "y": 10}}', "bad_json"),
    ('{"v": 1, "type": "prompt", "prompt": {"kind": "point", "x": Infinity, "y": 1}}',
     "bad_json"),
    ('{"v": 1, "type": "prompt", "prompt": {"kind": "point", "x": 1e999, "y": 1}}',
     "bad_field"),
    ('{"v": 1, "type": "candidate", "index": "two"}', "bad_field"),
    ('{"v": 1, "type": "reopen", "object_id": 42}', "not_found"),
    ('{"v": 1, "type": "apply"}', "empty"),
    ('{"v": 1, "type": "model", "model": "no-such-model"}', "bad_field"),
    ('{"v": 1, "type": "ping", "id": ' + json.dumps("x" * 65) + "}", "bad_field"),
], ids=["text", "array", "unknown", "no-type", "no-prompt", "missing-y", "outside", "nan",
        "infinity", "overflow", "candidate", "unknown-object", "empty-apply", "bad-model",
        "long-id"])
def test_bad_message_gets_an_error_frame_and_the_socket_goes_on(raw, code):
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)  # hello
        await comm.send_to(text_data=raw)
        error = await recv_until(comm, lambda i: isinstance(i, dict) and i["type"] == "error")
        assert error["code"] == code, error
        assert error["message"]
        await pong(comm)
        # The session is intact and still works.
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "prompt": INSIDE}))
        header, mask = await recv_until(comm, is_mask)
        assert mask[180, 240]
        await comm.disconnect()

    run(scenario())
    assert len(actions_of(session)) == 1


def test_ten_thousand_points_in_one_stroke_are_refused_whole():
    session = make_session()
    stroke = {"kind": "stroke", "points": [[10 + i % 400, 10] for i in range(10_000)],
              "radius": 4}

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)
        raw = json.dumps({"v": 1, "type": "prompt", "prompt": stroke})
        await comm.send_to(text_data=raw)
        error = await recv_until(comm, lambda i: isinstance(i, dict) and i["type"] == "error")
        # 10 000 points are also more bytes than a message may have: either refusal is right.
        assert error["code"] in ("too_many_points", "too_large")
        shorter = {**stroke, "points": stroke["points"][:3000]}
        small = json.dumps({"v": 1, "type": "prompt", "prompt": shorter})
        await comm.send_to(text_data=small)
        error = await recv_until(comm, lambda i: isinstance(i, dict) and i["type"] == "error")
        assert error["code"] == "too_many_points"
        await pong(comm)
        await comm.disconnect()

    run(scenario())
    assert actions_of(session) == []


def test_binary_frames_are_refused():
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)
        await comm.send_to(bytes_data=b"\x00\x01")
        assert (await recv_until(comm, is_error("bad_json")))["code"] == "bad_json"
        await pong(comm)
        await comm.disconnect()

    run(scenario())


def test_a_flood_is_rate_limited_and_nothing_is_half_written(settings):
    settings.WS_RATE_PER_SECOND = 2.0
    settings.WS_RATE_BURST = 4
    session = make_session()
    sent = 30

    async def scenario() -> tuple[int, int]:
        comm = await connect(session.edit_token)
        await recv(comm)
        for i in range(sent):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": f"p{i}",
                 "prompt": {"kind": "point", "x": 200 + i, "y": 180}}))
        covered = limited = 0
        # Accepted prompts are coalesced into fewer frames; the last one covers them all.
        while covered + limited < sent:
            item = await recv(comm, timeout=30)
            if is_mask(item):
                covered = len(item[0]["prompts"])
            elif item.get("type") == "error":
                assert item["code"] == "rate_limited"
                limited += 1
        await asyncio.sleep(1.0)  # the bucket refills: the socket works again
        await pong(comm)
        await comm.disconnect()
        return covered, limited

    covered, limited = run(scenario())
    assert limited > 0 and covered >= 4
    # Every accepted prompt is in the log, every refused one is not.
    assert len(actions_of(session)) == covered


def test_prompts_sent_while_decoding_are_drawn_together(monkeypatch):
    """A burst of clicks faster than the decoder: fewer decodes than prompts, and the last
    frame holds every prompt, so the page never waits on a growing queue."""
    from maskweb.masking.decoding import engine

    session = make_session()
    real_decode = engine.decode
    calls: list[int] = []

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[2].points))
        import time

        time.sleep(0.4)  # a decoder slower than the person clicking
        return real_decode(*args, **kwargs)

    burst = 6

    async def scenario() -> list[Any]:
        comm = await connect(session.edit_token)
        await recv(comm)
        monkeypatch.setattr(engine, "decode", slow_decode)
        for i in range(burst):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": f"c{i}",
                 "prompt": {"kind": "point", "x": 230 + 2 * i, "y": 175 + i}}))
        frames = [await recv_until(comm, is_mask)]
        while len(frames[-1][0]["prompts"]) < burst:
            frames.append(await recv_until(comm, is_mask))
        await comm.disconnect()
        return frames

    frames = run(scenario())
    header, mask = frames[-1]
    assert header["id"] == f"c{burst - 1}" and mask[180, 240]
    assert len(frames) < burst
    assert len(calls) < burst, f"one decode per prompt: {calls}"
    assert calls[-1] == burst  # the last decode saw every prompt at once
    assert len(actions_of(session)) == burst


def test_the_first_of_two_quick_clicks_is_answered_without_waiting_for_the_second(monkeypatch):
    """The clicker sees the first click's mask as soon as it is decoded, although the second
    click made it stale; a viewer gets only the newest mask."""
    from maskweb.masking.decoding import engine

    session = make_session()
    real_decode, real_add_prompt = engine.decode, editing.add_prompt
    decoding, second_written = threading.Event(), threading.Event()

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        # A decoder slower than the person clicking: it ends only once "b" is written (a
        # fixed sleep let a loaded machine write "b" after "a" was drawn, and then "a" was
        # rightly sent to the viewer too).
        decoding.set()
        second_written.wait(10)
        return real_decode(*args, **kwargs)

    def add_prompt(access: Any, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        written = real_add_prompt(access, prompt, *args, **kwargs)
        if prompt.x == 240:  # the consumer hands the service a typed schemas.PointPrompt
            second_written.set()
        return written

    async def scenario() -> None:
        comm, viewer = await connect(session.edit_token), await connect(session.view_token)
        await settled(comm)
        await settled(viewer)
        monkeypatch.setattr(engine, "decode", slow_decode)
        monkeypatch.setattr(editing, "add_prompt", add_prompt)
        for request_id, dx in (("a", 0), ("b", 10)):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": request_id,
                 "prompt": {"kind": "point", "x": 230 + dx, "y": 175}}))
            # "b" comes while "a" is being decoded
            assert await asyncio.to_thread(decoding.wait, 10)
        first, _ = await recv_until(comm, is_mask)
        assert first["id"] == "a" and len(first["prompts"]) == 1
        second, _ = await recv_until(comm, is_mask)
        assert second["id"] == "b" and len(second["prompts"]) == 2
        assert second["seq"] > first["seq"]
        seen, _ = await recv_until(viewer, is_mask)
        assert seen["id"] == "b", "the viewer is not sent the stale frame of \"a\""
        assert seen["seq"] == second["seq"]
        await comm.disconnect()
        await viewer.disconnect()

    run(scenario())


def test_a_mask_drawn_at_connect_is_not_sent_again_by_the_group(monkeypatch):
    """A socket that comes while someone clicks may draw that click's revision itself (its
    connect draws the current mask), while the same revision's broadcast waits in its channel
    for the connect to end. The page gets that frame once."""
    from maskweb.masking.live.consumers import SessionConsumer

    session = make_session()
    real_render, real_publish = SessionConsumer._render, editing.publish
    published = threading.Event()

    def late_render(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.access.role == editing.VIEW:  # the viewer's connect draws after the click
            assert published.wait(10)
        return real_render(self, *args, **kwargs)

    def publish(*args: Any, **kwargs: Any) -> Any:
        sent = real_publish(*args, **kwargs)
        published.set()
        return sent

    monkeypatch.setattr(SessionConsumer, "_render", late_render)
    monkeypatch.setattr(editing, "publish", publish)

    async def scenario() -> None:
        editor = await connect(session.edit_token)
        await settled(editor)
        viewer = await connect(session.view_token)
        assert (await recv(viewer))["type"] == "hello"  # in the group from here on
        await editor.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "a", "prompt": INSIDE}))
        header, _ = await recv_until(editor, is_mask)
        assert await asyncio.to_thread(published.wait, 10)
        drawn, _ = await recv_until(viewer, is_mask)
        assert drawn["seq"] == header["seq"] and drawn["id"] is None  # its own draw
        later = await mask_or_pong(viewer)
        assert not is_mask(later), f"seq {later[0]['seq']} came twice"
        await editor.disconnect()
        await viewer.disconnect()

    run(scenario())


def test_view_token_cannot_write_and_unknown_token_is_closed():
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.view_token)
        assert (await recv(comm))["role"] == "view"
        for message in ({"type": "prompt", "prompt": INSIDE}, {"type": "clear"},
                        {"type": "apply"}, {"type": "model", "model": "grabcut"},
                        {"type": "rename", "object_id": 1, "name": "x"}):
            await comm.send_to(text_data=json.dumps({"v": 1, "id": "w", **message}))
            error = await recv_until(comm, lambda i: isinstance(i, dict)
                                     and i["type"] == "error")
            assert error["code"] in ("forbidden", "not_found") and error["id"] == "w"
        await comm.disconnect()

        stranger = WebsocketCommunicator(application, "/ws/sessions/no-such-token/")
        connected, _ = await stranger.connect(timeout=10)
        assert connected  # accepted, then closed with 4404 so the page can say why
        closed = await stranger.receive_output(timeout=10)
        assert closed == {"type": "websocket.close", "code": 4404}
        # The page's side of the close: without it the consumer's channel-layer read is left
        # pending, and cancelling it at the end of the event loop hung now and then.
        await stranger.disconnect()

    run(scenario())
    assert actions_of(session) == []


def test_http_changes_reach_the_sockets():
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.view_token)
        await recv(comm)
        access = await database_sync_to_async(editing.resolve)(session.edit_token)
        await database_sync_to_async(editing.add_prompt)(access, INSIDE)
        await database_sync_to_async(editing.render_current)(access.session)
        header, mask = await recv_until(comm, is_mask)
        assert mask[180, 240]
        await database_sync_to_async(editing.apply)(access, "Thing")
        objects = await recv_until(comm, lambda i: isinstance(i, dict)
                                   and i["type"] == "objects")
        assert [o["name"] for o in objects["objects"]] == ["Thing"]
        assert objects["objects"][0]["png_url"].startswith(
            f"/api/v1/sessions/{session.view_token}/")
        await comm.disconnect()

    run(scenario())


def test_encode_progress_and_ready_reach_the_page_then_waiting_prompts_get_their_mask():
    session = make_session(ready=False)

    async def scenario() -> list[dict]:
        comm = await connect(session.edit_token)
        hello = await recv(comm)
        assert hello["state"]["status"] == "encoding"
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "prompt": INSIDE}))
        kept = await recv_until(comm, lambda i: isinstance(i, dict) and i["type"] == "status")
        assert kept["status"] == "encoding", "the prompt is kept while encoding"

        await database_sync_to_async(editing.encode_and_draw, thread_sensitive=False)(
            session.photo.pk, "grabcut")
        statuses: list[dict[str, Any]] = []
        while not statuses or statuses[-1]["status"] != "ready":
            statuses.append(await recv_until(
                comm, lambda i: isinstance(i, dict) and i["type"] == "status"))
        header, mask = await recv_until(comm, is_mask)  # the worker renders the waiting prompt
        assert mask[180, 240]
        await comm.disconnect()
        return statuses

    statuses = run(scenario())
    assert statuses[-1]["progress"] == 1.0
    assert any(s["status"] == "encoding" and 0 < s["progress"] < 1 for s in statuses), statuses


def test_a_page_that_joins_while_encoding_gets_the_mask_of_prompts_stored_before_it():
    """The worker draws the prompts stored while it encoded at the revision the joining page's
    hello already had: that frame is still news to the page (it has no mask of it), also after
    a ping while the photo was analysed."""
    session = make_session(ready=False)
    editor = edit(session)

    async def scenario() -> None:
        await database_sync_to_async(editing.add_prompt)(editor, INSIDE)
        viewer = await connect(session.view_token)
        hello = await recv(viewer)
        assert hello["state"]["status"] == "encoding" and hello["state"]["current"]["prompts"]
        await pong(viewer)  # a ping while encoding draws nothing and must not count as shown

        await database_sync_to_async(editing.encode_and_draw, thread_sensitive=False)(
            session.photo.pk, "grabcut")
        header, mask = await recv_until(viewer, is_mask)
        assert header["seq"] == hello["state"]["revision"] and mask[180, 240]
        await viewer.disconnect()

    run(scenario())


def test_a_prompt_the_model_fails_on_is_undone_and_the_socket_goes_on(monkeypatch):
    from maskweb.masking.decoding import engine

    session = make_session()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("decoder exploded")

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)
        with monkeypatch.context() as patch:
            patch.setattr(engine, "decode", broken)
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": "bad", "prompt": INSIDE}))
            error = await recv_until(comm, is_error("internal"))
            assert error["id"] == "bad" and "undone" in error["message"]
        await pong(comm)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "prompt": INSIDE}))
        header, mask = await recv_until(comm, is_mask)
        assert mask[180, 240] and len(header["prompts"]) == 1
        await comm.disconnect()

    run(scenario())
    obj = editing.reload(session).current
    assert len(obj.effective_prompts()) == 1


def test_an_idle_socket_outlives_the_channel_layers_blocking_read():
    """channels_redis blocks 5 s per read; a client read timeout of the same length (redis-py
    8's default) used to kill every socket idle for a few seconds."""
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.view_token)
        await recv(comm)
        await asyncio.sleep(8)
        access = await database_sync_to_async(editing.resolve)(session.edit_token)
        await database_sync_to_async(editing.add_prompt_and_render)(access, INSIDE)
        header, mask = await recv_until(comm, is_mask)
        assert mask[180, 240]
        await pong(comm)
        await comm.disconnect()

    run(scenario())


def test_apply_sends_the_empty_mask_before_the_new_object_list():
    """A page that sees the new list must already know the current mask is gone (else a
    click right after could be answered, in its eyes, by the stale empty frame)."""
    session = make_session()

    async def scenario() -> list[str]:
        comm = await connect(session.edit_token)
        await recv(comm)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "prompt": INSIDE}))
        await recv_until(comm, is_mask)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "apply"}))
        seen: list[str] = []
        while "objects" not in seen:
            item = await recv(comm)
            seen.append("empty-mask" if is_mask(item) and item[0]["empty"]
                        else "mask" if is_mask(item) else item["type"])
        await comm.disconnect()
        return seen

    assert run(scenario()) == ["empty-mask", "objects"]


def test_a_socket_on_a_ready_session_fetches_the_embedding_before_the_first_click():
    """The embedding is in Redis only (made by a worker, or this process restarted): opening
    the socket brings it into the process, so the first click does not wait for Redis."""
    from maskweb.masking.decoding import embeddings

    session = make_session()
    key = embeddings.embedding_key(session.photo, session.model_id)
    embeddings.local_cache.clear()

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        assert (await recv(comm))["type"] == "hello"
        for _ in range(100):
            if embeddings.local_cache.get(key) is not None:
                break
            await asyncio.sleep(0.05)
        await comm.disconnect()

    run(scenario())
    assert embeddings.local_cache.get(key) is not None


def test_a_clicks_decode_starts_before_its_prompt_is_written(monkeypatch):
    """The socket knows the log it last wrote, so it starts decoding log + the new prompt as
    the message arrives (editing.guess_next), not after the write's locked transaction."""
    from maskweb.masking.decoding import engine

    session = make_session()
    real_decode, real_record = engine.decode, editing.current._record
    decoding = threading.Event()
    started_first: list[bool] = []

    def watched_decode(*args: Any, **kwargs: Any) -> Any:
        decoding.set()
        return real_decode(*args, **kwargs)

    def watched_record(*args: Any, **kwargs: Any) -> Any:
        started_first.append(decoding.wait(5))  # without a guess it starts only in here
        return real_record(*args, **kwargs)

    async def scenario() -> Any:
        comm = await connect(session.edit_token)
        await recv(comm)
        monkeypatch.setattr(engine, "decode", watched_decode)
        monkeypatch.setattr(editing.current, "_record", watched_record)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "id": "a",
                                                 "prompt": INSIDE}))
        frame = await recv_until(comm, is_mask)
        await comm.disconnect()
        return frame

    header, mask = run(scenario())
    assert started_first == [True]
    assert header["id"] == "a" and len(header["prompts"]) == 1 and mask[180, 240]


def test_a_wrong_guess_is_never_shown(monkeypatch):
    """Another editor adds a prompt that this socket has not seen: its guess (its own log +
    its click) is decoded for nothing, and the frame is drawn from the real log."""
    from maskweb.masking.decoding import engine

    session = make_session()
    real_decode, real_add = engine.decode, editing.add_prompt
    decoded: list[int] = []
    guess_decoding = threading.Event()

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(len(args[2].points))
        if len(args[2].points) == 2:
            guess_decoding.set()
        return real_decode(*args, **kwargs)

    def add_prompt_after_the_guess(*args: Any, **kwargs: Any) -> Any:
        # A guess that finds every core taken gives up (render.prefetch): let it have its
        # core, so that a wrong prediction really is in the cache for the render to avoid.
        assert guess_decoding.wait(10), "the guess was not decoded"
        return real_add(*args, **kwargs)

    async def scenario() -> Any:
        comm = await connect(session.edit_token)
        await recv(comm)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "id": "a",
                                                 "prompt": INSIDE}))
        await recv_until(comm, is_mask)
        # Written straight to the database: nothing tells this socket.
        await database_sync_to_async(editing.add_prompt)(
            editing.Access(session, editing.EDIT),
            {"kind": "point", "x": 250, "y": 185})
        monkeypatch.setattr(engine, "decode", counting_decode)
        monkeypatch.setattr(editing, "add_prompt", add_prompt_after_the_guess)
        await comm.send_to(text_data=json.dumps({"v": 1, "type": "prompt", "id": "b",
                                                 "prompt": {"kind": "point", "x": 5, "y": 5,
                                                            "positive": False}}))
        frame = await recv_until(comm, is_mask)
        await comm.disconnect()
        return frame

    header, mask = run(scenario())
    assert header["id"] == "b" and len(header["prompts"]) == 3
    assert 2 in decoded, f"the guess (2 prompts) was decoded: {decoded}"
    assert decoded.count(3) == 1, decoded
    assert mask[180, 240] and not mask[5, 5]


def test_a_click_on_an_idle_socket_is_written_and_rendered_in_one_hand_off(monkeypatch):
    """Off the event loop once, not twice; and a prompt the write refuses still gets its error
    frame with its id, with nothing written and the socket going on."""
    threads: dict[str, list[int]] = {"write": [], "render": []}
    real_add, real_render = editing.add_prompt, editing.render_prompts

    def add_prompt(*args: Any, **kwargs: Any) -> Any:
        threads["write"].append(threading.get_ident())
        return real_add(*args, **kwargs)

    def render_prompts(*args: Any, **kwargs: Any) -> Any:
        threads["render"].append(threading.get_ident())
        return real_render(*args, **kwargs)

    monkeypatch.setattr(editing, "add_prompt", add_prompt)
    monkeypatch.setattr(editing, "render_prompts", render_prompts)
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "outside", "prompt": {"kind": "point", "x": 9999,
                                                                    "y": 5}}))
        error = await recv_until(comm, is_error("out_of_bounds"))
        assert error["id"] == "outside"
        await comm.send_to(text_data=json.dumps(
            {"v": 1, "type": "prompt", "id": "inside", "prompt": INSIDE}))
        header, mask = await recv_until(comm, is_mask)
        assert header["id"] == "inside" and len(header["prompts"]) == 1 and mask[180, 240]
        await comm.disconnect()

    run(scenario())
    assert len(threads["render"]) == 1, threads
    assert threads["write"][-1] == threads["render"][0], "the click went off the loop twice"
    assert len(actions_of(session)) == 1


def test_a_click_whose_write_outlasts_the_running_render_still_gets_its_mask(monkeypatch):
    """The second click is written while the first one's render is running, and that render
    ends before the write does: the second click must start a render of its own (it was
    left unanswered until the next click, or for good if none came)."""
    real_add = editing.add_prompt
    writes: list[int] = []

    def add_prompt(*args: Any, **kwargs: Any) -> Any:
        writes.append(1)
        if len(writes) == 2:
            time.sleep(0.5)  # outlasts the first click's decode and render
        return real_add(*args, **kwargs)

    monkeypatch.setattr(editing, "add_prompt", add_prompt)
    session = make_session()

    async def scenario() -> None:
        comm = await connect(session.edit_token)
        await recv(comm)
        for request_id, dx in (("a", 0), ("b", 10)):
            await comm.send_to(text_data=json.dumps(
                {"v": 1, "type": "prompt", "id": request_id,
                 "prompt": {"kind": "point", "x": 230 + dx, "y": 175}}))
        header, _ = await recv_until(comm, lambda i: is_mask(i) and len(i[0]["prompts"]) == 2,
                                     timeout=10)
        assert header["id"] == "b"
        await comm.disconnect()

    run(scenario())
