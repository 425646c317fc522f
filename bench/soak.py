"""Soak: many pages clicking faster than the server decodes, for a minute; nothing may be lost.

    .venv/bin/python -m bench.soak [--model ID] [--pages 16] [--interval-ms 300]
                                   [--seconds 60] [--runs 2] [--ratio-pages 4]

Starts the real stack (tests.stack: Redis, a Celery worker, Daphne on free ports), opens one
session per page on a DAVIS photo, and has every page click every ``--interval-ms`` (±10%, each
page starting at its own moment within the first interval) for ``--seconds``, as a person
refining an object does (bench.latency's click plan: first inside the object, then 70% inside).
Each page is one websocket, as the browser page is. Prints, per run:

- sent / stored / answered: prompts sent; prompts in the session's log afterwards, checked to
  be the sent ones in the sent order (GET /api/v1/sessions/<token>); prompts covered by a mask
  frame the page received;
- each page's final-mask lag: from its last click to the frame that covers every prompt it
  sent (the page shows the mask of its last click), and how many ``behind`` frames it got;
- click -> mask p50 / p95 / p99: from a click to the first frame that covers it;
- the RSS of each process (web, worker, Redis, this load generator) before and after the run,
  and what the machine's other processes took of the cores meanwhile (the machine is shared:
  a figure taken while others compute says so).

``--runs 2`` repeats the run in the same stack (new sessions on the same photos, other
clicks): the RSS after each shows whether memory is flat. The web process keeps up to
MASKWEB_EMBEDDING_CACHE_MB + MASKWEB_PREDICTION_CACHE_MB (256 + 256 by default) of caches.
``--ratio-pages N`` ends with one run of N pages and compares its p95 with the bare decoder
on the same photos and click sequences (decoded in this process, stack idle).
Writes the table to bench/results/soak-<model>-<timestamp>.md unless ``--quick``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from bench.host import describe
from bench.latency import click_plan, davis_items, percentile
from tests.stack import LiveStack, start_stack
from tests.web.client import request, upload

RESULTS = Path(__file__).resolve().parent / "results"
DECODERS = "web's decode processes (together)"
FINAL_WAIT_SECONDS = 120.0  # after the last click, how long a page waits for its last mask


@dataclass
class Page:
    index: int
    token: str
    gt: np.ndarray
    plan: list[tuple[float, float, bool]]
    sent_at: list[float] = field(default_factory=list)
    answered_at: dict[int, float] = field(default_factory=dict)
    covered: int = 0
    final_at: float | None = None
    behind: int = 0
    errors: list[str] = field(default_factory=list)
    closed: str = ""

    @property
    def lag(self) -> float | None:
        if self.final_at is None or not self.sent_at:
            return None
        return self.final_at - self.sent_at[-1]


def frame_prompt_count(frame: bytes) -> int:
    (length,) = struct.unpack(">I", frame[:4])
    header = json.loads(frame[4:4 + length])
    return len(header.get("prompts") or [])


async def drive_page(ws_url: str, page: Page, interval: float, seconds: float,
                     start_delay: float, seed: int) -> None:
    """One page: clicks on its schedule while reading every frame, then waits for the frame
    that covers its last click."""
    from websockets.asyncio.client import connect

    rng = random.Random(seed)
    done_sending = asyncio.Event()
    async with connect(f"{ws_url}/ws/sessions/{page.token}/", max_size=2**24,
                       open_timeout=30, ping_interval=None) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello

        async def read() -> None:
            while True:
                try:
                    message = await ws.recv()
                except Exception as exc:  # the socket closed
                    page.closed = f"{type(exc).__name__}: {exc}"[:200]
                    return
                now = time.perf_counter()
                if isinstance(message, bytes):
                    count = frame_prompt_count(message)
                    for n in range(page.covered + 1, count + 1):
                        page.answered_at.setdefault(n, now)
                    page.covered = max(page.covered, count)
                    if done_sending.is_set() and page.covered >= len(page.sent_at):
                        page.final_at = now
                        return
                else:
                    data = json.loads(message)
                    if data.get("type") == "behind":
                        page.behind += 1
                    elif data.get("type") == "error":
                        page.errors.append(f"{data.get('code')}: {data.get('message')}")

        reader = asyncio.ensure_future(read())
        await asyncio.sleep(start_delay)
        started = time.perf_counter()
        due = started
        for n, (x, y, positive) in enumerate(page.plan):
            # Each click 0.9-1.1 intervals after the one before, as a person clicks. (It
            # was n intervals times one random factor after the start: click 50 then fell
            # anywhere in a 3 s window, and a page sent runs of clicks at once.)
            if n:
                due += interval * rng.uniform(0.9, 1.1)
            if due - started > seconds:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            page.sent_at.append(time.perf_counter())
            await ws.send(json.dumps({"v": 1, "type": "prompt", "id": f"p{page.index}-{n}",
                                      "prompt": {"kind": "point", "x": x, "y": y,
                                                 "positive": positive}}))
        done_sending.set()
        if page.covered >= len(page.sent_at):  # answered before the sender said it was done
            page.final_at = page.answered_at.get(len(page.sent_at))
            reader.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(reader, FINAL_WAIT_SECONDS)


def stored_prompts(stack: LiveStack, token: str) -> list[tuple[float, float, bool]]:
    status, body, _ = request("GET", f"{stack.url}/api/v1/sessions/{token}")
    assert status == 200, body
    return [(p["x"], p["y"], bool(p.get("positive", True)))
            for p in json.loads(body)["current"]["prompts"]]


def open_pages(stack: LiveStack, count: int, offset: int, clicks: int,
               seed: int) -> list[Page]:
    pages = []
    for index, (path, gt) in enumerate(davis_items(count, offset)):
        status, state = upload(stack.url, path.name, path.read_bytes())
        if status != 201:
            raise RuntimeError(f"upload failed: {status} {state}")
        pages.append(Page(index, state["edit_token"], gt, click_plan(gt, clicks, seed + index)))
    deadline = time.monotonic() + 600
    for page in pages:  # every photo analysed before the clock starts
        while True:
            status, body, _ = request("GET", f"{stack.url}/api/v1/sessions/{page.token}")
            if json.loads(body)["status"] == "ready":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the photos were not analysed in time")
            time.sleep(0.2)
    return pages


@dataclass
class Machine:
    """The stack's processes and the machine's CPU, for RSS and contention."""

    processes: dict[str, psutil.Process]

    @classmethod
    def of(cls, stack: LiveStack) -> Machine:
        named = {"web (Daphne)": stack.daphne, "worker": stack.worker, "Redis": stack.redis_proc}
        processes = {name: psutil.Process(p.pid) for name, p in named.items() if p is not None}
        processes["load generator (this bench)"] = psutil.Process()
        return cls(processes)

    def decoders(self) -> list[psutil.Process]:
        """The web process's decode processes (maskweb.masking.decode_procs), if any."""
        web = self.processes.get("web (Daphne)")
        if web is None:
            return []
        found = []
        for child in web.children():
            with contextlib.suppress(psutil.Error):
                if "decode_child" in " ".join(child.cmdline()):
                    found.append(child)
        return found

    def rss_mb(self) -> dict[str, float]:
        rss = {name: p.memory_info().rss / 2**20 for name, p in self.processes.items()}
        decoders = self.decoders()
        if decoders:
            rss[DECODERS] = sum(p.memory_info().rss for p in decoders) / 2**20
        return rss

    def cpu_by_process(self) -> dict[str, float]:
        out = {}
        for name, p in self.processes.items():
            times = p.cpu_times()
            out[name] = times.user + times.system + times.children_user + times.children_system
        decoders = self.decoders()
        if decoders:
            out[DECODERS] = sum(t.user + t.system for t in (p.cpu_times() for p in decoders))
        return out

    def cpu_s(self) -> float:
        return sum(self.cpu_by_process().values())


def machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq
                  + getattr(times, "steal", 0.0))


@dataclass
class RunResult:
    label: str
    pages: list[Page]
    stored: int
    in_order: bool
    rss_before: dict[str, float]
    rss_after: dict[str, float]
    wall_s: float
    ours_cpu_s: float
    others_cpu_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    cpu_by_process: dict[str, float]

    @property
    def latencies(self) -> list[float]:
        return [page.answered_at[n + 1] - sent for page in self.pages
                for n, sent in enumerate(page.sent_at) if n + 1 in page.answered_at]

    def rows(self) -> list[tuple[str, str]]:
        sent = sum(len(p.sent_at) for p in self.pages)
        answered = sum(min(p.covered, len(p.sent_at)) for p in self.pages)
        lags = [p.lag for p in self.pages]
        known = [lag for lag in lags if lag is not None]
        lat = self.latencies
        errors = [e for p in self.pages for e in p.errors]
        closed = [p.closed for p in self.pages if p.closed and p.final_at is None]
        rows = [
            (f"{self.label}: prompts sent / stored / answered",
             f"{sent} / {self.stored} / {answered} (lost: {sent - self.stored}; stored in the "
             f"sent order: {'yes' if self.in_order else 'NO'})"),
            (f"{self.label}: final-mask lag per page (last click -> mask of all its prompts)",
             ", ".join("never" if lag is None else f"{lag:.2f} s" for lag in lags)),
            (f"{self.label}: final-mask lag max / median",
             (f"{max(known):.2f} / {statistics.median(known):.2f} s" if known else "n/a")
             + (f"; {len(lags) - len(known)} page(s) never got it" if len(known) < len(lags)
                else "")),
            (f"{self.label}: click -> mask p50 / p95 / p99",
             f"{percentile(lat, 50) * 1e3:.0f} / {percentile(lat, 95) * 1e3:.0f} / "
             f"{percentile(lat, 99) * 1e3:.0f} ms over {len(lat)} clicks"),
            (f"{self.label}: `behind` frames / error frames / sockets closed early",
             f"{sum(p.behind for p in self.pages)} / {len(errors)}"
             + (f" ({errors[0]})" if errors else "") + f" / {len(closed)}"
             + (f" ({closed[0]})" if closed else "")),
            (f"{self.label}: RSS before -> after (MiB)",
             "; ".join(f"{name} {self.rss_before.get(name, 0):.0f} -> "
                       f"{self.rss_after.get(name, 0):.0f}"
                       for name in {**self.rss_before, **self.rss_after})),
            (f"{self.label}: CPU seconds per process during the run (per prompt sent)",
             "; ".join(f"{name} {seconds:.1f} s ({seconds / max(sent, 1) * 1e3:.1f} ms)"
                       for name, seconds in self.cpu_by_process.items())),
            (f"{self.label}: contention",
             f"the stack and this bench used {self.ours_cpu_s / self.wall_s:.2f} cores, the "
             f"machine's other processes {self.others_cpu_s / self.wall_s:.2f} of "
             f"{os.cpu_count()}; load average {self.load_before[0]:.1f} before, "
             f"{self.load_after[0]:.1f} after"),
        ]
        return rows


