"""The session services without sockets: prompt log, undo/redo/clear, candidates, objects,
model choice, the embedding cache, and coordinates in the stored grid."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from maskweb.masking import editing
from maskweb.masking.decoding import embeddings, render
from maskweb.masking.decoding.cores import Cores
from maskweb.masking.jobs import encoding
from maskweb.masking.models import MaskObject, Status
from maskweb.masking.plumbing.redis_client import get_redis
from maskweb.masking.protocol.schemas import ProtocolError
from tests.web.client import two_tone_photo
from tests.web.conftest import edit, make_session, view, wait_for_decodes

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = {"kind": "point", "x": 240, "y": 180}
OUTSIDE_BG = {"kind": "point", "x": 30, "y": 30, "positive": False}


def mask_of(session) -> np.ndarray | None:
    rendered = editing.render_current(session, broadcast=False)
    return rendered.current.mask if rendered.current else None


def test_click_inside_the_object_masks_the_object():
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    mask = mask_of(session)
    assert mask is not None and mask.shape == (360, 480)
    assert mask[120:240, 160:320].mean() > 0.8 and mask.mean() < 0.3


def test_prompts_are_stored_in_the_stored_grid():
    # Stored 480x360 with EXIF 6 (upright 360x480): upright (u, v) = stored (v, 360 - u).
    session = make_session(two_tone_photo(fmt="JPEG", exif_orientation=6), "r.jpg")
    editing.add_prompt(edit(session), {"kind": "point", "x": 100, "y": 50})
    obj = editing.reload(session).current
    assert obj.actions[0]["prompt"] == {"kind": "point", "x": 50.0, "y": 260.0,
                                        "positive": True}
    state = editing.session_state(edit(session))
    assert state["current"]["prompts"][0] == {"kind": "point", "x": 100.0, "y": 50.0,
                                              "positive": True}


def test_mask_of_a_rotated_photo_is_upright_and_covers_the_object():
    session = make_session(two_tone_photo(fmt="JPEG", exif_orientation=6), "r.jpg")
    # Upright, the object (stored x 160..320, y 120..240) spans u 120..240, v 160..320.
    editing.add_prompt(edit(session), {"kind": "point", "x": 180, "y": 240})
    mask = mask_of(session)
    assert mask.shape == (480, 360)
    assert mask[160:320, 120:240].mean() > 0.8 and mask.mean() < 0.3
    # The download is in the stored grid's size, turned upright by the PNG writer.
    png = services_png(session)
    assert png.shape == (480, 360) and png[240, 180] and not png[10, 10]


def services_png(session) -> np.ndarray:
    from maskweb.masking.editing import downloads

    mask = mask_of(session)
    assert mask is not None
    data = downloads.png(session.photo, [(None, mask)])
    return np.asarray(Image.open(io.BytesIO(data))) >= 128


def test_undo_redo_and_clear_walk_the_log():
    session = make_session()
    access = edit(session)
    editing.add_prompt(access, INSIDE)
    editing.add_prompt(access, OUTSIDE_BG)
    assert len(editing.reload(session).current.effective_prompts()) == 2
    editing.undo(access)
    obj = editing.reload(session).current
    assert obj.effective_prompts() == [obj.actions[0]["prompt"]] and obj.can_redo
    editing.redo(access)
    assert len(editing.reload(session).current.effective_prompts()) == 2
    editing.clear(access)
    assert editing.reload(session).current.effective_prompts() == []
    assert mask_of(session) is None
    editing.undo(access)  # clear is undoable
    assert len(editing.reload(session).current.effective_prompts()) == 2
    editing.undo(access)
    editing.add_prompt(access, {"kind": "point", "x": 250, "y": 170})  # drops the redo tail
    obj = editing.reload(session).current
    assert len(obj.actions) == 2 and not obj.can_redo


def test_undo_with_nothing_to_undo_changes_nothing():
    session = make_session()
    before = editing.reload(session).revision
    editing.undo(edit(session))
    assert editing.reload(session).revision == before


def test_view_access_cannot_write():
    session = make_session()
    with pytest.raises(editing.Forbidden):
        editing.add_prompt(view(session), INSIDE)
    with pytest.raises(editing.Forbidden):
        editing.apply(view(session))
    assert editing.reload(session).current.actions == []


@pytest.mark.parametrize("prompt,code", [
    ({"kind": "point", "x": 481, "y": 10}, "out_of_bounds"),
    ({"kind": "point", "x": -1, "y": 10}, "out_of_bounds"),
    ({"kind": "point", "x": float("nan"), "y": 10}, "bad_field"),
    ({"kind": "point", "x": float("inf"), "y": 10}, "bad_field"),
    ({"kind": "point", "x": True, "y": 10}, "bad_field"),
    ({"kind": "point", "x": "10", "y": 10}, "bad_field"),
    ({"kind": "point", "y": 10}, "bad_field"),
    ({"kind": "box", "x0": 1, "y0": 1, "x1": 1, "y1": 50}, "bad_field"),
    ({"kind": "stroke", "points": [[1, 1]] * 10_000, "radius": 5}, "too_many_points"),
    ({"kind": "stroke", "points": [[1, 1], [2]], "radius": 5}, "bad_field"),
    ({"kind": "stroke", "points": [[1, 1]], "radius": 0}, "bad_field"),
    ({"kind": "lasso"}, "bad_field"),
    ("point", "bad_field"),
])
def test_bad_prompt_is_refused_and_nothing_is_written(prompt, code):
    session = make_session()
    with pytest.raises(ProtocolError) as err:
        editing.add_prompt(edit(session), prompt)
    assert err.value.code == code
    fresh = editing.reload(session)
    assert fresh.current.actions == [] and fresh.revision == session.revision


def test_box_and_stroke_prompts_mask_the_object():
    session = make_session()
    access = edit(session)
    editing.add_prompt(access, {"kind": "box", "x0": 150, "y0": 110, "x1": 330, "y1": 250})
    assert mask_of(session)[180, 240]
    editing.clear(access)
    editing.add_prompt(access, {"kind": "stroke", "points": [[200, 160], [280, 200]],
                                 "radius": 8})
    mask = mask_of(session)
    assert mask[180, 240] and not mask[10, 10]


def test_apply_makes_an_object_and_starts_the_next():
    session = make_session()
    access = edit(session)
    with pytest.raises(ProtocolError) as err:
        editing.apply(access)
    assert err.value.code == "empty"
    editing.add_prompt(access, INSIDE)
    obj = editing.apply(access, "Lemon")
    fresh = editing.reload(session)
    assert obj.applied and obj.name == "Lemon" and obj.mask_png
    assert abs(obj.area - 160 * 120) < 0.2 * 160 * 120  # stored-grid pixels
    assert fresh.current.number == 2 and fresh.current.actions == []
    state = editing.session_state(edit(session))
    assert [o["name"] for o in state["objects"]] == ["Lemon"]


def test_rename_hide_delete_and_reopen_objects():
    session = make_session()
    access = edit(session)
    editing.add_prompt(access, INSIDE)
    editing.apply(access)
    editing.add_prompt(edit(session), {"kind": "point", "x": 30, "y": 30})
    editing.apply(edit(session))
    editing.update_object(edit(session), 1, name="Sign", visible=False)
    one = MaskObject.objects.get(session=session, number=1)
    assert one.name == "Sign" and not one.visible
    # Hidden objects are left out of "all objects" downloads.
    assert [o.number for o, _ in editing.visible_objects(editing.reload(session))] == [2]
    editing.reopen(edit(session), 1)
    fresh = editing.reload(session)
    assert fresh.current.number == 1 and not fresh.current.applied
    assert len(fresh.current.effective_prompts()) == 1
    assert not MaskObject.objects.filter(session=session, number=3).exists(), \
        "the empty next object is dropped on reopen"
    editing.delete_object(edit(session), 2)
    assert not MaskObject.objects.filter(session=session, number=2).exists()
    with pytest.raises(ProtocolError) as err:
        editing.update_object(edit(session), 99, name="x")
    assert err.value.code == "not_found"


def test_candidate_selection_is_kept_until_the_next_prompt():
    session = make_session()
    access = edit(session)
    editing.add_prompt(access, INSIDE)
    scores = editing.render_current(session, broadcast=False).current.scores
    editing.select_candidate(access, len(scores) - 1)
    assert editing.reload(session).current.candidate == len(scores) - 1
    editing.add_prompt(access, OUTSIDE_BG)
    assert editing.reload(session).current.candidate == 0
    with pytest.raises(ProtocolError):
        editing.select_candidate(access, -1)


def test_same_photo_is_encoded_once_by_anyone():
    first = make_session(two_tone_photo(seed=9))
    assert first.status == Status.READY
    key = embeddings.embedding_key(first.photo, "grabcut")
    assert get_redis().exists(key)
    second = make_session(two_tone_photo(seed=9), ready=False)
    assert second.status == Status.READY, "a second upload needs no encode at all"
    assert editing.encode_and_draw(second.photo.pk, "grabcut") == encoding.ALREADY


def test_missing_embedding_is_reencoded_and_the_prompts_replayed():
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    before = mask_of(session)
    get_redis().flushall()
    embeddings.local_cache.clear()
    render.predictions.clear()
    rendered = editing.render_current(session, broadcast=False)
    assert rendered.current is None
    assert rendered.session.status == Status.ENCODING
    assert "again" in rendered.session.message
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    after = mask_of(editing.reload(session))
    assert (after == before).mean() > 0.99


def test_a_mask_sent_before_its_embedding_was_lost_is_sent_again_after_the_reencode():
    """A page that reconnects after the embedding was evicted waits for the worker's frame of
    the same revision. "Sent already" (the mark that keeps the worker and a socket from
    both sending one revision) must not stop it: it was stale."""
    import asyncio

    from asgiref.sync import async_to_sync

    from tests.web.plumbing.test_notify import listen

    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    revision = editing.reload(session).revision
    assert editing.render_current(session).header["seq"] == revision  # broadcast: marked sent
    key = embeddings.embedding_key(session.photo, "grabcut")
    get_redis().delete(key)  # evicted; the mark stays
    embeddings.local_cache.clear()
    render.predictions.clear()
    assert editing.render_current(session, broadcast=False).current is None

    layer, channel = listen(session.pk)
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE

    async def heard() -> list[dict]:
        messages: list[dict] = []
        try:
            while True:
                messages.append(await asyncio.wait_for(layer.receive(channel), 2))
        except TimeoutError:
            return messages

    messages = async_to_sync(heard)()
    assert [m.get("status") for m in messages if m["type"] == "session.status"][-1] == "ready"
    assert [m["seq"] for m in messages if m["type"] == "session.mask"] == [revision]


def test_embedding_kept_by_a_web_process_is_written_back_after_a_flush():
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    mask_of(session)
    key = embeddings.embedding_key(session.photo, "grabcut")
    get_redis().flushall()
    render.predictions.clear()
    assert mask_of(session) is not None
    assert get_redis().exists(key), "the local copy went back to Redis for the others"


def test_prompts_while_encoding_are_kept():
    session = make_session(ready=False)
    editing.add_prompt(edit(session), INSIDE)
    assert editing.render_current(session, broadcast=False).current is None
    editing.encode_and_draw(session.photo.pk, "grabcut")
    assert mask_of(editing.reload(session))[180, 240]


def test_unknown_model_is_refused_and_switching_replays():
    session = make_session()
    with pytest.raises(ProtocolError):
        editing.switch_model(edit(session), "no-such-model")
    editing.add_prompt(edit(session), INSIDE)
    switched = editing.switch_model(edit(session), "grabcut")
    assert switched.status == Status.READY and switched.model_id == "grabcut"
    assert mask_of(switched)[180, 240]


def test_prompt_limit_per_object(settings):
    settings.WS_MAX_PROMPTS = 3
    session = make_session()
    for i in range(3):
        editing.add_prompt(edit(session), {"kind": "point", "x": 200 + i, "y": 180})
    with pytest.raises(ProtocolError) as err:
        editing.add_prompt(edit(session), INSIDE)
    assert err.value.code == "too_many_points"
    assert len(editing.reload(session).current.actions) == 3


def test_unknown_token_is_not_found():
    with pytest.raises(editing.NotFound):
        editing.resolve("nope")
    session = make_session()
    assert editing.resolve(session.view_token).role == editing.VIEW
    assert editing.resolve(session.edit_token).role == editing.EDIT


def test_a_dead_workers_lock_runs_out_and_the_next_worker_encodes(monkeypatch):
    import time

    monkeypatch.setattr(encoding, "LOCK_SECONDS", 1)
    session = make_session(ready=False)
    key = embeddings.embedding_key(session.photo, "grabcut")
    # What a worker killed mid-encode leaves behind: its lock, and no embedding.
    get_redis().set(encoding.lock_key(key), "dead-worker", ex=1)
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.BUSY
    time.sleep(1.2)
    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    assert editing.reload(session).status == Status.READY
    assert encoding.unfinished() == []


def queued_encodes() -> list[str]:
    """The encode jobs waiting in Celery's queue (a Redis list), as "(photo_id, 'model')"."""
    return [json.loads(item)["headers"]["argsrepr"] for item in get_redis().lrange("celery", 0, -1)]


