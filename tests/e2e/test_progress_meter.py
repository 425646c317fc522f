"""The analysis progress meter, watched in the real page while the real worker encodes.

The meter (maskweb.masking.jobs.progress) reports every quarter second while the encoder
runs, but a real encode on the test stack is over in about a second here and in a fraction of
one on a fast machine: too few reports to tell a moving meter from one that jumps from 10 %
to 95 %. So the real Celery worker is slowed down from outside, with the kernel's own job
control: in every cycle of CYCLE seconds it runs until it has used a fixed share of the CPU
that the same encode took when it was measured a moment before (read from the process's CPU
clock), and is then stopped (SIGSTOP) until the next cycle (SIGCONT). The encode is the real
one, unchanged; it now lasts about CYCLES cycles on any CPU, fast or slow, idle or busy, and
the meter's thread inside the worker runs on the same wall clock as always. The model's
remembered encode time (progress.duration_key, what the meter's estimate curve is drawn from)
is set to that duration, as the worker itself would learn it on a server this slow.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import threading
import time
import uuid
from pathlib import Path

import pytest

from maskweb.masking.jobs import progress
from tests.e2e.test_session_page import PHOTO, WAIT_MS, new_page, wait_or_explain
from tests.web.client import request, upload

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

MODEL = "litemedsam-photo"  # an ONNX encoder: one opaque call, its own reports 10 % and 95 %
CYCLE = progress.INTERVAL + 0.05  # a little longer than the meter's interval: a report a cycle
CYCLES = 24  # how many cycles the slowed encode lasts (a few more: the meter's own reports)
RUN_CAP = 0.15  # the longest the worker runs in one cycle, if it gets no CPU (a busy machine)
ENCODE_WAIT_S = 180  # the first encode also waits for the model to load, on 2 busy cores

# Records every value the page's meter shows: the top bar's width, the stage message's meter
# and the status text, each time one of them changes (a MutationObserver sees each message's
# update, however short it is shown, which polling from the test would not).
RECORDER = """(() => {
  const log = [];
  window.__meter = log;
  const width = (el) => (el ? parseFloat(el.style.width || '0') : null);
  const read = () => {
    const bar = document.getElementById('progress-bar');
    const entry = {
      t: performance.now(),
      status: document.body.dataset.status || '',
      bar: width(bar),
      stage: width(document.getElementById('stage-meter-fill')),
      text: document.getElementById('status-text').textContent,
    };
    const last = log[log.length - 1];
    if (!last || last.status !== entry.status || last.bar !== entry.bar
        || last.stage !== entry.stage || last.text !== entry.text) log.push(entry);
  };
  document.addEventListener('DOMContentLoaded', () => {
    if (!document.getElementById('progress-bar')) return;  // the upload page
    const seen = new MutationObserver(read);
    seen.observe(document.body, {attributes: true, attributeFilter: ['data-status']});
    for (const id of ['progress-bar', 'stage-meter-fill']) {
      seen.observe(document.getElementById(id), {attributes: true, attributeFilter: ['style']});
    }
    seen.observe(document.getElementById('status-text'),
                 {childList: true, characterData: true, subtree: true});
    read();
  });
})();"""

# The shown values strictly between the meter's first report and the encoder's own 95 %.
BETWEEN = """() => {
  const shown = window.__meter.filter((e) => e.status === 'encoding' && e.bar > 0);
  if (!shown.length) return [];
  return [...new Set(shown.map((e) => e.bar))].filter((v) => v > shown[0].bar && v < 95);
}"""


# Everything the meter showed, in order, for a failure's message.
SHOWN = "() => window.__meter.map((e) => `${e.status} ${e.bar}`).join(', ')"


def unique_copy(photo: Path, folder: Path) -> Path:
    """The same pixels in other bytes (a JPEG comment): a photo the stack has never encoded,
    so its upload is encoded again, the same work every time."""
    data = photo.read_bytes()
    assert data[:2] == b"\xff\xd8", "a JPEG starts with SOI"
    note = f"maskweb test {uuid.uuid4()}".encode()
    path = folder / uuid.uuid4().hex / photo.name
    path.parent.mkdir()
    path.write_bytes(data[:2] + b"\xff\xfe" + struct.pack(">H", len(note) + 2) + note + data[2:])
    return path


def cpu_seconds(pid: int) -> float:
    """The CPU time all the process's threads have run, ended ones included: the process's
    own CPU clock (what glibc's clock_getcpuclockid names), read in a microsecond, to the ns."""
    return time.clock_gettime(((~pid) << 3) | 2)  # Linux: MAKE_PROCESS_CPUCLOCK(pid, SCHED)


def session_status(base: str, token: str) -> str:
    code, body, _ = request("GET", f"{base}/api/v1/sessions/{token}")
    assert code == 200, body
    return str(json.loads(body)["status"])


def encode_by_api(stack, photo: Path) -> float:
    """Uploads by script and waits for the encode; the CPU time the worker spent on it."""
    pid = stack.worker.pid
    before = cpu_seconds(pid)
    code, body = upload(stack.url, photo.name, photo.read_bytes(), model=MODEL)
    assert code == 201, body
    token = body["edit_url"].rstrip("/").rsplit("/", 1)[-1]
    deadline = time.monotonic() + ENCODE_WAIT_S
    while (status := session_status(stack.url, token)) != "ready":
        assert status in ("encoding", "reencoding"), (status, stack.logs())
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.05)
    return cpu_seconds(pid) - before


