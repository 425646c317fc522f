"""Speed of the whole stack, against the engine's bare limits, measured in one run.

    .venv/bin/python -m bench.latency [--model ID_OR_FOLDER ...] [--quick]
    .venv/bin/python -m bench.latency --model ID --engine-variants plain,interactive
    .venv/bin/python -m bench.latency --hover-cost [--quick]

Prints a markdown table and writes it, with the machine's description, to
``bench/results/latency-<model>-<timestamp>.md``; with several ``--model`` (an installed id or
a model package's folder, see bench.model_arg) each is measured in turn, on its own stack,
and a side-by-side table of the main figures ends the run. What it measures:

- bare limits: the engine's own encode time per photo and decode time per prompt (same
  process, same thread settings as the server), the yardstick for everything else; each click
  level's yardstick is the level's own photos and clicks, decoded before and after it, the
  encodes are timed again just before each worker count, and the ratios use those times: this
  machine's speed drifts by 20% within minutes, and grabCut's time depends on the photo;
- click -> mask over the real socket (Daphne, Redis, Celery worker started here on free
  ports), for 1, 4 and 16 concurrent sessions each clicking like a person refining (a click
  every ~300 ms, with bursts, each starting at its own moment within the first 300 ms, as
  people do; ``--sync-start`` starts them at one instant): p50/p95/p99 and their ratio to the
  bare decoder, next to what an ideal server would give on the same sends (bench.queueing);
- encoder throughput through Celery with 1 and 2 worker processes, against the bare encoder,
  and the time from upload to "ready";
- Redis bytes per cached embedding, the web process's memory after 50 sessions;
- dedup: the same photo uploaded again is not encoded again (encoder runs counted in the
  worker's log);
- a large photo (a 4000×3000 JPEG, a COCO_MVal photo scaled up): upload, upload -> ready,
  and click -> mask on it.

``--hover-cost`` measures only what hover previews cost the others: click -> mask of 4
clicking sessions, in rounds alternately without and with 4 more sessions whose pointers
rest somewhere new every 125 ms (a preview asked each time: more than a page asks, which
waits 180 ms of rest), the previews' own count, drawn and skipped (a preview decodes only
on a core no click waits for).

A click's latency is the time from sending the prompt to the arrival of the first mask frame
that includes it (the server may answer a burst with one frame covering several prompts); the
PNG's decoding is the page's drawing and not timed. A prompt is "lost" when no frame ever
covers it; errors are error frames.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import random
import statistics
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.host import describe
from bench.model_arg import ModelArg, parse_model_arg
from bench.quality import dataset_items
from bench.queueing import fifo_latencies
from maskweb import runner
from tests.stack import LiveStack, start_stack
from tests.web.client import Socket, frame_parts, request, upload

# Clicks per level at least. With 96, the 4-session p95 (the 5th-slowest click) moved from
# 2.1x to 3.6x between runs of the same code; 288 puts 14 clicks above it.
MIN_CLICKS = 288
CORES = os.cpu_count() or 1  # the server's decode slots: one decode per core at a time
DAVIS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "DAVIS"
RESULTS = Path(__file__).resolve().parent / "results"


# --- inputs ---------------------------------------------------------------------------------


def davis_items(count: int, offset: int = 0) -> list[tuple[Path, np.ndarray]]:
    """Evenly spaced DAVIS photos with their object masks (fixed, so runs compare)."""
    names = sorted(p.stem for p in (DAVIS / "img").glob("*.jpg"))
    step = max(1, len(names) // max(count, 1))
    picked = [names[(offset + i * step) % len(names)] for i in range(count)]
    return [(DAVIS / "img" / f"{n}.jpg", np.asarray(Image.open(DAVIS / "gt" / f"{n}.png")) > 0)
            for n in picked]


def click_plan(gt: np.ndarray, count: int, seed: int) -> list[tuple[float, float, bool]]:
    """A person refining: first inside the object, then mostly inside, some outside."""
    rng = random.Random(seed)
    inside, outside = np.argwhere(gt), np.argwhere(~gt)
    plan = []
    for i in range(count):
        positive = i == 0 or rng.random() < 0.7 or len(outside) == 0
        pool = inside if positive else outside
        y, x = pool[rng.randrange(len(pool))]
        plan.append((float(x) + 0.5, float(y) + 0.5, bool(positive)))
    return plan


def pauses(count: int, seed: int) -> list[float]:
    """~300 ms between clicks; every sixth click is followed 60 ms later by another (a burst)."""
    rng = random.Random(seed)
    return [0.06 if i % 6 == 1 else rng.uniform(0.22, 0.38) for i in range(count)]


def large_photo(width: int = 4000, height: int = 3000) -> tuple[bytes, np.ndarray]:
    """A 12 MP JPEG of a real scene and its object's mask: the first 640×480 COCO_MVal photo
    whose object covers 10–40% of it, scaled up (the datasets hold no photo this large).

    A real scene, not noise: the model's masks on noise break into hundreds of specks, which
    made the clean-up of every click several times slower than on any photo. COCO_MVal, not
    DAVIS, like bench.cleanup: DAVIS is kept for measuring mask quality.
    """
    for img, gt_path in dataset_items("coco"):
        photo = Image.open(img)
        gt = np.asarray(Image.open(gt_path)) > 0
        if photo.size == (640, 480) and 0.1 < gt.mean() < 0.4:
            break
    else:
        raise SystemExit("no 640×480 COCO_MVal photo with a mid-sized object")
    buf = io.BytesIO()
    photo.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(
        buf, format="JPEG", quality=92)
    big_gt = Image.fromarray(gt).resize((width, height), Image.Resampling.NEAREST)
    return buf.getvalue(), np.asarray(big_gt)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# --- bare engine ----------------------------------------------------------------------------


@dataclass
class Bare:
    encode_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)
    decoder: str = ""  # the decoder file, as the server picks it (int8 or float)
    model: Any = None
    # Each photo's embedding with its clicks, to time the same decodes again later.
    work: list[tuple[Any, list[Any]]] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # to time the encodes again

    def time_encodes(self) -> list[float]:
        """The same encodes again, timed: the encoder's yardstick next to its level, as
        ``time_decodes`` is the decoder's."""
        times = []
        with worker_threads():
            for image in self.images:
                started = time.perf_counter()
                self.model.encode(image)
                times.append(time.perf_counter() - started)
        return times

    def time_decodes(self, work: list[tuple[Any, list[Any]]] | None = None) -> list[float]:
        """The same decodes again, timed. This machine's speed drifts by 20% within minutes
        (other guests on the host), so each click level's ratios use a bare time measured
        around it, with the stack idle, not one from minutes earlier."""
        from maskweb.segment.types import Prompts

        times = []
        for embedding, points in self.work if work is None else work:
            previous = None
            for i in range(len(points)):
                started = time.perf_counter()
                previous = self.model.decode(embedding, Prompts(points=tuple(points[: i + 1])),
                                             previous)
                times.append(time.perf_counter() - started)
        return times

    def time_decodes_two_at_once(self) -> list[float]:
        """The same decodes in two threads at once, as the server runs them when both cores
        are busy. Not a yardstick for the ratios (the issue's is the decoder alone): it shows
        what two decodes sharing this machine cost each other, which no server avoids."""
        halves: list[list[float]] = [[], []]
        threads = [threading.Thread(target=lambda i=i: halves[i].extend(
            self.time_decodes(self.work[i::2]))) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return halves[0] + halves[1]

    def work_of_level(self, concurrency: int, clicks: int, offset: int,
                      rounds: int) -> list[tuple[Any, list[Any]]]:
        """The photos and clicks a click level sends (``measure_clicks``' choice, round by
        round), encoded here: the level's yardstick decodes exactly what the level asks the
        server for. The ONNX decoders take the same time on any photo; grabCut's time
        depends on the object (its crop) and on the clicks, so another photo's time is
        no yardstick for it."""
        from maskweb.segment.types import Point

        work = []
        for round_ in range(rounds):
            for seed, (path, gt) in enumerate(davis_items(concurrency,
                                                          offset + round_ * concurrency)):
                embedding = self.model.encode(np.asarray(Image.open(path).convert("RGB")))
                work.append((embedding, [Point(x, y, positive) for x, y, positive
                                         in click_plan(gt, clicks, seed)]))
        return work


@contextlib.contextmanager
def worker_threads() -> Iterator[None]:
    """OpenCV's threads as the worker has them (all cores) while encoding; the rest of this
    process decodes as the web process does, on one OpenCV thread (main() sets it)."""
    import cv2

    cv2.setNumThreads(os.cpu_count() or 1)
    try:
        yield
    finally:
        cv2.setNumThreads(1)


def measure_bare(model_id: str, items: list[tuple[Path, np.ndarray]], clicks: int) -> Bare:
    from maskweb.segment import registry
    from maskweb.segment.types import Point

    model = registry.load_model(model_id)
    warm_up = getattr(model, "warm_up", None)
    if callable(warm_up):  # as the server's processes do when they start
        warm_up("encoder")
        warm_up("decoder")
    decoder_file = getattr(model, "decoder_file", None)
    bare = Bare(decoder=decoder_file().name if callable(decoder_file) else "built in",
                model=model)
    for index, (path, gt) in enumerate(items):
        image = np.asarray(Image.open(path).convert("RGB"))
        with worker_threads():
            started = time.perf_counter()
            embedding = model.encode(image)
            bare.encode_s.append(time.perf_counter() - started)
        points = [Point(x, y, positive) for x, y, positive in click_plan(gt, clicks, seed=index)]
        bare.work.append((embedding, points))
        bare.images.append(image)
    bare.decode_s = bare.time_decodes()
    return bare


# --- the stack ------------------------------------------------------------------------------


def open_session(stack: LiveStack, path: Path) -> tuple[str, Socket]:
    status, state = upload(stack.url, path.name, path.read_bytes())
    if status != 201:
        raise RuntimeError(f"upload failed: {status} {state}")
    token = state["edit_token"]
    sock = Socket(stack.ws_url, token)
    hello = sock.wait_type("hello", 30)
    if hello["state"]["status"] != "ready":
        sock.wait_type("status", 300, status="ready")
    return token, sock


def click_kind(n: int) -> str:
    """What the n-th click (from 1) of a session is in ``pauses``' schedule."""
    if n == 1:
        return "first"
    return "burst" if (n - 1) % 6 == 2 else "other"


@dataclass
class ClientResult:
    latencies: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # click_kind of each latency
    send_times: list[float] = field(default_factory=list)  # perf_counter of every send
    sent: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    web_cpu_s: float = 0.0  # the web process's CPU time while the clicks ran
    # The same for the processes that share the cores with it: this one (the clients), Redis
    # and the worker.
    other_cpu_s: dict[str, float] = field(default_factory=dict)

    def merge(self, other: ClientResult) -> None:
        self.web_cpu_s += other.web_cpu_s
        for name, seconds in other.other_cpu_s.items():
            self.other_cpu_s[name] = self.other_cpu_s.get(name, 0.0) + seconds
        self.latencies += other.latencies
        self.kinds += other.kinds
        self.send_times += other.send_times
        self.sent += other.sent
        self.lost += other.lost
        self.errors += other.errors


def run_client(sock: Socket, gt: np.ndarray, clicks: int, seed: int,
               result: ClientResult, start_delay: float = 0.0) -> None:
    """Sends the clicks on a schedule, the first after ``start_delay`` seconds, from one
    thread while another collects the frames."""
    sent_at: dict[int, float] = {}  # prompt count after the click -> send time
    answered: dict[int, float] = {}
    done = threading.Event()

    def collect() -> None:
        covered, last_frame = 0, time.monotonic()
        # Short reads, so the reader stops as soon as the last prompt is answered (a blocking
        # read would wait for a frame that never comes); 30 s without a frame ends it too.
        while not (done.is_set() and covered >= result.sent):
            try:
                raw = sock.conn.recv(timeout=0.2)
            except TimeoutError:
                if time.monotonic() - last_frame > 30:
                    return
                continue
            except Exception:  # the socket closed
                return
            # The mask has arrived: decoding its PNG is the page's drawing, not the server's.
            now = time.perf_counter()
            last_frame = time.monotonic()
            if isinstance(raw, bytes):
                header, _ = frame_parts(raw)
                count = len(header.get("prompts") or [])
                for n in range(covered + 1, count + 1):
                    answered.setdefault(n, now)
                covered = max(covered, count)
            else:
                message = json.loads(raw)
                if message.get("type") == "error":
                    result.errors.append(f"{message.get('code')}: {message.get('message')}")

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    time.sleep(start_delay)
    for n, ((x, y, positive), pause) in enumerate(
            zip(click_plan(gt, clicks, seed), pauses(clicks, seed), strict=True), start=1):
        sent_at[n] = time.perf_counter()
        result.send_times.append(sent_at[n])
        sock.send(type="prompt", id=uuid.uuid4().hex[:16],
                  prompt={"kind": "point", "x": x, "y": y, "positive": positive})
        result.sent = n
        time.sleep(pause)
    done.set()
    reader.join(timeout=120)
    for n, started in sent_at.items():
        if n in answered:
            result.latencies.append(answered[n] - started)
            result.kinds.append(click_kind(n))
        else:
            result.lost += 1


def measure_clicks(stack: LiveStack, concurrency: int, clicks: int, offset: int,
                   sync_start: bool = False) -> ClientResult:
    """``concurrency`` sessions clicking at once. Each starts at its own moment within one
    click interval (seeded, so runs compare), as people who did not agree on the instant of
    their first click do; ``sync_start`` starts them all at once."""
    import psutil

    items = davis_items(concurrency, offset)
    sessions = [open_session(stack, path) for path, _ in items]
    results = [ClientResult() for _ in sessions]
    rng = random.Random(offset)
    delays = [0.0 if sync_start else rng.uniform(0.0, 0.3) for _ in sessions]
    threads = [threading.Thread(target=run_client,
                                args=(sock, gt, clicks, i, results[i], delays[i]))
               for i, ((_, sock), (_, gt)) in enumerate(zip(sessions, items, strict=True))]
    others = {"load generator (the clients)": psutil.Process(), "Redis": stack.redis_proc,
              "worker": stack.worker}
    others_before = {name: cpu_s(p) for name, p in others.items() if p is not None}
    cpu_before = cpu_s(stack.daphne)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = ClientResult(web_cpu_s=cpu_s(stack.daphne) - cpu_before,
                          other_cpu_s={name: cpu_s(others[name]) - before
                                       for name, before in others_before.items()})
    for _, sock in sessions:
        sock.close()
    for r in results:
        merged.merge(r)
    return merged


# --- hover previews: what they cost the others' clicks ------------------------------------

HOVER_EVERY_S = 0.125


@dataclass
class HoverCounts:
    asked: int = 0
    drawn: int = 0
    skipped: int = 0


def run_hoverer(sock: Socket, width: int, height: int, stop: threading.Event, seed: int,
                counts: HoverCounts) -> None:
    """A pointer resting at a new spot of its photo every HOVER_EVERY_S: one preview each."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def collect() -> None:
        while not stop.is_set():
            try:
                raw = sock.conn.recv(timeout=0.2)
            except TimeoutError:
                continue
            except Exception:
                return
            if isinstance(raw, bytes):
                header, _ = frame_parts(raw)
                if header.get("type") == "preview":
                    with lock:
                        counts.drawn += 1
            elif json.loads(raw).get("skipped"):
                with lock:
                    counts.skipped += 1

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    while not stop.is_set():
        sock.send(type="preview", id=uuid.uuid4().hex[:12],
                  prompt={"kind": "point", "x": rng.uniform(1, width - 1),
                          "y": rng.uniform(1, height - 1)})
        with lock:
            counts.asked += 1
        stop.wait(HOVER_EVERY_S)
    reader.join(timeout=5)


def measure_hover_cost(model_id: str, quick: bool) -> list[tuple[str, str]]:
    clickers = hoverers = 4
    clicks = 6 if quick else 12
    rounds = 2 if quick else 6
    rows: list[tuple[str, str]] = []
    bare = measure_bare(model_id, davis_items(3, offset=7), clicks)
    bare_dec = statistics.median(bare.decode_s)
    rows.append(("bare decoder per prompt (median)", f"{bare_dec * 1e3:.1f} ms ({bare.decoder})"))
    with start_stack({"MASKWEB_STACK_MODEL": model_id,
                      "MASKWEB_DEFAULT_MODEL": model_id}) as stack:
        hover_items = davis_items(hoverers, offset=600)
        hover_sessions = [open_session(stack, path) for path, _ in hover_items]
        without, with_ = ClientResult(), ClientResult()
        counts = HoverCounts()
        offset = 200
        for r in range(rounds):
            # Alternate which goes first: the machine's speed drifts within minutes.
            for on in ((False, True) if r % 2 == 0 else (True, False)):
                stop = threading.Event()
                threads = [threading.Thread(target=run_hoverer, args=(
                    sock, gt.shape[1], gt.shape[0], stop, 1000 * r + i, counts))
                    for i, ((_, sock), (_, gt)) in enumerate(
                        zip(hover_sessions, hover_items, strict=True))] if on else []
                for t in threads:
                    t.start()
                result = measure_clicks(stack, clickers, clicks, offset)
                offset += clickers
                stop.set()
                for t in threads:
                    t.join()
                (with_ if on else without).merge(result)
        for _, sock in hover_sessions:
            sock.close()
    for label, result in (("without previews", without), (f"with {hoverers} sessions "
                          f"previewing every {HOVER_EVERY_S * 1e3:.0f} ms", with_)):
        lat = result.latencies
        rows.append((f"click→mask, {clickers} clicking sessions, {label}: p50 / p95 / p99",
                     f"{percentile(lat, 50) * 1e3:.1f} / {percentile(lat, 95) * 1e3:.1f} / "
                     f"{percentile(lat, 99) * 1e3:.1f} ms ({len(lat)} clicks, "
                     f"{result.lost} lost, {len(result.errors)} errors)"))
    a, b = without.latencies, with_.latencies
    rows.append(("  what the previews add: p50 / p95",
                 f"+{(percentile(b, 50) - percentile(a, 50)) * 1e3:.1f} ms "
                 f"({percentile(b, 50) / percentile(a, 50):.2f}×) / "
                 f"+{(percentile(b, 95) - percentile(a, 95)) * 1e3:.1f} ms "
                 f"({percentile(b, 95) / percentile(a, 95):.2f}×); bound: one decode "
                 f"({bare_dec * 1e3:.1f} ms) a click, at most"))
    replaced = counts.asked - counts.drawn - counts.skipped
    rows.append(("previews asked / drawn / skipped (every core busy, or past 10 a second) / "
                 "replaced by a newer one while one was drawn",
                 f"{counts.asked} / {counts.drawn} / {counts.skipped} / {replaced}"))
    return rows


def encoder_runs(stack: LiveStack) -> int:
    """How many encodes the workers really ran (each logs one line when it finishes)."""
    return sum(p.read_text(errors="replace").count("encoded photo")
               for p in (stack.data_dir / "logs").glob("worker*.log"))


def wait_ready(stack: LiveStack, token: str, timeout: float = 900) -> float:
    """Waits as the page does, on the session's socket (polling the HTTP API instead would
    take CPU from the encoder it is timing); returns when "ready" arrived (perf_counter)."""
    sock = Socket(stack.ws_url, token)
    try:
        hello = sock.wait_type("hello", 30)
        status = hello["state"]["status"]
        while status not in ("ready", "failed"):
            status = sock.wait_type("status", timeout)["status"]
        if status == "failed":
            raise RuntimeError(f"encoding failed for {token}")
        return time.perf_counter()
    finally:
        sock.close()


def fresh_copy(jpeg: bytes) -> bytes:
    """The same JPEG with a unique comment segment: a new content hash, so the server encodes
    it even if an earlier part of the run used that photo (the dedup would skip the encode)."""
    comment = uuid.uuid4().hex.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def worker_ready_count(log: Path) -> int:
    return log.read_text(errors="replace").count(" ready.") if log.exists() else 0


def wait_worker_ready(log: Path, seen: int = 0, timeout: float = 120) -> None:
    """Waits for a worker's "ready." line (Celery logs it after the worker_ready handlers,
    so the encoder warm-up is done): a worker still starting would be timed as slow."""
    deadline = time.monotonic() + timeout
    while worker_ready_count(log) <= seen:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker not ready after {timeout:.0f} s: {log}")
        time.sleep(0.2)


def measure_encoder(stack: LiveStack, workers: int, count: int,
                    offset: int) -> tuple[float, list[float]]:
    """Uploads ``count`` new photos at once; returns (photos per second, upload->ready s).

    ``workers`` worker processes share the cores: each encoder gets cores / workers threads
    (MASKWEB_ONNX_THREADS), as a deployment with several workers on one machine should set,
    so they do not oversubscribe the cores. With one worker the stack's own worker runs.
    """
    cores = os.cpu_count() or 1
    env = {**stack.env, "MASKWEB_ONNX_THREADS": str(max(1, cores // workers))}
    own = workers > 1
    if own:
        runner.stop(stack.worker)
    logs = [stack.data_dir / "logs" / f"worker-bench{i}.log" for i in range(workers if own else 0)]
    extra = [runner.spawn(runner.worker_command(f"bench{i}"), env, Path.cwd(), log)
             for i, log in enumerate(logs)]
    try:
        for log in logs:
            wait_worker_ready(log)  # connected, and its encoder warmed up
        started = time.perf_counter()
        uploaded: dict[str, float] = {}
        ready: dict[str, float] = {}
        waiters = []
        for path, _ in davis_items(count, offset):
            status, state = upload(stack.url, path.name, fresh_copy(path.read_bytes()))
            if status != 201:
                raise RuntimeError(f"upload failed: {status} {state}")
            token = state["edit_token"]
            uploaded[token] = time.perf_counter()
            waiter = threading.Thread(
                target=lambda t=token: ready.__setitem__(t, wait_ready(stack, t)))
            waiter.start()
            waiters.append(waiter)
        for waiter in waiters:
            waiter.join()
        if len(ready) < count:
            raise TimeoutError("not every photo was encoded in time")
        elapsed = max(ready.values()) - started
        return count / elapsed, [ready[t] - uploaded[t] for t in uploaded]
    finally:
        for process in extra:
            runner.stop(process)
        if own:
            before = worker_ready_count(stack.data_dir / "logs" / "worker.log")
            stack.start_worker()
            wait_worker_ready(stack.data_dir / "logs" / "worker.log", before)


def redis_bytes_per_embedding(stack: LiveStack) -> tuple[int, float]:
    client = stack.redis()
    try:
        keys = [k for k in client.scan_iter(match="maskweb:emb:*", count=1000)]
        sizes = [client.memory_usage(k) or 0 for k in keys]
    finally:
        client.close()
    return len(keys), (statistics.median(sizes) if sizes else float("nan"))


def cpu_s(process: Any) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    import psutil

    assert process is not None
    times = psutil.Process(process.pid).cpu_times()
    return float(times.user + times.system)


def rss_mb(process: Any) -> float:
    import psutil

    assert process is not None
    return float(psutil.Process(process.pid).memory_info().rss) / 2**20


# --- report ---------------------------------------------------------------------------------


def machine() -> str:
    import onnxruntime as ort

    return describe(f"onnxruntime {ort.__version__} "
                    f"({', '.join(ort.get_available_providers())})")


def main(argv: list[str] | None = None) -> int:
    from maskweb.masking.decoding import engine

    engine.one_thread_per_decode()  # the bare decoder runs as the web process runs it
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[],
                        help="model id or model package folder (repeatable; default: the "
                             "app's default)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer photos and clicks: a smoke run, not for reporting")
    parser.add_argument("--only-clicks", action="store_true",
                        help="bare limits and click latency only (profiling the hot path)")
    parser.add_argument("--levels", default="1,4,16",
                        help="concurrent sessions to measure, comma-separated (default 1,4,16)")
    parser.add_argument("--sync-start", action="store_true",
                        help="concurrent sessions send their first click at the same instant")
    parser.add_argument("--min-clicks", type=int, default=MIN_CLICKS,
                        help=f"clicks per level at least (default {MIN_CLICKS}; fewer for "
                             "models whose encoder takes seconds: each round encodes new "
                             "photos)")
    parser.add_argument("--engine-variants", default="",
                        help="e.g. plain,interactive: one session's click latency with each "
                        "MASKWEB_ENGINE_VARIANT side by side (a stack each, rounds in turn), "
                        "for each --model in turn, and nothing else")
    parser.add_argument("--hover-cost", action="store_true",
                        help="only what hover previews add to others' click latency")
    parser.add_argument("--rounds", type=int, default=0,
                        help="with --engine-variants: rounds of 12 clicks per variant "
                        f"(default {-(-MIN_CLICKS // 12)}, {MIN_CLICKS} clicks)")
    args = parser.parse_args(argv)

    from maskweb.segment import registry

    models = [parse_model_arg(m) for m in args.model] or [
        ModelArg(registry.default_model_id(), None)]
    summaries = []
    for model in models:
        before = os.environ.get("MASKWEB_MODELS_DIR")
        if model.models_dir is not None:
            os.environ["MASKWEB_MODELS_DIR"] = str(model.models_dir)
        try:
            if args.hover_cost:
                report(measure_hover_cost(model.model_id, args.quick), model.model_id,
                       "hover", args.quick)
                continue
            if args.engine_variants:
                compare_variants(model.model_id, args.engine_variants.split(","), args.quick,
                                 args.rounds)
                continue
            rows, main_figures = measure(model.model_id, args)
        finally:
            if before is None:
                os.environ.pop("MASKWEB_MODELS_DIR", None)
            else:
                os.environ["MASKWEB_MODELS_DIR"] = before
        report(rows, model.model_id, "clicks" if args.only_clicks else "", args.quick)
        summaries.append((model.model_id, main_figures))
    if len(summaries) > 1:
        side_by_side(summaries, args.quick)
    return 0


def side_by_side(summaries: list[tuple[str, dict[str, str]]], quick: bool) -> None:
    """The main figures of every model of this run in one table (and file)."""
    columns = list(dict.fromkeys(k for _, figures in summaries for k in figures))
    table = ("| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
             + "\n".join(f"| {model_id} | " + " | ".join(figures.get(c, "") for c in columns)
                         + " |" for model_id, figures in summaries))
    print("\n" + table)
    if not quick:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out = RESULTS / f"latency-side-by-side-{stamp}.md"
        out.write_text(f"# bench.latency, side by side, {stamp}\n\n{machine()}\n\n"
                       + table + "\n")
        print(f"\nwritten to {out}")


def measure(model_id: str, args: argparse.Namespace) -> tuple[list[tuple[str, str]],
                                                               dict[str, str]]:
    """One model's rows, and its main figures for the side-by-side table."""
    clicks = 6 if args.quick else 12
    encode_count = 3 if args.quick else 8
    levels = (1, 4) if args.quick else tuple(int(v) for v in args.levels.split(","))
    rows: list[tuple[str, str]] = []

    print(f"model {model_id}; machine: {machine()}", flush=True)
    bare = measure_bare(model_id, davis_items(3 if args.quick else 6, offset=7), clicks)
    bare_dec = statistics.median(bare.decode_s)
    paired = bare.time_decodes_two_at_once()
    bare_enc = statistics.median(bare.encode_s)
    figures = {"bare encoder per photo (median)": f"{bare_enc:.2f} s",
               "bare decoder per click (median / p95)":
                   f"{bare_dec * 1e3:.1f} / {percentile(bare.decode_s, 95) * 1e3:.1f} ms"
                   f" ({bare.decoder})"}
    rows += [("bare decoder per prompt (median / p95)",
              f"{bare_dec * 1e3:.1f} ms / {percentile(bare.decode_s, 95) * 1e3:.1f} ms"
              f" ({bare.decoder})"),
             ("bare decoder, two decodes at once (both cores busy): median / p90",
              f"{statistics.median(paired) * 1e3:.1f} / {percentile(paired, 90) * 1e3:.1f} ms"
              f" = {statistics.median(paired) / bare_dec:.2f}× / "
              f"{percentile(paired, 90) / bare_dec:.2f}× the decoder alone (context, not"
              " the ratios' yardstick)"),
             ("bare encoder per photo (median)", f"{bare_enc * 1e3:.0f} ms"),
             ("bare encoder throughput", f"{1 / bare_enc:.2f} photos/s")]

    stack_env = {"MASKWEB_STACK_MODEL": model_id, "MASKWEB_DEFAULT_MODEL": model_id}
    if os.environ.get("MASKWEB_MODELS_DIR"):  # a package folder's, or the user's own models
        stack_env["MASKWEB_MODELS_DIR"] = os.environ["MASKWEB_MODELS_DIR"]
    with start_stack(stack_env) as stack:
        offset = 100
        for level in levels:
            # At least MIN_CLICKS clicks a level: fewer sessions run several rounds, each on
            # new photos (a person refines an object with a dozen clicks, not a hundred).
            rounds = 1 if args.quick else -(-args.min_clicks // (level * clicks))
            level_work = bare.work_of_level(level, clicks, offset, rounds)
            bare_around = bare.time_decodes(level_work)
            result = ClientResult()
            for _ in range(rounds):
                result.merge(measure_clicks(stack, level, clicks, offset, args.sync_start))
                offset += level
            # Timed before and after the level: the yardstick brackets the clicks it measures.
            bare_after = bare.time_decodes(level_work)
            level_dec = statistics.median(bare_around + bare_after)
            del level_work
            lat = result.latencies
            p50, p95, p99 = (percentile(lat, q) for q in (50, 95, 99))
            rows.append((f"click→mask, {level} session(s): p50 / p95 / p99",
                         f"{p50 * 1e3:.1f} / {p95 * 1e3:.1f} / {p99 * 1e3:.1f} ms"))
            figures[f"click→mask, {level} session(s): p50 / p95"] = (
                f"{p50 * 1e3:.0f} / {p95 * 1e3:.0f} ms ({len(lat)} clicks)")
            rows.append((f"  ratio to bare decoder ({level}), its photos and clicks timed before"
                         f" and after: "
                         f"{level_dec * 1e3:.1f} ms",
                         f"p50 {p50 / level_dec:.2f}× (+{(p50 - level_dec) * 1e3:.1f} ms), "
                         f"p95 {p95 / level_dec:.2f}×, p99 {p99 / level_dec:.2f}×"))
            # The sends come round by round, session by session, click by click: the order in
            # which work_of_level listed them, so each send gets its own click's bare time.
            own_times = [(a + b) / 2 for a, b in zip(bare_around, bare_after, strict=True)]
            matched = len(own_times) == len(result.send_times)
            ideal = fifo_latencies(result.send_times, own_times if matched else level_dec, CORES)
            rows.append((f"  an ideal server on the same sends ({level}): p50 / p95",
                         f"{percentile(ideal, 50) * 1e3:.1f} / {percentile(ideal, 95) * 1e3:.1f}"
                         f" ms = p95 {percentile(ideal, 95) / level_dec:.2f}× (one decode a click,"
                         f" first come first served on {CORES} cores, each at "
                         + ("its own click's bare time" if matched else
                            "the median bare time (sends and clicks did not match up)")
                         + ", nothing else; no floor once the cores fall behind)"))
            by_kind = []
            for kind in ("first", "other", "burst"):
                some = [t for t, k in zip(lat, result.kinds, strict=True) if k == kind]
                by_kind.append(f"{kind} {percentile(some, 50) * 1e3:.0f} / "
                               f"{percentile(some, 95) * 1e3:.0f}")
            rows.append((f"  p50 / p95 by click ({level}): first, other, burst second (ms)",
                         "; ".join(by_kind)))
            per_click = result.web_cpu_s / max(len(lat), 1)
            rows.append((f"  web process CPU per click ({level})",
                         f"{per_click * 1e3:.1f} ms = bare decoder + "
                         f"{(per_click - level_dec) * 1e3:.1f} ms"))
            rows.append((f"  other processes' CPU per click ({level})", ", ".join(
                f"{name} {seconds / max(len(lat), 1) * 1e3:.1f} ms"
                for name, seconds in result.other_cpu_s.items())))
            rows.append((f"  prompts sent / lost / error frames ({level})",
                         f"{result.sent} / {result.lost} / {len(result.errors)}"
                         + (f" ({result.errors[0]})" if result.errors else "")))
            print(*rows[-7:], sep="\n", flush=True)

        for workers in () if args.only_clicks else (1, 2):
            level_enc = statistics.median(bare.time_encodes())
            rate, to_ready = measure_encoder(stack, workers, encode_count, offset)
            offset += encode_count
            rows.append((f"encoder through Celery, {workers} worker(s)",
                         f"{rate:.2f} photos/s = {rate * level_enc:.0%} of the bare encoder"
                         f" (timed just before: {level_enc * 1e3:.0f} ms a photo)"))
            rows.append((f"  upload→ready ({workers} worker(s)): median / max",
                         f"{statistics.median(to_ready):.2f} / {max(to_ready):.2f} s"))
            print(rows[-2], rows[-1], sep="\n", flush=True)

        data, big = large_photo()
        started = time.perf_counter()
        status, state = upload(stack.url, "large.jpg", data)
        uploaded = time.perf_counter() - started
        token = state["edit_token"]
        ready_at = wait_ready(stack, token)
        sock = Socket(stack.ws_url, token)
        sock.wait_type("hello", 30)
        big_result = ClientResult()
        run_client(sock, big, clicks, 99, big_result)
        sock.close()
        rows.append(("large photo 4000×3000: upload / upload→ready",
                     f"{uploaded:.2f} / {ready_at - started:.2f} s"))
        rows.append(("  click→mask on it: p50 / p95",
                     f"{percentile(big_result.latencies, 50) * 1e3:.0f} / "
                     f"{percentile(big_result.latencies, 95) * 1e3:.0f} ms"))
        print(rows[-2], rows[-1], sep="\n", flush=True)

        figures["click→mask on a 4000×3000 photo: p50"] = (
            f"{percentile(big_result.latencies, 50) * 1e3:.0f} ms")
        if args.only_clicks:
            return rows, figures
        before = encoder_runs(stack)
        path, _ = davis_items(1, 100)[0]  # encoded in the click runs above
        status, state = upload(stack.url, path.name, path.read_bytes())
        wait_ready(stack, state["edit_token"])
        time.sleep(1)
        rows.append(("dedup: encoder runs for a photo uploaded again",
                     f"{encoder_runs(stack) - before}"))

        keys, per_key = redis_bytes_per_embedding(stack)
        rows.append(("Redis bytes per cached embedding (median)",
                     f"{per_key / 2**20:.2f} MiB over {keys} keys"))
        rss_before = rss_mb(stack.daphne)
        same = davis_items(1, 3)[0][0].read_bytes()
        for i in range(50):
            status, state = upload(stack.url, f"same{i}.jpg", same)
            token = state["edit_token"]
            wait_ready(stack, token)
            request("POST", f"{stack.url}/api/v1/sessions/{token}/prompts",
                    {"kind": "point", "x": 400.5, "y": 240.5, "positive": True})
        rows.append(("web process RSS: before / after 50 more sessions",
                     f"{rss_before:.0f} / {rss_mb(stack.daphne):.0f} MiB"))
        rows.append(("worker process RSS after the run", f"{rss_mb(stack.worker):.0f} MiB"))

    return rows, figures


def compare_variants(model_id: str, variants: list[str], quick: bool, rounds: int = 0) -> int:
    """One session clicking, with each engine variant (MASKWEB_ENGINE_VARIANT: ``plain`` is
    the models as they were before the interactive wrapper, ``interactive`` the wrapper) in
    its own stack, started together; round by round each variant clicks the same photo with
    the same clicks, the order of the variants turning each round, so the host's drift hits
    them alike. The bare decode of each, in this process, is timed the same way."""
    from maskweb.segment.interactive import InteractiveSegmenter
    from maskweb.segment.registry import build_bare_model
    from maskweb.segment.types import Point, Prompts

    clicks = 6 if quick else 12
    rounds = rounds or (4 if quick else -(-MIN_CLICKS // clicks))
    print(f"model {model_id}; variants {variants}; machine: {machine()}", flush=True)
    inner = build_bare_model(model_id)
    bare_models = {v: inner if v == "plain" else InteractiveSegmenter(inner) for v in variants}
    bare_times: dict[str, list[float]] = {v: [] for v in variants}
    for index, (path, gt) in enumerate(davis_items(3 if quick else 6, offset=7)):
        embedding = inner.encode(np.asarray(Image.open(path).convert("RGB")))
        points = [Point(x, y, positive) for x, y, positive in click_plan(gt, clicks, index)]
        for turn in range(2):
            for v in variants[turn % len(variants):] + variants[:turn % len(variants)]:
                previous = None
                for i in range(len(points)):
                    started = time.perf_counter()
                    previous = bare_models[v].decode(
                        embedding, Prompts(points=tuple(points[: i + 1])), previous)
                    bare_times[v].append(time.perf_counter() - started)
    results = {v: ClientResult() for v in variants}
    with contextlib.ExitStack() as stacks:
        stack_env = {"MASKWEB_STACK_MODEL": model_id, "MASKWEB_DEFAULT_MODEL": model_id}
        if os.environ.get("MASKWEB_MODELS_DIR"):  # a package folder's, or the user's own
            stack_env["MASKWEB_MODELS_DIR"] = os.environ["MASKWEB_MODELS_DIR"]
        stack_of = {v: stacks.enter_context(start_stack(
            {**stack_env, "MASKWEB_ENGINE_VARIANT": v})) for v in variants}
        offset = 100
        for round_ in range(rounds):
            order = variants[round_ % len(variants):] + variants[:round_ % len(variants)]
            for v in order:
                results[v].merge(measure_clicks(stack_of[v], 1, clicks, offset))
            offset += 1
    rows: list[tuple[str, str]] = []
    first = variants[0]
    for v in variants:
        lat = results[v].latencies
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        dec = statistics.median(bare_times[v])
        base_lat = results[first].latencies
        rows.append((f"{v}: bare decode median / p95",
                     f"{dec * 1e3:.1f} / {percentile(bare_times[v], 95) * 1e3:.1f} ms = "
                     f"{dec / statistics.median(bare_times[first]):.2f}× {first}'s"))
        rows.append((f"{v}: click→mask, 1 session, p50 / p95 ({len(lat)} clicks, "
                     f"{results[v].lost} lost, {len(results[v].errors)} errors)",
                     f"{p50 * 1e3:.1f} / {p95 * 1e3:.1f} ms = p50 "
                     f"{p50 / percentile(base_lat, 50):.2f}×, p95 "
                     f"{p95 / percentile(base_lat, 95):.2f}× {first}'s"))
    return report(rows, model_id, "variants", quick)


def report(rows: list[tuple[str, str]], model_id: str, kind: str, quick: bool) -> int:
    """Prints the table and, unless ``quick``, writes it with the machine's description to
    ``bench/results/latency-<model>[-<kind>]-<timestamp>.md``."""
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    what = f" ({kind} only)" if kind else ""
    header = f"# bench.latency{what}, model `{model_id}`, {stamp}\n\n{machine()}\n\n"
    print("\n" + table)
    if not quick:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"latency-{model_id}{'-' + kind if kind else ''}-{stamp}.md"
        out.write_text(header + table + "\n")
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