def test_a_session_whose_encode_job_was_lost_gets_it_back_when_a_page_asks():
    """A Redis that lost its data loses the queued job and the messages a page waits on: it asks
    for the status, and the job is queued again (once, whoever asks)."""
    session = make_session(ready=False)
    job = f"({session.photo.pk}, 'grabcut')"
    assert queued_encodes() == [job]
    get_redis().flushall()
    assert editing.encode_status(view(session)).status == Status.ENCODING
    assert queued_encodes() == [job]
    editing.encode_status(edit(session))
    assert queued_encodes() == [job], "a second ask while the job waits queues nothing"

    assert editing.encode_and_draw(session.photo.pk, "grabcut") == encoding.DONE
    assert editing.encode_status(edit(session)).status == Status.READY


def test_a_session_being_encoded_is_not_queued_again_when_a_page_asks():
    session = make_session(ready=False)
    key = embeddings.embedding_key(session.photo, "grabcut")
    get_redis().flushall()
    get_redis().set(encoding.lock_key(key), "a-worker-encoding-it", ex=10)
    assert editing.encode_status(edit(session)).status == Status.ENCODING
    assert queued_encodes() == []


def test_a_page_asking_while_redis_is_down_gets_the_stored_status(settings):
    from maskweb import runner

    session = make_session(ready=False)
    settings.REDIS_URL = f"redis://127.0.0.1:{runner.free_port()}/0"  # nothing listens there
    settings.REDIS_RETRY_SECONDS = 0.3  # a Redis that stays down, not one being restarted
    assert editing.encode_status(edit(session)).status == Status.ENCODING


