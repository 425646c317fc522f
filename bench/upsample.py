"""Full-resolution edges: a work-size mask upsampled to the photo, each method side by side.

    .venv/bin/python -m bench.upsample --dataset coco --limit 100     # tuning
    .venv/bin/python -m bench.upsample                                # DAVIS-345, measuring
    .venv/bin/python -m bench.upsample --time-only                    # a 24 MP photo

What it isolates is the upsampling, not the engine: each photo stands for a large photo and
its ground truth for the perfect mask; the photo scaled down ``--factor`` times (3: a 24 MP
photo's 6000 px against the 2048 px working picture) is the working picture, the ground truth
scaled down the same way (area, threshold 0.5) is the mask the engine would give there, and
every method scales that mask back up to the photo's own size, where it is scored against
the ground truth: IoU and boundary IoU with the band at 2 % (the standard) and 0.5 % of the
diagonal (about 5 px on DAVIS: the error an upsampling makes is a few pixels wide).

Methods: ``binary`` is today's download (the bool mask scaled up bilinearly, threshold at
one half: render.resize_mask); ``bilinear`` the soft mask scaled up; ``guided r=K eps=E``
maskweb.segment.upsample's guided filter with the photo as the guide (window K x the
factor); ``jbf sc=S`` opencv-contrib's joint-bilateral filter (darktable's way; only where
``cv2.ximgproc`` exists: opencv-contrib-python-headless replaces opencv-python-headless, the
two cannot be installed side by side). Each is timed on a 24 MP photo (a COCO_MVal photo
scaled up to 6000 x 4000, its mask from the ground truth at 2048 px).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from bench.quality import RESULTS, boundary_iou, dataset_items, fixed_subset, iou, read_gt
from maskweb.segment.upsample import guided_tiles, upsample_mask, upsampled_soft

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def resize_mask_like_downloads(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """Today's download (maskweb.masking.decoding.render.resize_mask, which imports Django): the
    0/1 mask scaled bilinearly, threshold at one half."""
    img = Image.fromarray(mask.astype(np.uint8) * 255, mode="L")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR)) >= 128


def jbf(sigma_color: float) -> Method | None:
    if not hasattr(cv2, "ximgproc"):
        return None

    def run(mask: np.ndarray, photo: np.ndarray) -> np.ndarray:
        height, width = photo.shape[:2]
        soft = upsampled_soft(mask, height, width)
        scale = height / mask.shape[0]
        edge = (soft > 0.01) & (soft < 0.99)
        found = np.argwhere(edge)
        if found.size == 0:
            return soft > 0.5
        pad = int(3 * scale) + 2
        (y0, x0), (y1, x1) = found.min(0) - pad, found.max(0) + pad + 1
        y0, x0, y1, x1 = max(0, y0), max(0, x0), min(height, y1), min(width, x1)
        out = soft.copy()
        out[y0:y1, x0:x1] = cv2.ximgproc.jointBilateralFilter(  # type: ignore[attr-defined]
            np.ascontiguousarray(photo[y0:y1, x0:x1]).astype(np.float32),
            np.ascontiguousarray(soft[y0:y1, x0:x1]), -1, sigma_color, scale)
        return out > 0.5
    return run


def methods(factor: float, variants: list[str]) -> dict[str, Method]:
    out: dict[str, Method] = {
        "binary": lambda m, p: resize_mask_like_downloads(m, p.shape[1], p.shape[0]),
        "bilinear": lambda m, p: upsample_mask(m, p, "bilinear"),
    }
    for v in variants:
        kind, _, rest = v.partition(":")
        opts = dict(kv.split("=") for kv in rest.split(",") if kv)
        if kind == "guided":
            k, eps = float(opts.get("r", 1.0)), float(opts.get("eps", 1e-3))

            def guided(m: np.ndarray, p: np.ndarray, k: float = k, eps: float = eps
                       ) -> np.ndarray:
                scale = p.shape[0] / m.shape[0]
                r = max(2, int(np.ceil(k * scale)))
                soft = upsampled_soft(m, p.shape[0], p.shape[1])
                return guided_tiles(soft, p, r, eps) > 0.5
            out[f"guided r={k:g} eps={eps:g}"] = guided
        elif kind == "jbf":
            run = jbf(float(opts.get("sc", 20)))
            if run is not None:
                out[f"jbf sc={opts.get('sc', 20)}"] = run
    return out


def work_mask(gt: np.ndarray, factor: float) -> np.ndarray:
    h, w = gt.shape
    size = (max(2, round(w / factor)), max(2, round(h / factor)))
    return cv2.resize(gt.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5


def time_24mp(named: dict[str, Method], repeats: int) -> dict[str, float]:
    img, gt_path = dataset_items("coco")[0]
    photo = cv2.resize(np.array(Image.open(img).convert("RGB")), (6000, 4000),
                       interpolation=cv2.INTER_CUBIC)
    gt = cv2.resize(read_gt(gt_path).astype(np.uint8), (6000, 4000),
                    interpolation=cv2.INTER_LINEAR) > 0
    mask = work_mask(gt, 6000 / 2048)
    times: dict[str, list[float]] = {n: [] for n in named}
    for _ in range(repeats):
        for name, run in named.items():  # in turn: the host's drift hits each alike
            t0 = time.perf_counter()
            run(mask, photo)
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(t) for n, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["davis", "coco"], default="davis")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--factor", type=float, default=3.0)
    p.add_argument("--variant", action="append", default=[],
                   help="guided:r=K,eps=E or jbf:sc=S (default: the shipped guided and jbf)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--time-only", action="store_true")
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    variants = args.variant or ["guided:r=1,eps=0.01", "jbf:sc=10"]
    named = methods(args.factor, variants)
    lines = []
    if not args.time_only:
        items = dataset_items(args.dataset)
        subset = fixed_subset(len(items), args.limit)
        scores: dict[str, list[tuple[float, float, float]]] = {n: [] for n in named}
        for k, i in enumerate(subset):
            img_path, gt_path = items[i]
            photo = np.array(Image.open(img_path).convert("RGB"))
            gt = read_gt(gt_path)
            mask = work_mask(gt, args.factor)
            for name, run in named.items():
                full = run(mask, photo)
                scores[name].append((iou(full, gt), boundary_iou(full, gt),
                                     boundary_iou(full, gt, 0.005)))
            if (k + 1) % 50 == 0:
                print(f"[{k + 1}/{len(subset)}]", file=sys.stderr, flush=True)
        lines += [f"Dataset {args.dataset}, {len(subset)} photos, work mask = ground truth "
                  f"scaled down {args.factor:g}x, upsampled back and scored at full size", "",
                  "| method | IoU | bIoU (2 %) | bIoU (0.5 %) |", "|---|---|---|---|"]
        for name, rows in scores.items():
            a = np.asarray(rows)
            lines.append(f"| {name} | {a[:, 0].mean():.4f} | {a[:, 1].mean():.4f} | "
                         f"{a[:, 2].mean():.4f} |")
        lines.append("")
    timing = time_24mp(named, args.repeats)
    lines += ["A 24 MP photo (6000 x 4000), its mask at 2048 px, one thread, median of "
              f"{args.repeats}:", "", "| method | seconds |", "|---|---|"]
    lines += [f"| {n} | {t:.2f} |" for n, t in timing.items()]
    text = "\n".join(lines)
    print(text)
    name = (f"upsample-24mp-time{'-' + args.tag if args.tag else ''}.md" if args.time_only
            else f"upsample-{args.dataset}{'-' + args.tag if args.tag else ''}.md")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
