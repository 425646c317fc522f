"""Latency of the real stack, as the page sees it: upload -> ready, and click -> mask frame.

Starts the live stack (embedded Redis, a Celery worker, Daphne; tests/stack.py), uploads a
photo, then sends clicks over the websocket and times each mask frame. Prints figures; asserts
nothing. Usage: .venv/bin/python -m bench.socket_latency [--model ID] [--clicks N] [--size PX]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image

from tests.stack import start_stack
from tests.web.client import Socket, upload


def photo(size: int) -> bytes:
    h, w = size * 3 // 4, size
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    pixels[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = (230, 200, 40)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="grabcut")
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--size", type=int, default=4000, help="photo width in pixels")
    args = parser.parse_args()
    with start_stack({"MASKWEB_DEFAULT_MODEL": args.model}) as stack:
        data = photo(args.size)
        started = time.perf_counter()
        status, state = upload(stack.url, "bench.jpg", data)
        uploaded = time.perf_counter() - started
        assert status == 201, state
        sock = Socket(stack.ws_url, state["edit_token"])
        hello = sock.next()
        if hello["state"]["status"] != "ready":
            sock.wait_type("status", 300, status="ready")
        ready = time.perf_counter() - started
        w, h = state["photo"]["width"], state["photo"]["height"]
        rng = np.random.default_rng(1)
        times = []
        for i in range(args.clicks):
            x = float(rng.uniform(w / 3, 2 * w / 3))
            y = float(rng.uniform(h / 4, 3 * h / 4))
            t0 = time.perf_counter()
            sock.send(type="prompt", id=f"b{i}", prompt={"kind": "point", "x": x, "y": y,
                                                         "positive": i % 4 != 3})
            sock.wait_for(lambda f, want=f"b{i}": isinstance(f, tuple) and f[0]["id"] == want)
            times.append((time.perf_counter() - t0) * 1000)
        sock.close()
    print(f"model {args.model}, photo {w}x{h} ({len(data) / 1e6:.1f} MB JPEG), "
          f"preview {state['photo']['preview_width']}x{state['photo']['preview_height']}")
    print(f"upload (HTTP, validate, store, work picture): {uploaded * 1000:8.0f} ms")
    print(f"upload -> embedding ready (queue + encode):   {ready * 1000:8.0f} ms")
    print(f"click -> mask frame, {args.clicks} clicks (ms):  median {statistics.median(times):.0f}"
          f"  p90 {np.percentile(times, 90):.0f}  max {max(times):.0f}  first {times[0]:.0f}")


if __name__ == "__main__":
    main()
