"""Figures for sizing a deployment (docs/deploy.md): per model, what a worker encodes a second
and what one photo's embedding takes in Redis and in a web process's memory.

    .venv/bin/python -m bench.deploy [--model ID ...] [--limit 5] [--width 2048]

For every ``--limit`` evenly spaced DAVIS photo (bench.quality's fixed subset), scaled to
``--width`` (2048: the working picture of a 12 MP photo, MASKWEB_WORK_MAX_SIDE's default),
each model encodes it as a worker does (onnxruntime's threads: all cores up to 8, or
MASKWEB_ONNX_THREADS), and the embedding is stored as the app stores it (float16,
maskweb.segment.embedding) in a private redis-server, where ``MEMORY USAGE`` gives what the
key really takes (value, key and Redis's own overhead). Prints per model: the encode's median
seconds and so photos a second per worker process on this machine's CPU, the bytes per
embedding in Redis and how many photos (each session's photo, sessions sharing a photo share
it) a GiB of Redis holds, and the bytes one embedding takes in a web process's cache and how
many fit in MASKWEB_EMBEDDING_CACHE_MB's default 256 MB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
from PIL import Image

from bench.host import describe
from bench.model_arg import parse_model_arg
from bench.quality import dataset_items, fixed_subset
from maskweb import runner
from maskweb.segment import embedding as embedding_codec

GIB = 2**30
CACHE_BYTES = 256 * 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", default=[],
                   help="installed model id (repeatable; default: grabcut, litemedsam, "
                        "litemedsam-photo)")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--width", type=int, default=2048)
    args = p.parse_args(argv)
    names = args.model or ["grabcut", "litemedsam", "litemedsam-photo"]
    models = [parse_model_arg(name) for name in names]
    loaded = [m.load() for m in models]
    for model in loaded:  # a fresh onnxruntime session's first runs are slow
        warm_up = getattr(model, "warm_up", None)
        if callable(warm_up):
            warm_up("encoder")
    items = dataset_items("davis")
    photos = []
    for index in fixed_subset(len(items), args.limit):
        photo = Image.open(items[index][0]).convert("RGB")
        size = (args.width, round(photo.height * args.width / photo.width))
        photos.append(np.asarray(photo.resize(size, Image.Resampling.BICUBIC)))

    folder = Path(tempfile.mkdtemp(prefix="maskweb-bench-redis-"))
    port = runner.free_port()
    server = runner.spawn(runner.redis_command(port, folder, "2gb"), {}, folder,
                          folder / "redis.log")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        runner.wait_for_redis(url, process=server)
        client = redis.Redis.from_url(url)
        print(f"DAVIS, {len(photos)} photos scaled to {args.width} px wide "
              f"({photos[0].shape[1]}x{photos[0].shape[0]} the first); median of each")
        print(f"{describe()}\n")
        print("| model | encode (s) | photos/s per worker | Redis bytes per embedding "
              "(MEMORY USAGE) | photos per GiB of Redis | web cache bytes per embedding "
              "| embeddings per 256 MB web cache |\n|---|---|---|---|---|---|---|")
        for name, model in zip(names, loaded, strict=True):
            seconds, in_redis, in_memory = [], [], []
            for i, image in enumerate(photos):
                started = time.perf_counter()
                embedding = model.encode(image)
                seconds.append(time.perf_counter() - started)
                key = f"maskweb:emb:v1:{name}:{i:064d}:{image.shape[1]}x{image.shape[0]}"
                client.set(key, embedding_codec.embedding_to_bytes(embedding,
                                                                   dtype="float16"))
                in_redis.append(int(client.memory_usage(key, samples=0) or 0))
                in_memory.append(sum(a.nbytes for a in embedding.arrays.values()))
                client.delete(key)
            encode = statistics.median(seconds)
            redis_bytes = statistics.median(in_redis)
            memory_bytes = statistics.median(in_memory)
            print(f"| {name} | {encode:.2f} | {1 / encode:.2f} | {redis_bytes / 2**20:.2f} MiB "
                  f"| {int(GIB // redis_bytes)} | {memory_bytes / 2**20:.2f} MiB "
                  f"| {int(CACHE_BYTES // max(1, memory_bytes))} |")
        client.close()
    finally:
        runner.stop(server)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
