"""Vectorization quality and speed on the DAVIS object masks, plus one 50 MP mask.

Run from the repository root:  .venv/bin/python -m bench.vectorize [--limit N]

For every mask in ../shared/datasets/DAVIS/gt: vectorize with the default options, fill the
paths back (``rasterize``) and compare with the input. Prints median and worst IoU (and the
five lowest masks at default settings), nodes per object and milliseconds per mask; then the
same for a DAVIS mask scaled to 50 MP.
Writes the figures as a markdown table, with the machine's description, to
``bench/results/vectorize-davis-<N>.md`` (N: masks measured).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.host import describe
from maskweb.segment.vectorize import VectorizeOptions, rasterize, vectorize

DAVIS_GT = Path(__file__).resolve().parent.parent / "../shared/datasets/DAVIS/gt"
RESULTS = Path(__file__).resolve().parent / "results"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def measure(masks: list[np.ndarray], options: VectorizeOptions,
            per_mask: list[tuple[float, int]] | None = None) -> dict[str, float]:
    """Figures over all masks; ``per_mask`` (if given) receives each mask's IoU and nodes."""
    ious, nodes, ms = [], [], []
    for mask in masks:
        t = time.perf_counter()
        regions = vectorize(mask, options)
        ms.append((time.perf_counter() - t) * 1000)
        back = rasterize(regions, mask.shape[1], mask.shape[0])
        ious.append(iou(back, mask))
        nodes.append(sum(r.node_count for r in regions))
    if per_mask is not None:
        per_mask.extend(zip(ious, nodes, strict=True))
    return {
        "masks": len(masks),
        "iou_median": float(np.median(ious)),
        "iou_worst": float(np.min(ious)),
        "iou_p5": float(np.percentile(ious, 5)),
        "nodes_median": float(np.median(nodes)),
        "nodes_p95": float(np.percentile(nodes, 95)),
        "nodes_max": float(np.max(nodes)),
        "ms_median": float(np.median(ms)),
        "ms_max": float(np.max(ms)),
    }


def machine() -> str:
    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    return describe(f"OpenCV {cv2.__version__}", f"numpy {np.__version__}",
                    f"load average (1/5/15 min) at start {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0, help="only the first N masks")
    parser.add_argument("--note", default="",
                        help="a remark for the results file (e.g. what else ran on the machine)")
    args = parser.parse_args()
    host = machine()
    cv2.setNumThreads(1)
    files = sorted(DAVIS_GT.glob("*.png"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        raise SystemExit(f"no masks under {DAVIS_GT.resolve()}")
    masks = [np.asarray(Image.open(f)) > 0 for f in files]
    presets = {
        "default": VectorizeOptions(),
        "no joining (opttolerance 0)": VectorizeOptions(opttolerance=0.0),
        "polygon (alphamax 0)": VectorizeOptions(alphamax=0.0, opttolerance=0.0),
    }
    print(f"DAVIS gt masks: {len(masks)} (mostly 854x480), one thread")
    head = (f"{'options':30} {'IoU med':>8} {'IoU p5':>7} {'IoU min':>8} {'nodes med':>9} "
            f"{'p95':>5} {'max':>6} {'ms med':>7} {'ms max':>7}")
    print(head)
    md = ["| options | IoU med | IoU p5 | IoU min | nodes med | nodes p95 | nodes max "
          "| ms med | ms max |", "|---|---|---|---|---|---|---|---|---|"]
    default_per_mask: list[tuple[float, int]] = []
    for name, opts in presets.items():
        r = measure(masks, opts, default_per_mask if name == "default" else None)
        print(f"{name:30} {r['iou_median']:8.4f} {r['iou_p5']:7.4f} {r['iou_worst']:8.4f} "
              f"{r['nodes_median']:9.0f} {r['nodes_p95']:5.0f} {r['nodes_max']:6.0f} "
              f"{r['ms_median']:7.1f} {r['ms_max']:7.1f}")
        md.append(f"| {name} | {r['iou_median']:.4f} | {r['iou_p5']:.4f} | "
                  f"{r['iou_worst']:.4f} | {r['nodes_median']:.0f} | {r['nodes_p95']:.0f} | "
                  f"{r['nodes_max']:.0f} | {r['ms_median']:.1f} | {r['ms_max']:.1f} |")
    below = sum(1 for v, _ in default_per_mask if v < 0.98)
    lowest = sorted(range(len(files)), key=lambda i: default_per_mask[i][0])[:5]
    worst = ", ".join(f"{files[i].name} {default_per_mask[i][0]:.4f} "
                      f"({default_per_mask[i][1]} nodes)" for i in lowest)
    print(f"default: {below} masks below IoU 0.98; lowest: {worst}")
    md += ["", f"Default: {below} of {len(masks)} masks below IoU 0.98; lowest five: {worst}."]
    md += ["", "| 50 MP mask (8660x5773) | ms vectorize | IoU | nodes | regions |",
           "|---|---|---|---|---|"]

    # 50 MP: the largest DAVIS object scaled to 8660 x 5773, once bilinear then thresholded
    # (smooth edges, like decoder logits upscaled by the server), once nearest (a staircase
    # of 10-pixel steps: the worst case for node count).
    big_src = max(masks, key=lambda m: int(m.sum())).astype(np.float32)
    for how, interp in (("bilinear", cv2.INTER_LINEAR), ("nearest", cv2.INTER_NEAREST)):
        big = cv2.resize(big_src, (8660, 5773), interpolation=interp) >= 0.5
        t = time.perf_counter()
        regions = vectorize(big)
        ms = (time.perf_counter() - t) * 1000
        back = rasterize(regions, big.shape[1], big.shape[0])
        big_iou, big_nodes = iou(back, big), sum(r.node_count for r in regions)
        print(f"50 MP mask (8660x5773, {how}): {ms:.0f} ms vectorize, "
              f"IoU {big_iou:.4f}, {big_nodes} nodes in {len(regions)} regions")
        md.append(f"| {how} | {ms:.0f} | {big_iou:.4f} | {big_nodes} | {len(regions)} |")

    header = (f"# bench.vectorize, DAVIS gt masks: {len(masks)}"
              f"{f' (--limit {args.limit})' if args.limit else ''}, one thread, "
              f"{time.strftime('%Y-%m-%d %H:%M')}\n\n{host}\n\n")
    if args.note:
        header += args.note + "\n\n"
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"vectorize-davis-{len(masks)}.md"
    out.write_text(header + "\n".join(md) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