class Throttle(threading.Thread):
    """Lets the process run ``budget`` seconds of CPU (at most RUN_CAP of wall time) at the
    start of every CYCLE, and keeps it stopped for the rest."""

    def __init__(self, pid: int, budget: float) -> None:
        super().__init__(daemon=True, name="throttle-worker")
        self.pid, self.budget = pid, budget
        self.done = threading.Event()
        self.cycles = 0

    def run(self) -> None:
        try:
            while not self.done.is_set():
                started = time.monotonic()
                used_before = cpu_seconds(self.pid)
                os.kill(self.pid, signal.SIGCONT)
                while (cpu_seconds(self.pid) - used_before < self.budget
                       and time.monotonic() - started < RUN_CAP):
                    time.sleep(0.0002)
                os.kill(self.pid, signal.SIGSTOP)
                self.cycles += 1
                self.done.wait(max(0.0, started + CYCLE - time.monotonic()))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.done.set()
        if self.ident is not None:  # started
            self.join(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # whatever happened: never left stopped
            os.kill(self.pid, signal.SIGCONT)


def test_the_meter_moves_steadily_while_the_photo_is_analysed(live_stack, browser, artifacts,
                                                              tmp_path):
    if not PHOTO.exists():
        pytest.skip("DAVIS data not found beside the repository (../shared/datasets)")
    # The model's first encode in this worker also loads it: not the encode to measure.
    encode_by_api(live_stack, unique_copy(PHOTO, tmp_path))
    job_cpu = encode_by_api(live_stack, unique_copy(PHOTO, tmp_path))
    assert job_cpu > 0.005, job_cpu  # the worker did encode the photo

    redis = live_stack.redis()
    key = progress.duration_key(MODEL)
    learned = redis.get(key)
    assert learned is not None, "the worker remembers how long the encode took"
    redis.set(key, f"{CYCLES * CYCLE:.3f}")
    context, page = new_page(browser)
    page.add_init_script(RECORDER)
    throttle = Throttle(live_stack.worker.pid, job_cpu / CYCLES)
    try:
        page.goto(live_stack.url + "/")
        page.wait_for_function(
            "(m) => [...document.querySelectorAll('#model-select option')]"
            ".some((o) => o.value === m) && !document.getElementById('model-select').disabled",
            arg=MODEL, timeout=WAIT_MS)
        page.select_option("#model-select", MODEL)
        throttle.start()
        # The photographer clicks the drop zone and picks the photo in the file dialog.
        with page.expect_file_chooser() as chooser:
            page.locator("#dropzone").click()  # the mouse, once the zone is still and visible
        chooser.value.set_files(str(unique_copy(PHOTO, tmp_path)))
        page.wait_for_url("**/s/*/", timeout=WAIT_MS)

        # Mid-way: the meter has shown three values past its first report (or, without a
        # moving meter, the encode ends first, and the test fails here without waiting).
        wait_or_explain(page, f"({BETWEEN})().length >= 3"
                        " || ['ready', 'failed'].includes(document.body.dataset.status)",
                        live_stack, timeout=ENCODE_WAIT_S * 1000)
        midway_text = page.inner_text("#status-text")
        assert len(page.evaluate(BETWEEN)) >= 3, page.evaluate(SHOWN)
        page.screenshot(path=str(artifacts / "progress-meter-midway.png"))
        midway_after = page.inner_text("#status-text")

        wait_or_explain(page, "document.body.dataset.status === 'ready'", live_stack,
                        timeout=ENCODE_WAIT_S * 1000)
        throttle.stop()
        page.screenshot(path=str(artifacts / "progress-meter-ready.png"))
        log = page.evaluate("window.__meter")
        between = page.evaluate(BETWEEN)
        assert not page.js_errors, page.js_errors
    finally:
        throttle.stop()
        context.close()
        redis.set(key, learned)
        redis.close()

    shown = [e for e in log if e["status"] == "encoding"]
    values = [e["bar"] for e in shown]
    explain = f"the meter showed {values}; the worker ran {throttle.cycles} cycles"
    # What the page says and what its two meters draw agree, every time.
    for e in shown:
        if e["bar"] > 0:
            assert e["text"] == f"Encoding {e['bar']:g}%", e
            assert e["stage"] == e["bar"], e
    # It never goes back, from the first value to the last.
    assert values == sorted(values), explain
    reports = [v for v in values if v > 0]
    assert reports, explain
    first = reports[0]
    # Several distinct values between its first report and the encoder's own 95 %, evenly
    # spread: no jump from about 10 % to 95 %.
    assert len(between) >= 6, explain
    assert between == sorted(between), explain
    steps = [b - a for a, b in zip([first, *between], between, strict=False)]
    assert max(steps) <= 30, explain
    assert max(between) >= 50, explain
    # One by one, as the encode went on (the meter reports at most once an INTERVAL), not
    # in a burst at its end.
    when = {e["bar"]: e["t"] / 1000 for e in reversed(shown)}  # when each was first shown
    assert when[between[-1]] - when[between[0]] >= (len(between) - 1) * progress.INTERVAL / 2, \
        [(v, round(when[v], 2)) for v in between]
    # Then the encoder's own end, and ready.
    assert log[-1]["status"] == "ready", log[-1]
    assert log[-1]["text"] == "Ready", log[-1]
    assert values[-1] >= 95, explain
    # The screenshot was taken with a value between, as the text said before and after it.
    for text in (midway_text, midway_after):
        assert text.startswith("Encoding "), text
        assert first < float(text.removeprefix("Encoding ").rstrip("%")) < 100, text
