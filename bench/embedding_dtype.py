"""What a cheaper path costs in mask quality: float16 embeddings, or the int8 decoder.

    .venv/bin/python -m bench.embedding_dtype --model litemedsam --limit 30
    .venv/bin/python -m bench.embedding_dtype --model litemedsam-photo --vs int8-decoder

For each image: encode once; run the click protocol (bench.quality) on the reference path;
replay exactly the same clicks, and the gt-box prompt, on the cheaper one. ``--vs
float16-embedding`` (the default): float32 embeddings against their float16 round trip, same
decoder. ``--vs int8-decoder``: the float decoder against the model's ``decoder_int8``, both
on float16 embeddings as the app stores them. Each path feeds back its own previous mask.
Reports the mean IoU between the two masks (agreement, 1.0 = identical; the worst mask in
brackets) and the change in mean IoU against the ground truth.
Two empty masks agree perfectly, so it also counts the reference masks that came out empty: a
model that masks nothing for clicks (LiteMedSAM as shipped) says nothing about its clicks.
For a model that refines its edges (``refine`` grabcut or guided), the same prompts are also
decoded without the refinement: the agreement of the model's own masks, which tells how much
of the difference the refinement makes out of a small change in the logits.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from bench.quality import (
    RESULTS,
    dataset_items,
    fixed_subset,
    gt_box,
    iou,
    load,
    next_click,
    read_gt,
)
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.types import Embedding, Point, Prediction, Prompts, Segmenter

# A path: the model that decodes and the embedding it decodes from (given the float32 one).
Path_ = tuple[Segmenter, Callable[[Embedding], Embedding]]


def via_bytes(dtype: str) -> Callable[[Embedding], Embedding]:
    return lambda emb: embedding_from_bytes(embedding_to_bytes(emb, dtype))


def compare(ref: Path_, alt: Path_, image: np.ndarray, gt: np.ndarray, clicks: int,
            raw: tuple[Path_, Path_] | None = None) -> dict:
    emb = ref[0].encode(image)
    e_ref, e_alt = ref[1](emb), alt[1](emb)
    h, w = gt.shape
    pred = np.zeros((h, w), bool)
    not_clicked = np.ones((h, w), np.float32)
    points: list[Point] = []
    prev_ref: Prediction | None = None
    prev_alt: Prediction | None = None
    raw_ref: Prediction | None = None
    raw_alt: Prediction | None = None
    agree, gt_ref, gt_alt, raw_agree, empty = [], [], [], [], 0
    for _ in range(clicks):
        positive, r, c = next_click(pred, gt, not_clicked)
        not_clicked[r, c] = 0
        points.append(Point(c + 0.5, r + 0.5, positive))
        prompts = Prompts(points=tuple(points))
        prev_ref = ref[0].decode(e_ref, prompts, prev_ref)
        prev_alt = alt[0].decode(e_alt, prompts, prev_alt)
        pred = prev_ref.best.mask
        empty += not pred.any()
        agree.append(iou(prev_ref.best.mask, prev_alt.best.mask))
        gt_ref.append(iou(prev_ref.best.mask, gt))
        gt_alt.append(iou(prev_alt.best.mask, gt))
        if raw is not None:
            raw_ref = raw[0][0].decode(e_ref, prompts, raw_ref)
            raw_alt = raw[1][0].decode(e_alt, prompts, raw_alt)
            raw_agree.append(iou(raw_ref.best.mask, raw_alt.best.mask))
    box = Prompts(box=gt_box(gt))
    m_ref, m_alt = ref[0].decode(e_ref, box).best.mask, alt[0].decode(e_alt, box).best.mask
    raw_box = (iou(raw[0][0].decode(e_ref, box).best.mask,
                   raw[1][0].decode(e_alt, box).best.mask) if raw is not None else None)
    return {"agree": agree, "gt_ref": gt_ref, "gt_alt": gt_alt, "empty": empty,
            "raw_agree": raw_agree, "raw_box": raw_box,
            "box_empty": not m_ref.any(), "box_agree": iou(m_ref, m_alt),
            "box_ref": iou(m_ref, gt), "box_alt": iou(m_alt, gt),
            "bytes32": len(embedding_to_bytes(emb, "float32")),
            "bytes16": len(embedding_to_bytes(emb, "float16"))}


def paths(model_id: str, refine: str | None, vs: str) -> tuple[Path_, Path_]:
    """The reference path and the cheaper one, with this refinement (None: the model's)."""
    if vs == "float16-embedding":
        model = load(model_id, refine, {})
        return (model, via_bytes("float32")), (model, via_bytes("float16"))
    from maskweb.segment.onnx_engine import OnnxSegmenter
    from maskweb.segment.registry import discover

    desc = discover()[model_id]
    if refine:
        desc = dataclasses.replace(desc, refine=refine)
    if desc.decoder_int8_path is None:
        raise SystemExit(f"{model_id} has no decoder_int8")
    return ((OnnxSegmenter(desc, precision="float"), via_bytes("float16")),
            (OnnxSegmenter(desc, precision="int8"), via_bytes("float16")))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--vs", choices=["float16-embedding", "int8-decoder"],
                   default="float16-embedding", help="the cheaper path to compare")
    p.add_argument("--dataset", default="davis")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--clicks", type=int, default=5)
    p.add_argument("--refine", default=None)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    cv2.setNumThreads(args.threads)
    os.environ.setdefault("MASKWEB_ONNX_THREADS", str(args.threads))
    ref, alt = paths(args.model, args.refine, args.vs)
    refine = getattr(getattr(ref[0], "descriptor", None), "refine", "none")
    raw = paths(args.model, "none", args.vs) if refine != "none" else None
    items = dataset_items(args.dataset)
    rs = []
    for i in fixed_subset(len(items), args.limit):
        img_path, gt_path = items[i]
        image = np.array(Image.open(img_path).convert("RGB"))
        gt = read_gt(gt_path)
        rs.append(compare(ref, alt, image, gt, args.clicks, raw))
        print(f"{img_path.name}: agreement {np.mean(rs[-1]['agree']):.4f} "
              f"box {rs[-1]['box_agree']:.4f}", file=sys.stderr, flush=True)
    agree = np.mean([np.mean(r["agree"]) for r in rs])
    worst = min(min(r["agree"]) for r in rs)
    empty = sum(r["empty"] for r in rs)
    d_clicks = np.mean([np.mean(r["gt_alt"]) - np.mean(r["gt_ref"]) for r in rs])
    box_agree = np.mean([r["box_agree"] for r in rs])
    box_worst = min(r["box_agree"] for r in rs)
    box_empty = sum(r["box_empty"] for r in rs)
    d_box = np.mean([r["box_alt"] - r["box_ref"] for r in rs])
    mb32 = np.mean([r["bytes32"] for r in rs]) / 1e6
    mb16 = np.mean([r["bytes16"] for r in rs]) / 1e6
    names = (("float32 embeddings", "float16 embeddings") if args.vs == "float16-embedding"
             else ("float decoder", "int8 decoder"))
    unrefined = ""
    if raw is not None:
        raw_clicks = np.mean([np.mean(r["raw_agree"]) for r in rs])
        raw_worst = min(min(r["raw_agree"]) for r in rs)
        raw_box = np.mean([r["raw_box"] for r in rs])
        raw_box_worst = min(r["raw_box"] for r in rs)
        unrefined = (f"\nWithout the {refine} edge refinement (the model's own masks, same "
                     f"prompts): agreement {raw_clicks:.4f} (worst {raw_worst:.4f}) for clicks, "
                     f"{raw_box:.4f} (worst {raw_box_worst:.4f}) for the box.\n")
    md = (f"{names[1]} vs {names[0]}, model {args.model}, {args.dataset} {len(rs)} images "
          f"(fixed subset), {args.clicks} protocol clicks + gt box, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n\n"
          "| model | mask agreement IoU (clicks) (worst) | ΔmIoU vs gt (clicks) | empty click "
          "masks | mask agreement IoU (box) (worst) | Δ box IoU vs gt | empty box masks "
          "| MB float32 | MB float16 |\n|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.model} | {agree:.4f} ({worst:.4f}) | {d_clicks:+.4f} | "
          f"{empty}/{len(rs) * args.clicks} | {box_agree:.4f} ({box_worst:.4f}) | "
          f"{d_box:+.4f} | {box_empty}/{len(rs)} | {mb32:.2f} | {mb16:.2f} |\n\n"
          f"Agreement: IoU of the mask decoded with the {names[1]} against the one decoded "
          f"with the {names[0]}, same prompts (two empty masks count as 1.0); empty: "
          f"{names[0]} masks with no pixel.\n"
          + unrefined)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    kind = "dtype" if args.vs == "float16-embedding" else "int8-decoder"
    (RESULTS / f"{kind}-{args.dataset}-{args.model}-{len(rs)}.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
