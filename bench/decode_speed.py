"""Time per encode and per decode, models or the classical engine's settings side by side.

    .venv/bin/python -m bench.decode_speed --variant iterations=3 --variant iterations=1
    .venv/bin/python -m bench.decode_speed --model litemedsam --width 2048
    .venv/bin/python -m bench.decode_speed --model litemedsam-photo \
        --model build/sam21-bench/models/mask-object-sam21-tiny --limit 10

For every ``--limit`` evenly spaced DAVIS photo (the same fixed subset as bench.quality),
each model (or variant) encodes the photo, then decodes the protocol's first click (deepest
inside the object) and the object's bounding box, in turn, so the host's drift (20% within
minutes here) hits every one alike. A decode's time covers the whole decode: the decoder,
grabCut, upsampling, the guided edge and the clean-up; it runs on one thread, as the server's
decoder does. The encode runs as the worker's does (``MASKWEB_ONNX_THREADS``: all cores up to
8). bench.quality's "decode s/click" is not this: it is timed alongside whatever else runs.
``--model`` (repeatable) is an installed model's id or a model package's folder
(bench.model_arg). A variant is ``key=value[,key=value]`` of GrabCutSegmenter's settings;
``default`` is the engine as shipped (the only variant of an ONNX model). ``--width 2048``
scales the photos up to the work size of a 12 MP photo (DAVIS's are 854 px wide), where the
per-pixel steps (upsampling, the guided edge, the clean-up) weigh most.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from PIL import Image

from bench.host import describe
from bench.model_arg import parse_model_arg
from bench.quality import dataset_items, fixed_subset, gt_box, load, next_click, read_gt
from maskweb.segment.registry import GRABCUT_ID
from maskweb.segment.types import Embedding, Point, Prompts, Segmenter


def parse_variant(text: str) -> dict[str, str]:
    if text == "default":
        return {}
    settings = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not key or not sep or not value:
            raise ValueError(f"a variant is key=value[,key=value] or 'default', not {text!r}")
        settings[key] = value
    return settings


def first_prompts(gt: np.ndarray) -> tuple[Prompts, Prompts]:
    """The protocol's first click and the gt box."""
    _, y, x = next_click(np.zeros_like(gt), gt, np.ones_like(gt))
    return Prompts(points=(Point(x + 0.5, y + 0.5, True),)), Prompts(box=gt_box(gt))


def timed(model: Segmenter, embedding: Embedding, prompts: Prompts) -> float:
    started = time.perf_counter()
    model.decode(embedding, prompts)
    return time.perf_counter() - started


def timed_encode(model: Segmenter, image: np.ndarray) -> tuple[Embedding, float]:
    started = time.perf_counter()
    embedding = model.encode(image)
    return embedding, time.perf_counter() - started


def summary(times: list[float]) -> str:
    ms = np.asarray(times) * 1e3
    return f"{statistics.median(ms):.0f} / {np.percentile(ms, 90):.0f} / {ms.max():.0f} ms"


def summary_s(times: list[float]) -> str:
    s = np.asarray(times)
    return f"{statistics.median(s):.2f} / {np.percentile(s, 90):.2f} / {s.max():.2f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", action="append", default=[],
                   help="key=value[,key=value] of GrabCutSegmenter, or 'default' (repeatable)")
    p.add_argument("--limit", type=int, default=35)
    p.add_argument("--model", action="append", default=[],
                   help="an installed model's id or a model package's folder (repeatable; "
                        "default grabcut)")
    p.add_argument("--width", type=int, default=None,
                   help="scale each photo (and its mask) to this width first")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    model_args = [parse_model_arg(m) for m in args.model or [GRABCUT_ID]]
    variants = args.variant or ["default"]
    if variants != ["default"] and [m.model_id for m in model_args] != [GRABCUT_ID]:
        p.error("variants are the grabcut engine's settings (one --model grabcut)")
    if variants != ["default"]:
        names = variants
        models = [load(GRABCUT_ID, None, parse_variant(v)) for v in variants]
    else:
        names = [m.model_id for m in model_args]
        models = [m.load() for m in model_args]
    for model in models:  # a fresh onnxruntime session's first runs are slow
        warm_up = getattr(model, "warm_up", None)
        if callable(warm_up):
            warm_up("encoder")
            warm_up("decoder")
    items = dataset_items("davis")
    encodes: list[list[float]] = [[] for _ in names]
    clicks: list[list[float]] = [[] for _ in names]
    boxes: list[list[float]] = [[] for _ in names]
    for index in fixed_subset(len(items), args.limit):
        img_path, gt_path = items[index]
        photo = Image.open(img_path).convert("RGB")
        gt = read_gt(gt_path)
        if args.width:
            size = (args.width, round(photo.height * args.width / photo.width))
            photo = photo.resize(size, Image.Resampling.BICUBIC)
            gt = np.asarray(Image.fromarray(gt).resize(size, Image.Resampling.NEAREST))
        image = np.asarray(photo)
        click, box = first_prompts(gt)
        for i, model in enumerate(models):
            embedding, seconds = timed_encode(model, image)
            encodes[i].append(seconds)
            clicks[i].append(timed(model, embedding, click))
            boxes[i].append(timed(model, embedding, box))
            del embedding
    scaled = f", scaled to {args.width} px wide" if args.width else ""
    print(f"DAVIS, {len(clicks[0])} photos{scaled}; decodes on one thread; median / p90 / max")
    print(f"{describe()}\n")
    first = "variant of grabcut" if variants != ["default"] else "model"
    print(f"| {first} | encode | first click | gt box |\n|---|---|---|---|")
    for name, e, c, b in zip(names, encodes, clicks, boxes, strict=True):
        print(f"| {name} | {summary_s(e)} | {summary(c)} | {summary(b)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