def test_a_click_after_many_other_sessions_clicked_is_one_decode(monkeypatch):
    """Each active session keeps its last prediction in memory: a new click is one decode on
    top of it, not a replay of the whole chain (with 16 sessions, an LRU of 16 entries lost
    them all and every click replayed its object's log)."""
    from maskweb.masking.decoding import engine

    sessions = [make_session(two_tone_photo(seed=seed)) for seed in range(20)]
    first = sessions[0]
    for step in (INSIDE, {"kind": "point", "x": 250, "y": 170}):
        editing.add_prompt(edit(first), step)
        mask_of(first)
    for session in sessions[1:]:
        editing.add_prompt(edit(session), INSIDE)
        mask_of(session)
    calls: list[int] = []
    real_decode = engine.decode

    def counting_decode(*args, **kwargs):
        calls.append(len(args[2].points))
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(engine, "decode", counting_decode)
    editing.add_prompt(edit(first), OUTSIDE_BG)
    assert mask_of(editing.reload(first)) is not None
    assert calls == [3], f"decodes (prompts each): {calls}"


def test_each_prefix_of_the_prompt_log_has_its_own_cache_key():
    keys = render.prefix_digests([INSIDE, OUTSIDE_BG])
    assert keys[:1] == render.prefix_digests([INSIDE]), "a longer log keeps its prefixes' keys"
    assert keys[1] != render.prefix_digests([OUTSIDE_BG, INSIDE])[1], "order matters"
    assert len(set(keys)) == 2


