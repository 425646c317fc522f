"""Mask quality on DAVIS (or COCO_MVal, for tuning) with the standard click protocol.

    .venv/bin/python -m bench.quality --model grabcut --limit 100
    .venv/bin/python -m bench.quality --model litemedsam --refine grabcut --dataset coco

Protocol (RITM's ``isegm/inference/clicker.py``): the first click is positive at the point
deepest inside the object; each next click goes to the point deepest inside the larger error
region (false negative -> positive, false positive -> negative) by a distance transform of
the zero-padded error mask, never on an already clicked pixel; the previous prediction is fed
back; at most 20 clicks. NoC@k counts the clicks needed to reach IoU k (20 if never), NoF@90
how many images never reach 0.90. A run stops early once IoU >= 0.90 after at least 5 clicks
(it cannot change NoC@85/90, NoF@90 or mIoU@1/3/5). The box prompt is the gt bounding box,
decoded once. Every embedding goes through ``embedding_to_bytes`` with ``--dtype`` first, as
the app's cache does. ``--limit N`` takes N evenly spaced images (a fixed subset).
Tune on ``--dataset coco`` only; DAVIS is for measuring.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes
from maskweb.segment.registry import GRABCUT_ID, build_model, discover
from maskweb.segment.types import Box, Point, Prediction, Prompts, Segmenter

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"davis": ROOT.parent / "shared" / "datasets" / "DAVIS",
            "coco": ROOT.parent / "shared" / "datasets" / "COCO_MVal"}
RESULTS = Path(__file__).resolve().parent / "results"
MAX_CLICKS = 20


def dataset_items(name: str) -> list[tuple[Path, Path]]:
    base = DATASETS[name]
    if not base.is_dir():
        base = Path("/work/shared/datasets") / base.name
    gts = sorted((base / "gt").glob("*.png"))
    items = []
    for gt in gts:
        img = base / "img" / (gt.stem + ".jpg")
        if img.is_file():
            items.append((img, gt))
    if not items:
        raise SystemExit(f"no images found under {base}")
    return items


def fixed_subset(n_items: int, limit: int | None) -> list[int]:
    """``limit`` evenly spaced indices (always the same ones), or all."""
    if not limit or limit >= n_items:
        return list(range(n_items))
    return sorted(set(np.linspace(0, n_items - 1, limit).round().astype(int).tolist()))


def read_gt(path: Path) -> np.ndarray:
    """An object mask as every bench reads it: any non-zero pixel is the object."""
    gt = np.array(Image.open(path)) > 0
    return gt[..., 0] if gt.ndim == 3 else gt


def gt_box(gt: np.ndarray) -> Box:
    """The object's bounding box: the protocol's box prompt."""
    rows, cols = np.nonzero(gt)
    return Box(float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


def next_click(pred: np.ndarray, gt: np.ndarray, not_clicked: np.ndarray) -> tuple[bool, int, int]:
    """RITM's clicker: (positive, row, col) at the deepest point of the larger error."""
    fn = np.pad(gt & ~pred, 1).astype(np.uint8)
    fp = np.pad(~gt & pred, 1).astype(np.uint8)
    fn_dt = cv2.distanceTransform(fn, cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    fp_dt = cv2.distanceTransform(fp, cv2.DIST_L2, 0)[1:-1, 1:-1] * not_clicked
    positive = bool(fn_dt.max() > fp_dt.max())
    dt = fn_dt if positive else fp_dt
    rows, cols = np.where(dt == dt.max())
    return positive, int(rows[0]), int(cols[0])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def noc(ious: list[float], thr: float) -> int:
    for i, v in enumerate(ious):
        if v >= thr:
            return i + 1
    return MAX_CLICKS


def run_image(model: Segmenter, image: np.ndarray, gt: np.ndarray, dtype: str) -> dict:
    t0 = time.perf_counter()
    emb = model.encode(image)
    enc_s = time.perf_counter() - t0
    emb = embedding_from_bytes(embedding_to_bytes(emb, dtype))
    h, w = gt.shape
    pred_mask = np.zeros((h, w), bool)
    not_clicked = np.ones((h, w), np.float32)
    points: list[Point] = []
    previous: Prediction | None = None
    ious: list[float] = []
    dec_times = []
    for k in range(MAX_CLICKS):
        positive, r, c = next_click(pred_mask, gt, not_clicked)
        not_clicked[r, c] = 0.0
        points.append(Point(c + 0.5, r + 0.5, positive))
        t0 = time.perf_counter()
        previous = model.decode(emb, Prompts(points=tuple(points)), previous)
        dec_times.append(time.perf_counter() - t0)
        pred_mask = previous.best.mask
        ious.append(iou(pred_mask, gt))
        if ious[-1] >= 0.90 and k + 1 >= 5:
            break
    t0 = time.perf_counter()
    box_pred = model.decode(emb, Prompts(box=gt_box(gt)))
    dec_times.append(time.perf_counter() - t0)
    return {"ious": ious, "box_iou": iou(box_pred.best.mask, gt), "encode_s": enc_s,
            "decode_s": float(np.mean(dec_times)), "clicks": len(ious)}


def summarise(results: list[dict]) -> dict:
    def miou_at(k: int) -> float:
        return float(np.mean([r["ious"][min(k, len(r["ious"])) - 1] for r in results]))

    return {
        "images": len(results),
        "NoC@85": float(np.mean([noc(r["ious"], 0.85) for r in results])),
        "NoC@90": float(np.mean([noc(r["ious"], 0.90) for r in results])),
        "NoF@90": int(sum(max(r["ious"]) < 0.90 for r in results)),
        "mIoU@1": miou_at(1), "mIoU@3": miou_at(3), "mIoU@5": miou_at(5),
        "box IoU": float(np.mean([r["box_iou"] for r in results])),
        "encode s/img": float(np.median([r["encode_s"] for r in results])),
        "decode s/click": float(np.median([r["decode_s"] for r in results])),
    }


def table(rows: list[tuple[str, dict]]) -> str:
    cols = ["images", "NoC@85", "NoC@90", "NoF@90", "mIoU@1", "mIoU@3", "mIoU@5", "box IoU",
            "encode s/img", "decode s/click"]
    out = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, s in rows:
        cells = []
        for c in cols:
            v = s[c]
            cells.append(str(v) if isinstance(v, int) else
                         (f"{v:.3f}" if "s/" in c else f"{v:.2f}" if "NoC" in c else f"{v:.3f}"))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def parse_param(key: str, value: str) -> object:
    if key == "refine":
        return value
    if value in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[value]
    return int(value) if value.isdigit() else float(value)


def load(model_id: str, refine: str | None, params: dict[str, str]) -> Segmenter:
    kwargs = {k: parse_param(k, v) for k, v in params.items()}
    if model_id == GRABCUT_ID:
        from maskweb.segment.classical import GrabCutSegmenter

        if refine:
            kwargs["refine"] = refine
        return GrabCutSegmenter(**kwargs)  # type: ignore[arg-type]
    if kwargs:
        # Tuning an ONNX model's grabCut edge: the engine calls the module's function, so
        # rebinding it with the keywords reaches every decode of this process.
        from maskweb.segment import classical, onnx_engine

        onnx_engine.refine_with_grabcut = functools.partial(
            classical.refine_with_grabcut, **kwargs)  # type: ignore[arg-type]
    if refine:
        from maskweb.segment.onnx_engine import OnnxSegmenter

        desc = dataclasses.replace(discover()[model_id], refine=refine)
        return OnnxSegmenter(desc)
    return build_model(model_id)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=GRABCUT_ID)
    p.add_argument("--dataset", choices=sorted(DATASETS), default="davis")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                   help="embedding storage dtype (the app caches float16)")
    p.add_argument("--refine", choices=["none", "guided", "grabcut"], default=None,
                   help="override the model's edge refinement")
    p.add_argument("--param", action="append", default=[],
                   help="key=value for the grabcut engine's constructor, or for an ONNX "
                   "model's grabCut refinement (refine_with_grabcut); tuning, on coco only")
    p.add_argument("--tag", default="", help="suffix for the results file name")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--exclude-limit", type=int, default=None,
                   help="skip the images of --limit K (to finish a full run in two parts)")
    p.add_argument("--partial", type=Path, default=None,
                   help="rewrite this .json with the results so far after every image")
    p.add_argument("--merge", nargs="+", type=Path, default=None,
                   help="summarise these results .json files together and exit")
    args = p.parse_args(argv)
    if args.merge:
        results = [r for f in args.merge for r in json.loads(f.read_text())["images"]]
        names = {r["image"] for r in results}
        if len(names) != len(results):
            raise SystemExit("the merged runs overlap")
        md = table([(args.model, summarise(results))])
        header = f"Dataset {args.dataset}, {len(results)} images (merged: " + \
            ", ".join(f.name for f in args.merge) + ")"
        print(header)
        print(md)
        out = RESULTS / f"quality-{args.dataset}-{args.model}{'-' + args.tag if args.tag else ''}" \
            f"-{len(results)}.md"
        out.write_text(header + "\n\n" + md + "\n")
        return 0

    cv2.setNumThreads(args.threads)
    os.environ.setdefault("MASKWEB_ONNX_THREADS", str(args.threads))
    params = dict(kv.split("=", 1) for kv in args.param)
    model = load(args.model, args.refine, params)
    items = dataset_items(args.dataset)
    subset = fixed_subset(len(items), args.limit)
    if args.exclude_limit:
        skip = set(fixed_subset(len(items), args.exclude_limit))
        subset = [i for i in subset if i not in skip]
    results = []
    t_start = time.time()
    for n, i in enumerate(subset):
        img_path, gt_path = items[i]
        image = np.array(Image.open(img_path).convert("RGB"))
        gt = read_gt(gt_path)
        r = run_image(model, image, gt, args.dtype)
        r["image"] = img_path.name
        results.append(r)
        if args.partial:
            # Long runs leave what they have so far, so a cut-off run still counts.
            args.partial.write_text(json.dumps({"images": results}))
        print(f"[{n + 1}/{len(subset)}] {img_path.name}: IoU@1 {r['ious'][0]:.3f} "
              f"NoC@90 {noc(r['ious'], 0.9)} box {r['box_iou']:.3f} "
              f"({time.time() - t_start:.0f}s)", file=sys.stderr, flush=True)
    name = args.model + (f" +{args.refine}" if args.refine else "") + \
        (f" [{','.join(args.param)}]" if args.param else "") + \
        (f" {args.dtype}" if args.dtype != "float16" else "")
    summary = summarise(results)
    md = table([(name, summary)])
    header = (f"Dataset {args.dataset}, {len(results)} images "
              f"({'all' if not args.limit else f'--limit {args.limit}, evenly spaced'}"
              f"{f', without --limit {args.exclude_limit}' if args.exclude_limit else ''})"
              f", embedding {args.dtype}, {args.threads} threads, "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(header)
    print(md)
    RESULTS.mkdir(exist_ok=True)
    stem = f"quality-{args.dataset}-{args.model}"
    stem += f"-{args.refine}" if args.refine else ""
    stem += f"-{args.tag}" if args.tag else ""
    stem += f"-{args.dtype}" if args.dtype != "float16" else ""
    stem += f"-rest{args.exclude_limit}" if args.exclude_limit else ""
    stem += f"-{len(results)}"
    (RESULTS / f"{stem}.md").write_text(header + "\n\n" + md + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"summary": summary, "args": vars(args),
                                                      "images": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
