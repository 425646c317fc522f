"""Time per decode of the classical engine's settings, side by side, alone on one thread.

    .venv/bin/python -m bench.decode_speed --variant iterations=3 --variant iterations=1
    .venv/bin/python -m bench.decode_speed --model litemedsam --width 2048

For every ``--limit`` evenly spaced DAVIS photo (the same fixed subset as bench.quality),
each variant decodes the protocol's first click (deepest inside the object) and the object's
bounding box, in turn, so the host's drift (20% within minutes here) hits every variant
alike. A time covers the whole decode: grabCut, upsampling, the guided edge and the clean-up.
bench.quality's "decode s/click" is not this: it is timed alongside whatever else runs.
A variant is ``key=value[,key=value]`` of GrabCutSegmenter's settings; ``default`` is the
engine as shipped (the only variant of another ``--model``). ``--width 2048`` scales the
photos up to the work size of a 12 MP photo (DAVIS's are 854 px wide), where the per-pixel
steps (upsampling, the guided edge, the clean-up) weigh most.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from PIL import Image

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


def summary(times: list[float]) -> str:
    ms = np.asarray(times) * 1e3
    return f"{statistics.median(ms):.0f} / {np.percentile(ms, 90):.0f} / {ms.max():.0f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", action="append", default=[],
                   help="key=value[,key=value] of GrabCutSegmenter, or 'default' (repeatable)")
    p.add_argument("--limit", type=int, default=35)
    p.add_argument("--model", default=GRABCUT_ID)
    p.add_argument("--width", type=int, default=None,
                   help="scale each photo (and its mask) to this width first")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    names = args.variant or ["default"]
    if args.model != GRABCUT_ID and names != ["default"]:
        p.error("variants are the grabcut engine's settings")
    models = [load(args.model, None, parse_variant(v)) for v in names]
    for model in models:  # a fresh onnxruntime session's first runs are slow
        warm_up = getattr(model, "warm_up", None)
        if callable(warm_up):
            warm_up("decoder")
    items = dataset_items("davis")
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
        embeddings = [m.encode(image) for m in models]
        for i, (model, embedding) in enumerate(zip(models, embeddings, strict=True)):
            clicks[i].append(timed(model, embedding, click))
            boxes[i].append(timed(model, embedding, box))
    scaled = f", scaled to {args.width} px wide" if args.width else ""
    print(f"DAVIS, {len(clicks[0])} photos{scaled}, one thread, median / p90 / max\n")
    print(f"| {args.model} | first click | gt box |\n|---|---|---|")
    for name, c, b in zip(names, clicks, boxes, strict=True):
        print(f"| {name} | {summary(c)} | {summary(b)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