def held_decoder(monkeypatch) -> tuple[list[str], threading.Event, threading.Event]:
    """engine.decode that records its thread and holds until ``release`` is set."""
    from maskweb.masking.decoding import engine

    real = engine.decode
    threads: list[str] = []
    started, release = threading.Event(), threading.Event()

    def held(*args, **kwargs):
        threads.append(threading.current_thread().name)
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "decode", held)
    return threads, started, release


def test_a_click_is_decoded_while_its_prompt_is_committed_and_only_once(monkeypatch):
    session = make_session()
    threads, started, release = held_decoder(monkeypatch)
    editing.add_prompt(edit(session), INSIDE)  # returns while the decode is still held
    assert started.wait(10), "the decode did not start before the render asked for it"
    release.set()
    mask = mask_of(session)  # waits for the running decode instead of decoding again
    assert mask is not None and mask[180, 240] and not mask[10, 10]
    assert len(threads) == 1 and threads[0].startswith("prefetch"), threads


def test_a_prefetch_counts_as_work_in_flight_until_its_decode_is_cached(monkeypatch):
    """What the web tests wait on between tests (see tests/web/conftest.py)."""
    session = make_session()
    _, started, release = held_decoder(monkeypatch)
    assert render.work_in_flight() == 0
    editing.add_prompt(edit(session), INSIDE)
    assert started.wait(10)
    assert render.work_in_flight() == 2  # the prefetch, and the decode it runs
    release.set()
    wait_for_decodes(timeout=10)  # fails unless work_in_flight() comes down to 0
    stored = editing.stored_prompt(edit(session), INSIDE)
    assert render.in_hand(editing.reload(session), [stored]), "quiet before it was cached"