def soak_run(stack: LiveStack, label: str, pages_count: int, interval: float,
             seconds: float, offset: int, seed: int) -> RunResult:
    """``offset``: which DAVIS photos; ``seed``: which clicks on them."""
    clicks = int(seconds / (interval * 0.9)) + 2
    pages = open_pages(stack, pages_count, offset, clicks, seed)
    machine = Machine.of(stack)
    rss_before = machine.rss_mb()
    load_before = os.getloadavg()
    cpu_before = machine.cpu_by_process()
    ours_before, busy_before, started = machine.cpu_s(), machine_busy_s(), time.perf_counter()
    rng = random.Random(seed)

    async def all_pages() -> None:
        await asyncio.gather(*(drive_page(stack.ws_url, page, interval, seconds,
                                          rng.uniform(0, interval), seed + page.index)
                               for page in pages))

    asyncio.run(all_pages())
    wall = time.perf_counter() - started
    cpu_after = machine.cpu_by_process()
    ours = sum(cpu_after.values()) - ours_before
    others = max(0.0, machine_busy_s() - busy_before - ours)
    stored, in_order = 0, True
    for page in pages:
        log = stored_prompts(stack, page.token)
        stored += len(log)
        sent = [(float(x), float(y), positive)
                for x, y, positive in page.plan[:len(page.sent_at)]]
        in_order = in_order and log == sent
    cpu = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    return RunResult(label, pages, stored, in_order, rss_before, machine.rss_mb(), wall, ours,
                     others, load_before, os.getloadavg(), cpu)


