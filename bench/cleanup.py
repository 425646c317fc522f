"""Time of a decode's topological clean-up on a 12 MP photo's work image, against its definition.

    .venv/bin/python -m bench.cleanup                   # litemedsam, 10 COCO_MVal photos
    .venv/bin/python -m bench.cleanup --model grabcut --limit 6
    .venv/bin/python -m bench.cleanup --clicker random  # bench.latency's person instead

Every click's mask passes through postprocess.clean_mask (keep the clicked regions, drop
specks, fill pinholes), a pass over every pixel of the object's frame, so its cost grows with
the photo: at 2048 px (a 12 MP photo's work size) it weighed half of what the ONNX decoder
took. This bench collects the masks clean_mask really gets, photo by photo (each scaled to
``--side``, clicked by the quality bench's clicker), then times clean_mask and the two-step
definition it must agree with (keep_prompted_regions, then remove_small, on the same frame:
clean_mask's code before it labelled the foreground once) on each, in turn, so the host's
drift hits both alike, and checks that the masks are the same.

``--clicker``: ``ritm`` (the default) clicks the middle of the largest error, as the quality
bench does; ``random`` clicks as bench.latency's person does (anywhere inside the object,
some clicks outside). LiteMedSAM's masks for random clicks break up far more (hundreds of
regions on a 2048-px photo, against tens), which is where a click's clean-up costs most.

COCO_MVal, not DAVIS: DAVIS is what mask quality is measured on; this times code, and the
photos only need to be photos.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import cv2
import numpy as np
from PIL import Image

from bench.latency import click_plan
from bench.quality import dataset_items, fixed_subset, load, next_click, read_gt
from maskweb.segment import classical, onnx_engine, postprocess
from maskweb.segment.types import Box, Point, Prompts

Case = tuple[np.ndarray, list[Point], Box | None]


def collect(model_id: str, limit: int, side: int, clicks: int,
            clicker: str = "ritm") -> list[Case]:
    """The (mask, points, box) of every clean_mask call while clicking the photos."""
    seen: list[Case] = []
    real = postprocess.clean_mask

    def spy(mask: np.ndarray, points: Any, box: Box | None = None,
            min_area: int | None = None) -> np.ndarray:
        seen.append((np.array(mask, dtype=bool), list(points), box))
        return real(mask, points, box, min_area)

    model = load(model_id, None, {})
    items = dataset_items("coco")
    engines = (onnx_engine, classical)  # the modules that call clean_mask by that name
    for engine in engines:
        engine.clean_mask = spy  # type: ignore[attr-defined]
    try:
        for index in fixed_subset(len(items), limit):
            img_path, gt_path = items[index]
            photo = Image.open(img_path).convert("RGB")
            scale = side / max(photo.size)  # as the app's work image: the long side
            size = (round(photo.width * scale), round(photo.height * scale))
            image = np.asarray(photo.resize(size, Image.Resampling.BICUBIC))
            gt = np.asarray(Image.fromarray(read_gt(gt_path)).resize(
                size, Image.Resampling.NEAREST))
            embedding = model.encode(image)
            pred, not_clicked = np.zeros_like(gt), np.ones_like(gt)
            points: list[Point] = []
            previous = None
            plan = click_plan(gt, clicks, seed=index) if clicker == "random" else []
            for i in range(clicks):
                if plan:
                    points.append(Point(*plan[i]))
                else:
                    positive, row, col = next_click(pred, gt, not_clicked)
                    not_clicked[row, col] = False
                    points.append(Point(col + 0.5, row + 0.5, positive))
                previous = model.decode(embedding, Prompts(points=tuple(points)), previous)
                pred = previous.candidates[0].mask
    finally:
        for engine in engines:
            engine.clean_mask = real  # type: ignore[attr-defined]
    return seen


def two_steps(mask: np.ndarray, points: list[Point], box: Box | None) -> np.ndarray:
    """clean_mask's definition: the two steps, on the object's frame, as clean_mask ran them
    up to 2026-12-02 (on the whole image they give the same mask, slower still)."""
    h, w = mask.shape
    out = np.zeros((h, w), bool)
    framed = postprocess.object_frame(mask, points, box)
    if framed is not None:
        (y0, y1, x0, x1), sub, inside = framed
        kept = postprocess.keep_prompted_regions(sub, inside)
        out[y0:y1, x0:x1] = postprocess.remove_small(kept, postprocess.min_area_for(mask.shape),
                                                     protect=inside)
    return out


def summary(times: list[float]) -> str:
    ms = np.asarray(times) * 1e3
    return f"{statistics.median(ms):.1f} / {np.percentile(ms, 90):.1f} / {ms.max():.1f} ms"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="litemedsam")
    p.add_argument("--limit", type=int, default=10, help="photos")
    p.add_argument("--clicks", type=int, default=12, help="clicks a photo")
    p.add_argument("--side", type=int, default=2048,
                   help="long side of the photos (the app's work size of a large photo)")
    p.add_argument("--rounds", type=int, default=3, help="times each mask is cleaned")
    p.add_argument("--clicker", choices=("ritm", "random"), default="ritm",
                   help="where the clicks go (see the module's doc)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    cases = collect(args.model, args.limit, args.side, args.clicks, args.clicker)
    fast: list[float] = []
    reference: list[float] = []
    same = 0
    for round_ in range(args.rounds):
        for mask, points, box in cases:
            started = time.perf_counter()
            ours = postprocess.clean_mask(mask, points, box)
            fast.append(time.perf_counter() - started)
            started = time.perf_counter()
            defined = two_steps(mask, points, box)
            reference.append(time.perf_counter() - started)
            same += round_ == 0 and bool(np.array_equal(ours, defined))
    parts = [cv2.connectedComponents(m.view(np.uint8), connectivity=8)[0] - 1
             for m, _, _ in cases]
    print(f"{args.model}: {len(cases)} masks of {args.limit} COCO_MVal photos, long side"
          f" {args.side} px, {args.clicks} {args.clicker} clicks each; regions a mask: median"
          f" {statistics.median(parts):.0f}, max {max(parts)}; each cleaned {args.rounds} times,"
          " one thread\n")
    print("| clean-up | median / p90 / max |\n|---|---|")
    print(f"| clean_mask | {summary(fast)} |")
    print(f"| keep_prompted_regions, then remove_small (its definition) | {summary(reference)} |")
    print(f"\nclean_mask takes {statistics.median(fast) / statistics.median(reference):.2f}x the"
          f" definition's median time; the same mask in {same} of {len(cases)}")
    return 0 if same == len(cases) else 1


if __name__ == "__main__":
    raise SystemExit(main())