def test_a_guessed_log_is_not_queued_again_by_its_write_and_a_quick_next_click_gets_a_place(
        monkeypatch):
    """The socket's guess decodes a click before its write; the write's own prefetch must not
    take a second place for the same log (a key has two), or the next click, coming while
    the first decodes, would find none and wait for the first render to finish."""
    monkeypatch.setattr(render, "CORES", 2)  # a free core for the second click
    monkeypatch.setattr(render, "cores", Cores(2))
    session = make_session()
    threads, started, release = held_decoder(monkeypatch)
    access = edit(session)
    log = editing.PromptLog(editing.reload(session), [])
    assert editing.guess_next(access, log, INSIDE)
    assert started.wait(10)
    written = editing.add_prompt(access, INSIDE)  # its prefetch: already decoding, skipped
    assert written is not None
    assert editing.guess_next(access, written, OUTSIDE_BG), "no place left for the next click"
    release.set()
    assert mask_of(editing.reload(session)) is not None
    assert len(threads) == 2, threads


def test_no_prefetch_while_every_core_decodes(monkeypatch):
    monkeypatch.setattr(render, "CORES", 0)
    session = make_session()
    threads, _, release = held_decoder(monkeypatch)
    release.set()
    editing.add_prompt(edit(session), INSIDE)
    assert threads == []
    assert mask_of(session)[180, 240]
    assert len(threads) == 1 and not threads[0].startswith("prefetch")


def test_a_prefetch_the_model_fails_on_is_reported_by_the_render_and_undone(monkeypatch):
    from maskweb.masking.decoding import engine

    session = make_session()

    def broken(*args, **kwargs):
        raise RuntimeError("decoder fell over")

    monkeypatch.setattr(engine, "decode", broken)
    access = edit(session)
    editing.add_prompt(access, INSIDE)
    with pytest.raises(ProtocolError, match="fell over"):
        editing.render_prompts(access, broadcast=False)
    assert editing.reload(session).current.effective_prompts() == []