def bare_decoder_s(model_id: str, pages: list[tuple[Page, Path]],
                   samples: int = 120) -> list[float]:
    """The bare decoder on the pages' photos and click sequences: each page's log decoded at
    evenly spaced lengths, each on top of a prediction of the log before it, as the server
    decodes a click."""
    from maskweb.masking.decoding import engine
    from maskweb.segment import registry
    from maskweb.segment.types import Point, Prompts

    engine.one_thread_per_decode()  # as the web process decodes
    model = registry.load_model(model_id)
    warm_up = getattr(model, "warm_up", None)
    if callable(warm_up):
        warm_up("decoder")
    times: list[float] = []
    per_page = max(1, samples // max(1, len(pages)))
    for page, path in pages:
        embedding = model.encode(np.asarray(Image.open(path).convert("RGB")))
        count = len(page.sent_at)
        lengths = sorted({max(1, round(count * (k + 1) / per_page)) for k in range(per_page)})
        points = [Point(x, y, positive) for x, y, positive in page.plan[:count]]
        for length in lengths:
            previous = model.decode(embedding, Prompts(points=tuple(points[:length - 1]))) \
                if length > 1 else None
            began = time.perf_counter()
            model.decode(embedding, Prompts(points=tuple(points[:length])), previous)
            times.append(time.perf_counter() - began)
    return times


def machine_text() -> str:
    import onnxruntime as ort

    return describe(f"onnxruntime {ort.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model id (default: the app's default)")
    parser.add_argument("--pages", type=int, default=16)
    parser.add_argument("--interval-ms", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--ratio-pages", type=int, default=4,
                        help="pages of the closing run compared with the bare decoder (0: none)")
    parser.add_argument("--quick", action="store_true",
                        help="4 pages, 10 s, one run: a smoke run, not for reporting")
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.seconds, args.runs = 4, 10.0, 1

    from maskweb.segment import registry

    model_id = args.model or registry.default_model_id()
    interval = args.interval_ms / 1000.0
    print(f"model {model_id}; machine: {machine_text()}", flush=True)
    rows: list[tuple[str, str]] = []
    with start_stack({"MASKWEB_STACK_MODEL": model_id, "MASKWEB_DEFAULT_MODEL": model_id}) \
            as stack:
        offset = 200
        for run in range(1, args.runs + 1):
            # The same photos each run (new sessions, other clicks, so every mask is decoded
            # again): the second run's memory is the first one's workload again, so growth is
            # a leak, not a cache filling with photos it had not seen.
            label = f"run {run}, {args.pages} pages × {args.interval_ms:g} ms × {args.seconds:g} s"
            result = soak_run(stack, label, args.pages, interval, args.seconds, offset,
                              seed=1000 * run)
            rows += result.rows()
            print(*(f"| {k} | {v} |" for k, v in result.rows()), sep="\n", flush=True)
        offset += args.pages
        if args.ratio_pages:
            label = f"{args.ratio_pages} pages × {args.interval_ms:g} ms × {args.seconds:g} s"
            result = soak_run(stack, label, args.ratio_pages, interval, args.seconds, offset,
                              seed=offset)
            photos = [path for path, _ in davis_items(args.ratio_pages, offset)]
            rows += result.rows()
            print(*(f"| {k} | {v} |" for k, v in result.rows()), sep="\n", flush=True)
    if args.ratio_pages:
        bare = bare_decoder_s(model_id, list(zip(result.pages, photos, strict=True)))
        bare_median = statistics.median(bare)
        p95 = percentile(result.latencies, 95)
        rows.append((f"{label}: p95 against the bare decoder (same photos and click "
                     f"sequences, decoded here after the runs: median {bare_median * 1e3:.1f} "
                     f"ms over {len(bare)} decodes)",
                     f"p95 {p95 * 1e3:.0f} ms = {p95 / bare_median:.2f}× the bare decoder"))
        print(f"| {rows[-1][0]} | {rows[-1][1]} |", flush=True)
    return report(rows, model_id, args)


def report(rows: list[tuple[str, str]], model_id: str, args: argparse.Namespace) -> int:
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    command = (f"python -m bench.soak --model {model_id} --pages {args.pages} --interval-ms "
               f"{args.interval_ms:g} --seconds {args.seconds:g} --runs {args.runs} "
               f"--ratio-pages {args.ratio_pages}")
    flag = os.environ.get("MASKWEB_DECODE_PROCESSES", "1")
    decodes = ("the web process decodes in its threads" if flag.strip().lower() in
               ("0", "false", "no", "off") else "the web process decodes in child processes")
    header = (f"# bench.soak, model `{model_id}`, {stamp}\n\n{machine_text()}\n\n"
              f"`MASKWEB_DECODE_PROCESSES={flag} {command}` ({decodes})\n\n")
    print("\n" + table)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / f"soak-{model_id}-{stamp}.md"
        out.write_text(header + table + "\n")
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
