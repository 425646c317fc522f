"""The web process's decode processes (maskweb.masking.decoding.decode_procs): a decode in a
child gives the masks a decode in this process gives; a child SIGKILLed in the middle of a
decode (directly, and under a live socket's click) costs no click; the children die with the
web process, killed or stopped (a real `manage.py serve`)."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest
from PIL import Image

from maskweb.masking.decoding import decode_procs, engine, render
from maskweb.segment.types import Point, Prediction, Prompts
from tests.web.client import Socket, request, two_tone_photo, upload, wait_ready
from tests.web.test_serve import answers, child, served, wait_until

pytestmark = pytest.mark.timeout(240)


def photo_embedding(width: int, height: int):
    rgb = np.asarray(Image.open(io.BytesIO(two_tone_photo(width, height))).convert("RGB"))
    return engine.encode("grabcut", rgb)


def same(a: Prediction, b: Prediction) -> bool:
    return (len(a.candidates) == len(b.candidates)
            and all(np.array_equal(x.mask, y.mask) and x.score == y.score
                    for x, y in zip(a.candidates, b.candidates, strict=True))
            and (a.feedback is None and b.feedback is None
                 or a.feedback is not None and b.feedback is not None
                 and np.array_equal(a.feedback, b.feedback)))


def test_a_decode_in_a_child_gives_what_a_decode_here_gives_and_runs_off_this_process():
    embedding = photo_embedding(480, 360)
    first = Prompts(points=(Point(240, 180, True),))
    second = Prompts(points=(Point(240, 180, True), Point(60, 40, False)))
    pool = decode_procs.Pool(2)
    try:
        assert len(set(pool.pids())) == 2 and os.getpid() not in pool.pids()
        here1 = engine.decode("grabcut", embedding, first, None)
        there1 = pool.decode("grabcut", "photo-a", embedding, first, None)
        assert same(here1, there1) and there1.best.mask.any()
        # A click on top of the last one: the previous prediction goes down with it.
        here2 = engine.decode("grabcut", embedding, second, here1)
        there2 = pool.decode("grabcut", "photo-a", embedding, second, there1)
        assert same(here2, there2)
        # Two decodes at once run in both children, each its own process.
        children = [psutil.Process(pid) for pid in pool.pids()]
        cpu_before = [sum(c.cpu_times()[:2]) for c in children]
        both = threading.Barrier(2)

        def decode_in_thread() -> None:
            both.wait()
            pool.decode("grabcut", "photo-a", embedding, second, there1)

        threads = [threading.Thread(target=decode_in_thread) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        used = [sum(c.cpu_times()[:2]) - before for c, before in zip(children, cpu_before,
                                                                     strict=True)]
        assert all(seconds > 0.005 for seconds in used), used
        # A model's own failure comes back as that exception, and the child goes on.
        with pytest.raises(ValueError, match="not 'grabcut'"):
            pool.decode("grabcut", "photo-b", embedding.__class__(
                "litemedsam", embedding.image_size, embedding.arrays), first, None)
        assert same(here1, pool.decode("grabcut", "photo-a", embedding, first, None))
        assert pool.restarts == 0
    finally:
        children = [psutil.Process(pid) for pid in pool.pids()]
        pool.close()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_a_child_killed_in_the_middle_of_a_decode_costs_no_click():
    # A large photo: a decode of a few hundred ms, long enough to be caught in the middle.
    embedding = photo_embedding(2048, 1536)
    prompts = Prompts(points=(Point(1024, 768, True), Point(200, 200, False)))
    expected = engine.decode("grabcut", embedding, prompts, None)
    pool = decode_procs.Pool(1)
    try:
        pool.decode("grabcut", "big", embedding, prompts, None)  # started, embedding sent
        for _attempt in range(20):
            (pid,) = pool.pids()
            victim = psutil.Process(pid)
            cpu_before = sum(victim.cpu_times()[:2])
            result: list[Prediction] = []
            thread = threading.Thread(target=lambda out=result: out.append(
                pool.decode("grabcut", "big", embedding, prompts, None)))
            thread.start()
            # Caught decoding: it has used CPU since the request and not answered yet.
            while thread.is_alive() and sum(victim.cpu_times()[:2]) - cpu_before < 0.02:
                time.sleep(0.002)
            victim.send_signal(signal.SIGSTOP)
            if not thread.is_alive():  # answered before it was caught: again
                victim.send_signal(signal.SIGCONT)
                thread.join()
                continue
            victim.send_signal(signal.SIGKILL)
            thread.join(60)
            assert not thread.is_alive()
            break
        else:
            pytest.fail("no decode was caught in the middle in 20 tries")
        assert same(result[0], expected)
        assert pool.restarts == 1
        assert pool.pids() != [pid]
        assert not psutil.pid_exists(pid), "the killed child was not reaped"
        # The new child decodes the next click too.
        assert same(pool.decode("grabcut", "big", embedding, prompts, None), expected)
    finally:
        pool.close()


def decode_children(web: psutil.Process) -> list[psutil.Process]:
    found = []
    for process in web.children():
        try:
            if "decode_child" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.ZombieProcess:  # killed, not reaped yet: not decoding
            pass
    return found


def test_decode_processes_die_with_the_web_process_killed_or_stopped(tmp_path):
    with served(tmp_path) as (serve, output, base):
        for kill in (signal.SIGKILL, signal.SIGTERM):
            daphne = child(serve, "daphne")
            wait_until(lambda d=daphne: len(decode_children(d)) == render.CORES, 60,
                       f"{render.CORES} decode processes under Daphne")
            decoders = decode_children(daphne)
            for decoder in decoders:  # started, and reading their pipes
                output.wait_for(rf"decode process {decoder.pid} ready", 60)
            # They are what the web process says it decodes in.
            assert all(d.environ().get("MALLOC_ARENA_MAX") == "2" for d in decoders)
            seen = len(output.lines)
            daphne.send_signal(kill)
            _, alive = psutil.wait_procs(decoders, timeout=10)
            assert not alive, f"decode processes outlived Daphne ({kill.name}): {alive}"
            output.wait_for(r"daphne started again", 60, seen)
            wait_until(lambda: answers(f"{base}/api/v1/models"), 30, "Daphne answering again")
        daphne = child(serve, "daphne")
        wait_until(lambda: len(decode_children(daphne)) == render.CORES, 60,
                   "decode processes under the restarted Daphne")
        everything = psutil.Process(serve.pid).children(recursive=True)
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
        _, alive = psutil.wait_procs(everything, timeout=10)
        assert not alive, [p.cmdline() for p in alive]


def test_a_click_whose_decode_process_is_killed_gets_its_mask(live_stack):
    status, state = upload(live_stack.url, "killed.png", two_tone_photo(seed=5))
    assert status == 201, state
    sock = Socket(live_stack.ws_url, state["edit_token"])
    try:
        hello = sock.next()
        wait_ready(sock, hello)
        sock.send(type="prompt", id="c1", prompt={"kind": "point", "x": 240, "y": 180})
        sock.wait_for(lambda f: isinstance(f, tuple) and f[0]["id"] == "c1")
        daphne = psutil.Process(live_stack.daphne.pid)
        decoders = decode_children(daphne)
        assert len(decoders) == render.CORES
        for decoder in decoders:  # frozen: the next decode cannot finish...
            decoder.send_signal(signal.SIGSTOP)
        sock.send(type="prompt", id="c2", prompt={"kind": "point", "x": 300, "y": 230})
        # ...so the click waits for its mask (the page is told it is behind), in a child.
        sock.wait_type("behind", timeout=30)
        for decoder in decoders:
            decoder.send_signal(signal.SIGKILL)
        header, mask = sock.wait_for(
            lambda f: isinstance(f, tuple) and len(f[0]["prompts"]) == 2, timeout=60)
        assert mask[230, 300] and mask[120:240, 160:320].mean() > 0.8 and mask.mean() < 0.3
        assert {d.pid for d in decode_children(daphne)} - {d.pid for d in decoders}, \
            "no decode process was started in place of the killed ones"
    finally:
        sock.close()
    status, body, _ = request("GET", f"{live_stack.url}/api/v1/sessions/{state['edit_token']}")
    assert [(p["x"], p["y"]) for p in json.loads(body)["current"]["prompts"]] == [
        (240.0, 180.0), (300.0, 230.0)]