def test_a_quick_second_click_is_decoded_alongside_the_first_when_a_core_is_free(monkeypatch):
    from maskweb.masking.decoding import engine

    monkeypatch.setattr(render, "CORES", 2)
    monkeypatch.setattr(render, "cores", Cores(2))
    session = make_session()
    real = engine.decode
    seen: list[tuple[int, bool]] = []  # (points, fed the previous prediction)
    both_started, release = threading.Barrier(3), threading.Event()

    def held(model_id, embedding, prompts, previous):
        seen.append((len(prompts.points), previous is not None))
        both_started.wait(10)
        assert release.wait(10)
        return real(model_id, embedding, prompts, previous)

    monkeypatch.setattr(engine, "decode", held)
    editing.add_prompt(edit(session), INSIDE)
    editing.add_prompt(edit(session), {"kind": "point", "x": 250, "y": 190})
    both_started.wait(10)  # two decodes at once: the second did not wait for the first
    release.set()
    assert mask_of(session)[180, 240]
    assert sorted(seen) == [(1, False), (2, False)], seen


def test_a_quick_second_click_is_decoded_alongside_a_first_one_that_a_render_decodes(
        monkeypatch):
    """The first click found no core free, so no prefetch: its render decodes it once a core
    frees up. A second click that comes meanwhile, with a core free, does not wait for it."""
    from maskweb.masking.decoding import engine
    from tests.web.decoding.test_cores import hold_in_thread

    monkeypatch.setattr(render, "CORES", 2)
    monkeypatch.setattr(render, "cores", Cores(2))
    session = make_session()
    access = edit(session)
    busy = [hold_in_thread(render.cores) for _ in range(2)]  # other sessions' decodes
    editing.add_prompt(access, INSIDE)  # no core free: nothing prefetched
    for holder, release_core in busy:
        release_core.set()
        holder.join(10)
    real = engine.decode
    seen: list[str] = []
    both_started, release = threading.Barrier(3), threading.Event()

    def held(model_id, embedding, prompts, previous):
        seen.append(threading.current_thread().name)
        both_started.wait(10)
        assert release.wait(10)
        return real(model_id, embedding, prompts, previous)

    monkeypatch.setattr(engine, "decode", held)
    first = threading.Thread(target=editing.render_prompts, args=(access,),
                             kwargs={"broadcast": False}, name="render")
    first.start()
    for _ in range(1000):  # until the render's decode has begun
        if seen:
            break
        threading.Event().wait(0.01)
    assert seen, "the render did not decode"
    editing.add_prompt(access, {"kind": "point", "x": 250, "y": 190})
    both_started.wait(10)  # broken (a timeout) when the second decode waits for the first
    release.set()
    first.join(10)
    assert mask_of(editing.reload(session))[180, 240]
    assert seen[0] == "render" and seen[1].startswith("prefetch"), seen


def test_a_render_that_waited_for_a_core_decodes_the_prompts_that_came_meanwhile_at_once(
        monkeypatch):
    """With every core busy, a render reads the log again once it has a core: the clicks that
    came while it waited are decoded with its own, in one step, not one decode each."""
    from maskweb.masking.decoding import engine
    from tests.web.decoding.test_cores import hold_in_thread

    monkeypatch.setattr(render, "CORES", 1)
    monkeypatch.setattr(render, "cores", Cores(1))
    session = make_session()
    real = engine.decode
    decoded: list[int] = []  # prompts per decode

    def counting(model_id, embedding, prompts, previous):
        decoded.append(len(prompts.points))
        return real(model_id, embedding, prompts, previous)

    access = edit(session)
    editing.add_prompt(access, INSIDE)
    assert mask_of(session) is not None  # the first click, drawn: the next build on it
    monkeypatch.setattr(engine, "decode", counting)
    holder, release = hold_in_thread(render.cores)  # another session's decode
    editing.add_prompt(access, OUTSIDE_BG)  # no core free: nothing prefetched
    rendered: list[editing.Rendered] = []
    render_thread = threading.Thread(target=lambda: rendered.append(
        editing.render_prompts(access, broadcast=False)))
    render_thread.start()
    render_thread.join(0.2)
    assert render_thread.is_alive(), "the render did not wait for the busy core"
    editing.add_prompt(access, {"kind": "point", "x": 250, "y": 190})
    editing.add_prompt(access, {"kind": "point", "x": 40, "y": 300, "positive": False})
    release.set()
    holder.join(10)
    render_thread.join(10)
    assert decoded == [4], f"decodes (prompts each): {decoded}"
    assert rendered and rendered[0].header is not None
    assert len(rendered[0].header["prompts"]) == 4
    assert not rendered[0].superseded
    assert render.cores.busy() == 0


