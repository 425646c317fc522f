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

Further columns:
- **worse %** / **worse drop**: of the clicks 2..n each image got (n is 20, or fewer where it
  stopped early), the share after which IoU fell by more than 0.01, and their mean fall.
- **bIoU@1**, **bIoU@5**: boundary IoU (Cheng et al., 2021) after 1 and 5 clicks, at the
  dataset's own resolution: the IoU of the bands of width d inside each mask's edge (d = 2 %
  of the image's diagonal, 20 px on DAVIS's 854 x 480), so that it measures the edge, not
  the bulk.
- **brush**, **brush+4**: the brush-start protocol. The first prompt is a stroke painted
  inside the object (``simulated_stroke``): on the object's largest region, its inscribed
  radius R (the distance transform's peak); the brush radius is 0.4 R (at least 1.5 px); the
  stroke follows the ridge of the distance transform (a medial axis) along the region's
  main axis: the region's pixels where the whole brush fits (distance > radius + 1) are cut
  into 12 slices across its principal axis and each slice's deepest pixel is a vertex, in
  order, the run of vertices around the deepest one kept while each segment stays inside the
  object. Then RITM clicks as above, the stroke kept. ``brush`` is the IoU after the stroke
  alone, ``brush+4`` after the stroke and 4 clicks.

``--click-merge``/``--focus``/``--reprompt`` set the interactive wrapper's policy
(maskweb.segment.interactive.ClickPolicy); ``--engine plain`` measures a model without it.
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
from maskweb.segment.interactive import MERGES, ClickPolicy, InteractiveSegmenter, policy_for
from maskweb.segment.registry import GRABCUT_ID, build_bare_model, discover
from maskweb.segment.types import Box, Point, Prediction, Prompts, Segmenter, Stroke

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"davis": ROOT.parent / "shared" / "datasets" / "DAVIS",
            "coco": ROOT.parent / "shared" / "datasets" / "COCO_MVal"}
RESULTS = Path(__file__).resolve().parent / "results"
MAX_CLICKS = 20
BRUSH_CLICKS = 4
WORSE = 0.01  # an IoU fall larger than this after a click makes it a worsening click
BOUNDARY_DILATION = 0.02  # boundary IoU's band width, times the image's diagonal


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


def boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` px of its edge. The mask is padded with
    background first, as Boundary IoU's reference code does, so the image border counts as
    an edge."""
    m = np.pad(mask.astype(np.uint8), 1)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=width)[1:-1, 1:-1]
    return mask & (eroded == 0)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, dilation: float = BOUNDARY_DILATION) -> float:
    """Boundary IoU (Cheng et al., 2021) with d = ``dilation`` (2 %) of the image's diagonal."""
    h, w = gt.shape
    width = max(1, round(dilation * (h * h + w * w) ** 0.5))
    return iou(boundary_band(pred, width), boundary_band(gt, width))


def simulated_stroke(gt: np.ndarray, slices: int = 12) -> Stroke:
    """A brush stroke painted inside the object, along its medial axis (bench docstring)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(gt.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0
    region = labels == largest
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    inscribed = float(dist.max())
    radius = max(1.5, 0.4 * inscribed)
    fits = dist > radius + 1.0
    if not fits.any():
        fits = dist >= inscribed
    rows, cols = np.nonzero(fits)
    xy = np.stack([cols + 0.5, rows + 0.5], axis=1)
    centre = xy.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((xy - centre).T) + 1e-9 * np.eye(2))
    along = (xy - centre) @ vecs[:, -1]
    edges = np.linspace(along.min(), along.max() + 1e-6, slices + 1)
    depth = dist[rows, cols]
    vertices = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = np.flatnonzero((along >= lo) & (along < hi))
        if inside.size:
            best = inside[np.argmax(depth[inside])]
            vertices.append((float(xy[best, 0]), float(xy[best, 1]), float(depth[best])))
    deepest = int(np.argmax([v[2] for v in vertices]))

    def stays_inside(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        for t in np.linspace(0.0, 1.0, 16):
            x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            if not region[min(int(y), gt.shape[0] - 1), min(int(x), gt.shape[1] - 1)]:
                return False
        return True

    lo_i = deepest
    while lo_i > 0 and stays_inside(vertices[lo_i - 1], vertices[lo_i]):
        lo_i -= 1
    hi_i = deepest
    while hi_i < len(vertices) - 1 and stays_inside(vertices[hi_i], vertices[hi_i + 1]):
        hi_i += 1
    path = tuple((v[0], v[1]) for v in vertices[lo_i:hi_i + 1])
    return Stroke(path, radius=radius)


def clicks_session(model: Segmenter, emb: object, gt: np.ndarray, first: Stroke | None,
                   max_clicks: int, dec_times: list[float]) -> tuple[list[float], list[float]]:
    """The click protocol, after a brush stroke ``first`` if given: (IoUs, boundary IoUs)
    after each prompt (the stroke counts as the first)."""
    h, w = gt.shape
    not_clicked = np.ones((h, w), np.float32)
    points: list[Point] = []
    strokes = (first,) if first is not None else ()
    previous: Prediction | None = None
    ious: list[float] = []
    bious: list[float] = []
    pred_mask = np.zeros((h, w), bool)
    for k in range(max_clicks + (first is not None)):
        if k > 0 or first is None:
            positive, r, c = next_click(pred_mask, gt, not_clicked)
            not_clicked[r, c] = 0.0
            points.append(Point(c + 0.5, r + 0.5, positive))
        t0 = time.perf_counter()
        previous = model.decode(emb, Prompts(points=tuple(points), strokes=strokes),  # type: ignore[arg-type]
                                previous)
        dec_times.append(time.perf_counter() - t0)
        pred_mask = previous.best.mask
        ious.append(iou(pred_mask, gt))
        bious.append(boundary_iou(pred_mask, gt))
        if first is None and ious[-1] >= 0.90 and k + 1 >= 5:
            break
    return ious, bious


def worsening(ious: list[float]) -> list[float]:
    """The IoU falls of more than WORSE after clicks 2..n."""
    return [a - b for a, b in zip(ious, ious[1:], strict=False) if a - b > WORSE]


def run_image(model: Segmenter, image: np.ndarray, gt: np.ndarray, dtype: str,
              brush: bool = True) -> dict:
    emb, enc_s = encode(model, image, dtype)
    return run_prompts(model, emb, gt, enc_s, brush)


def encode(model: Segmenter, image: np.ndarray, dtype: str) -> tuple[object, float]:
    """The embedding as the app's cache gives it back, and the encoder's time."""
    t0 = time.perf_counter()
    emb = model.encode(image)
    enc_s = time.perf_counter() - t0
    return embedding_from_bytes(embedding_to_bytes(emb, dtype)), enc_s


def run_prompts(model: Segmenter, emb: object, gt: np.ndarray, enc_s: float,
                brush: bool = True, only_brush: bool = False) -> dict:
    """The click protocol, the box and the brush-start protocol on one embedding."""
    if only_brush:
        brush_ious, brush_bious = clicks_session(model, emb, gt, simulated_stroke(gt),
                                                 BRUSH_CLICKS, [])
        return {"brush_ious": brush_ious, "brush_bious": brush_bious, "encode_s": enc_s}
    dec_times: list[float] = []
    ious, bious = clicks_session(model, emb, gt, None, MAX_CLICKS, dec_times)
    clicks_decode_s = float(np.mean(dec_times))
    t0 = time.perf_counter()
    box_pred = model.decode(emb, Prompts(box=gt_box(gt)))  # type: ignore[arg-type]
    dec_times.append(time.perf_counter() - t0)
    out = {"ious": ious, "bious": bious, "box_iou": iou(box_pred.best.mask, gt),
           "encode_s": enc_s, "decode_s": float(np.mean(dec_times)),
           "click_s": clicks_decode_s, "clicks": len(ious)}
    if brush:
        stroke = simulated_stroke(gt)
        brush_ious, _ = clicks_session(model, emb, gt, stroke, BRUSH_CLICKS, [])
        out["brush_ious"] = brush_ious
        out["stroke"] = {"points": [list(p) for p in stroke.points], "radius": stroke.radius}
    return out


def summarise(results: list[dict]) -> dict:
    if results and "ious" not in results[0]:  # --only-brush
        return {"images": len(results), **extra_columns(results)}

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
        **extra_columns(results),
    }


def extra_columns(results: list[dict]) -> dict:
    """The worsening, boundary and brush columns (NaN where a run did not record them)."""
    later = sum(max(0, len(r.get("ious", [])) - 1) for r in results)
    falls = [d for r in results for d in worsening(r.get("ious", []))]
    with_b = [r for r in results if "bious" in r]
    with_brush = [r for r in results if "brush_ious" in r]
    nan = float("nan")

    def b_at(k: int) -> float:
        return float(np.mean([r["bious"][min(k, len(r["bious"])) - 1] for r in with_b])) \
            if with_b else nan

    return {
        "worse %": 100.0 * len(falls) / later if later else 0.0,
        "worse drop": float(np.mean(falls)) if falls else 0.0,
        "bIoU@1": b_at(1), "bIoU@5": b_at(5),
        "brush": float(np.mean([r["brush_ious"][0] for r in with_brush])) if with_brush else nan,
        "brush+4": float(np.mean([r["brush_ious"][-1] for r in with_brush]))
        if with_brush else nan,
    }


def table(rows: list[tuple[str, dict]]) -> str:
    cols = ["images", "NoC@85", "NoC@90", "NoF@90", "mIoU@1", "mIoU@3", "mIoU@5", "box IoU",
            "worse %", "worse drop", "bIoU@1", "bIoU@5", "brush", "brush+4",
            "encode s/img", "decode s/click"]
    out = ["| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, s in rows:
        cells = []
        for c in cols:
            v = s.get(c, float("nan"))
            cells.append(str(v) if isinstance(v, int) else
                         (f"{v:.1f}" if c == "worse %" else
                          f"{v:.3f}" if "s/" in c else f"{v:.2f}" if "NoC" in c else f"{v:.3f}"))
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def parse_param(key: str, value: str) -> object:
    if key == "refine":
        return value
    if value in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[value]
    return int(value) if value.isdigit() else float(value)


def load(model_id: str, refine: str | None, params: dict[str, str],
         policy: ClickPolicy | None = None) -> Segmenter:
    """The model with these settings, behind the interactive wrapper with ``policy`` (or
    bare, for None)."""
    bare = load_bare(model_id, refine, params)
    return bare if policy is None else InteractiveSegmenter(bare, policy)


def load_bare(model_id: str, refine: str | None, params: dict[str, str]) -> Segmenter:
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
    return build_bare_model(model_id)


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
    p.add_argument("--engine", choices=["interactive", "plain"], default="interactive",
                   help="plain: the model without the interactive wrapper")
    p.add_argument("--click-merge", choices=MERGES, default=None,
                   help="with --focus, --click-radius, --reprompt, --no-feed-merged: the "
                   "wrapper's policy (default: the model's own, interactive.policy_for)")
    p.add_argument("--focus", type=float, default=None)
    p.add_argument("--click-radius", type=float, default=None)
    p.add_argument("--reprompt", type=int, default=None)
    p.add_argument("--no-feed-merged", action="store_true")
    p.add_argument("--no-brush", action="store_true", help="skip the brush-start protocol")
    p.add_argument("--no-brush-for", action="append", default=[],
                   help="a --variant NAME whose brush-start protocol is skipped")
    p.add_argument("--only-brush", action="store_true",
                   help="only the brush-start protocol (its columns; the others read nan)")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME:plain or NAME:merge=local,focus=1,... (ClickPolicy); several "
                   "are run side by side on each photo's one embedding, a result file each")
    p.add_argument("--tag", default="", help="suffix for the results file name")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--exclude-limit", type=int, default=None,
                   help="skip the images of --limit K (to finish a full run in two parts)")
    p.add_argument("--shard", default="",
                   help="K/N: every N-th image from the K-th (a long run in N processes; "
                   "--merge their .json files)")
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
    bare = load_bare(args.model, args.refine, params)
    if args.variant:
        variants = [parse_variant(v, bare) for v in args.variant]
    elif args.engine == "plain":
        variants = [("", None)]
    else:
        given = {"merge": args.click_merge, "focus": args.focus,
                 "click_radius": args.click_radius, "reprompt": args.reprompt}
        own = policy_for(bare)
        chosen = dataclasses.replace(own, **{k: v for k, v in given.items() if v is not None},
                                     feed_merged=own.feed_merged and not args.no_feed_merged)
        variants = [("", chosen)]
    no_brush = {name for name, _ in variants if name in args.no_brush_for}
    models = [(name, bare if policy is None else InteractiveSegmenter(bare, policy), policy)
              for name, policy in variants]
    items = dataset_items(args.dataset)
    subset = fixed_subset(len(items), args.limit)
    if args.exclude_limit:
        skip = set(fixed_subset(len(items), args.exclude_limit))
        subset = [i for i in subset if i not in skip]
    if args.shard:
        k, n = (int(v) for v in args.shard.split("/"))
        subset = subset[k - 1::n]
    by_variant: dict[str, list[dict]] = {name: [] for name, _, _ in models}
    t_start = time.time()
    for n, i in enumerate(subset):
        img_path, gt_path = items[i]
        image = np.array(Image.open(img_path).convert("RGB"))
        gt = read_gt(gt_path)
        # One encode for every variant: they differ only in how the decodes are used.
        emb, enc_s = encode(bare, image, args.dtype)
        for name, model, _ in models:
            r = run_prompts(model, emb, gt, enc_s,
                            brush=not args.no_brush and name not in no_brush,
                            only_brush=args.only_brush)
            r["image"] = img_path.name
            by_variant[name].append(r)
            print(f"[{n + 1}/{len(subset)}] {name} {img_path.name}: "
                  f"IoU@1 {r.get('ious', [float('nan')])[0]:.3f} "
                  f"NoC@90 {noc(r.get('ious', []), 0.9)} box {r.get('box_iou', float('nan')):.3f} "
                  f"brush {r.get('brush_ious', [float('nan')])[0]:.3f} "
                  f"({time.time() - t_start:.0f}s)", file=sys.stderr, flush=True)
        if args.partial:
            # Long runs leave what they have so far, so a cut-off run still counts.
            args.partial.write_text(json.dumps({"images": by_variant[models[0][0]]}
                                               if len(models) == 1 else by_variant))
    header = (f"Dataset {args.dataset}, {len(subset)} images "
              f"({'all' if not args.limit else f'--limit {args.limit}, evenly spaced'}"
              f"{f', without --limit {args.exclude_limit}' if args.exclude_limit else ''})"
              f", embedding {args.dtype}, {args.threads} threads, "
              f"{time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for name, _, policy in models:
        label = args.model + (f" +{args.refine}" if args.refine else "") + \
            (f" [{','.join(args.param)}]" if args.param else "") + \
            (f" {args.dtype}" if args.dtype != "float16" else "") + " " + describe(policy)
        summary = summarise(by_variant[name])
        rows.append((label, summary))
        RESULTS.mkdir(exist_ok=True)
        stem = f"quality-{args.dataset}-{args.model}"
        stem += f"-{args.refine}" if args.refine else ""
        stem += f"-{args.tag}" if args.tag else ""
        stem += f"-{name}" if name else ""
        stem += f"-{args.dtype}" if args.dtype != "float16" else ""
        stem += f"-rest{args.exclude_limit}" if args.exclude_limit else ""
        stem += f"-shard{args.shard.replace('/', 'of')}" if args.shard else ""
        stem += f"-{len(subset)}"
        (RESULTS / f"{stem}.md").write_text(header + "\n\n" + table([rows[-1]]) + "\n")
        (RESULTS / f"{stem}.json").write_text(json.dumps(
            {"summary": summary, "args": vars(args), "policy": describe(policy),
             "images": by_variant[name]}, indent=1, default=str))
    print(header)
    print(table(rows))
    return 0


def describe(policy: ClickPolicy | None) -> str:
    if policy is None:
        return "plain"
    text = policy.merge
    if policy.merge == "local":
        text += f" focus {policy.focus:g}" + (" x distance" if policy.focus_by == "distance"
                                              else "")
    if policy.cap != ClickPolicy.cap:
        text += f" cap {policy.cap:g}"
    if policy.claim != ClickPolicy.claim:
        text += f" claim {policy.claim:g}"
    if policy.reprompt:
        text += f" reprompt {policy.reprompt}"
    if not policy.feed_merged:
        text += " own feedback"
    if policy.click_radius != ClickPolicy.click_radius:
        text += f" click radius {policy.click_radius:g}"
    return text


def parse_variant(text: str, model: Segmenter) -> tuple[str, ClickPolicy | None]:
    """``NAME:plain``, ``NAME:own`` (the model's own policy) or ``NAME:key=value,...`` of
    ClickPolicy (merge, focus, focus_by, click_radius, claim, cap, feed_merged, reprompt)."""
    name, sep, spec = text.partition(":")
    if not name or not sep:
        raise SystemExit(f"a variant is NAME:plain or NAME:key=value,..., not {text!r}")
    if spec == "plain":
        return name, None
    if spec == "own":
        return name, policy_for(model)
    kwargs: dict[str, object] = {}
    for pair in spec.split(","):
        key, _, value = pair.partition("=")
        if key in ("merge", "focus_by"):
            kwargs[key] = value
        elif key in ("focus", "click_radius", "claim", "cap", "stroke_reach"):
            kwargs[key] = float(value)
        elif key in ("reprompt",):
            kwargs[key] = int(value)
        elif key == "feed_merged":
            kwargs[key] = value not in ("0", "false", "False")
        else:
            raise SystemExit(f"unknown policy setting {key!r} in {text!r}")
    return name, ClickPolicy(**kwargs)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
