"""What storing embeddings as float16 costs in mask quality.

    .venv/bin/python -m bench.embedding_dtype --model litemedsam --limit 30

For each image: encode once; run the click protocol (bench.quality) on the float32
embedding; replay exactly the same clicks, and the gt-box prompt, on the float16 round trip.
Reports the mean IoU between the two masks (agreement, 1.0 = identical; the worst mask in
brackets) and the change in mean IoU against the ground truth, plus the embedding sizes.
Two empty masks agree perfectly, so it also counts the float32 masks that came out empty: a
model that masks nothing for clicks (LiteMedSAM as shipped) says nothing about float16.
For a model that refines its edges (``refine`` grabcut or guided), the same prompts are also
decoded without the refinement: the agreement of the model's own masks, which tells how much
of the difference the refinement makes out of a small change in the logits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np
from PIL import Image

from bench.quality import RESULTS, dataset_items, fixed_subset, iou, load, next_click
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.types import Box, Point, Prediction, Prompts


def compare(model, image, gt, clicks: int, raw=None) -> dict:
    emb = model.encode(image)
    b32, b16 = embedding_to_bytes(emb, "float32"), embedding_to_bytes(emb, "float16")
    e32, e16 = embedding_from_bytes(b32), embedding_from_bytes(b16)
    h, w = gt.shape
    pred = np.zeros((h, w), bool)
    not_clicked = np.ones((h, w), np.float32)
    points: list[Point] = []
    prev32: Prediction | None = None
    prev16: Prediction | None = None
    raw32: Prediction | None = None
    raw16: Prediction | None = None
    agree, gt32, gt16, raw_agree, empty = [], [], [], [], 0
    for _ in range(clicks):
        positive, r, c = next_click(pred, gt, not_clicked)
        not_clicked[r, c] = 0
        points.append(Point(c + 0.5, r + 0.5, positive))
        prompts = Prompts(points=tuple(points))
        prev32 = model.decode(e32, prompts, prev32)
        prev16 = model.decode(e16, prompts, prev16)
        pred = prev32.best.mask
        empty += not pred.any()
        agree.append(iou(prev32.best.mask, prev16.best.mask))
        gt32.append(iou(prev32.best.mask, gt))
        gt16.append(iou(prev16.best.mask, gt))
        if raw is not None:
            raw32 = raw.decode(e32, prompts, raw32)
            raw16 = raw.decode(e16, prompts, raw16)
            raw_agree.append(iou(raw32.best.mask, raw16.best.mask))
    rows, cols = np.nonzero(gt)
    box = Prompts(box=Box(float(cols.min()), float(rows.min()), float(cols.max() + 1),
                          float(rows.max() + 1)))
    m32, m16 = model.decode(e32, box).best.mask, model.decode(e16, box).best.mask
    raw_box = (iou(raw.decode(e32, box).best.mask, raw.decode(e16, box).best.mask)
               if raw is not None else None)
    return {"agree": agree, "gt32": gt32, "gt16": gt16, "empty": empty,
            "raw_agree": raw_agree, "raw_box": raw_box,
            "box_empty": not m32.any(), "box_agree": iou(m32, m16),
            "box32": iou(m32, gt), "box16": iou(m16, gt), "bytes32": len(b32),
            "bytes16": len(b16)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", default="davis")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--refine", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    os.environ.setdefault("MASKWEB_ONNX_THREADS", str(args.threads))
    model = load(args.model, args.refine, {})
    refine = getattr(getattr(model, "descriptor", None), "refine", "none")
    if args.refine:
        refine = args.refine
    raw = load(args.model, "none", {}) if refine != "none" else None
    items = dataset_items(args.dataset)
    rs = []
    for i in fixed_subset(len(items), args.limit):
        img_path, gt_path = items[i]
        image = np.array(Image.open(img_path).convert("RGB"))
        gt = np.array(Image.open(gt_path)) > 0
        rs.append(compare(model, image, gt, args.clicks, raw))
        print(f"{img_path.name}: agreement {np.mean(rs[-1]['agree']):.4f} "
              f"box {rs[-1]['box_agree']:.4f}", file=sys.stderr, flush=True)
    agree = np.mean([np.mean(r["agree"]) for r in rs])
    worst = min(min(r["agree"]) for r in rs)
    empty = sum(r["empty"] for r in rs)
    d_clicks = np.mean([np.mean(r["gt16"]) - np.mean(r["gt32"]) for r in rs])
    box_agree = np.mean([r["box_agree"] for r in rs])
    box_worst = min(r["box_agree"] for r in rs)
    box_empty = sum(r["box_empty"] for r in rs)
    d_box = np.mean([r["box16"] - r["box32"] for r in rs])
    mb32 = np.mean([r["bytes32"] for r in rs]) / 1e6
    mb16 = np.mean([r["bytes16"] for r in rs]) / 1e6
    unrefined = ""
    if raw is not None:
        raw_clicks = np.mean([np.mean(r["raw_agree"]) for r in rs])
        raw_worst = min(min(r["raw_agree"]) for r in rs)
        raw_box = np.mean([r["raw_box"] for r in rs])
        raw_box_worst = min(r["raw_box"] for r in rs)
        unrefined = (f"\nWithout the {refine} edge refinement (the model's own masks, same "
                     f"prompts): agreement {raw_clicks:.4f} (worst {raw_worst:.4f}) for clicks, "
                     f"{raw_box:.4f} (worst {raw_box_worst:.4f}) for the box.\n")
    md = (f"float16 vs float32 embeddings, model {args.model}, {args.dataset} {len(rs)} images "
          f"(fixed subset), {args.clicks} protocol clicks + gt box, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n\n"
          "| model | mask agreement IoU (clicks) (worst) | ΔmIoU vs gt (clicks) | empty click "
          "masks | mask agreement IoU (box) (worst) | Δ box IoU vs gt | empty box masks "
          "| MB float32 | MB float16 |\n|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.model} | {agree:.4f} ({worst:.4f}) | {d_clicks:+.4f} | "
          f"{empty}/{len(rs) * args.clicks} | {box_agree:.4f} ({box_worst:.4f}) | "
          f"{d_box:+.4f} | {box_empty}/{len(rs)} | {mb32:.2f} | {mb16:.2f} |\n\n"
          "Agreement: IoU of the float16-decoded mask against the float32-decoded one for the "
          "same prompts (two empty masks count as 1.0); empty: float32 masks with no pixel.\n"
          + unrefined)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"dtype-{args.dataset}-{args.model}-{len(rs)}.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