def test_a_render_waiting_for_the_decode_of_its_own_click_leaves_its_core_to_others(
        monkeypatch):
    """A render takes a core before it finds that a prefetch started decoding the same
    prompts a moment earlier. Waiting for that decode, it must not keep the core: with two
    cores, one decode would hold both while another session's click waited."""
    monkeypatch.setattr(render, "CORES", 2)
    monkeypatch.setattr(render, "cores", Cores(2))
    monkeypatch.setattr(render, "prefetch", lambda *args, **kwargs: False)
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    session = editing.reload(session)
    prompts = session.current.effective_prompts()
    threads, started, release = held_decoder(monkeypatch)
    first = threading.Thread(target=render.predict, args=(session, prompts), name="first")
    first.start()
    assert started.wait(10)

    def render_after_the_race() -> None:
        with render.cores.hold():  # as render_current, which checked before the decode began
            render.predict(session, prompts)

    second = threading.Thread(target=render_after_the_race, name="second")
    second.start()
    second.join(0.2)
    assert second.is_alive(), "it did not wait for the running decode"
    with render.cores.hold_if_free() as free:
        assert free, "the waiting render kept a core: one decode held both"
    release.set()
    first.join(10)
    second.join(10)
    assert threads == ["first"], "decoded twice"
    assert render.cores.busy() == 0


def test_a_mask_frame_carries_a_one_bit_png_that_reads_back_as_the_same_mask():
    rng = np.random.default_rng(7)
    for shape in [(1, 1), (7, 13), (333, 501)]:
        mask = rng.random(shape) > 0.5
        data = render.png_bytes(mask)
        assert Image.open(io.BytesIO(data)).mode == "1"
        assert np.array_equal(render.png_to_mask(data), mask), shape


def _selects(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]


def test_a_click_reads_its_session_and_object_once_and_its_render_reads_only_the_revision():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    session = make_session()
    access = edit(session)
    editing.add_prompt(access, INSIDE)  # the object exists: the next write only appends
    with CaptureQueriesContext(connection) as write:
        written = editing.add_prompt(access, OUTSIDE_BG)
    assert len(_selects(write.captured_queries)) == 1, _selects(write.captured_queries)
    assert written is not None and written.current is not None
    with CaptureQueriesContext(connection) as drawn:
        rendered = editing.render_prompts(access, broadcast=False, written=written)
    selects = _selects(drawn.captured_queries)
    assert len(selects) == 1 and "revision" in selects[0], selects  # the superseded check
    fresh = editing.render_prompts(access, broadcast=False)  # reads the session again
    assert rendered.frame == fresh.frame and not rendered.superseded
    assert rendered.header["seq"] == editing.reload(session).revision


def test_a_render_from_a_write_that_someone_else_followed_is_marked_superseded():
    session = make_session()
    mine, theirs = edit(session), edit(editing.reload(session))
    written = editing.add_prompt(mine, INSIDE)
    editing.add_prompt(theirs, OUTSIDE_BG)  # another editor, after my write
    rendered = editing.render_prompts(mine, broadcast=False, written=written)
    assert rendered.superseded, "my frame would pass for the newest one"
    assert rendered.header["seq"] == written.session.revision
    assert len(rendered.header["prompts"]) == 1  # it shows my write, not theirs
