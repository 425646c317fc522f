"""Minimal interactive-segmentation evaluation of "sam"-family ONNX models (numpy, OpenCV,
onnxruntime): the standard click protocol of shared/datasets/README.md on DAVIS.

    .venv/bin/python training/evaluate_onnx.py --limit 100 \
        --config litemedsam:none --config litemedsam-photo:none \
        --config litemedsam-photo:grabcut

Clicks are made at full resolution (first: deepest point of the object; then deepest point
of the larger error region; never twice on a pixel; at most 20; the previous low-res logits
are fed back). A photo stops after it reaches IoU 0.90 and has had 5 clicks (the figures do
not change after that: mIoU after k <= 5 clicks needs at most 5). The shared encoder runs once
per photo for all configurations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clicks import next_click  # noqa: E402
from refine import grabcut_band  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class Model:
    def __init__(self, model_id: str) -> None:
        d = ROOT / "models" / model_id
        self.desc = json.loads((d / "model.json").read_text())
        self.enc_path = (d / self.desc["encoder"]).resolve()
        self.dec = session((d / self.desc["decoder"]).resolve())


def preprocess(img: np.ndarray, size: int = 256) -> tuple[np.ndarray, float, int, int]:
    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = int(h * s + 0.5), int(w * s + 0.5)
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    r = (r - r.min()) / max(float(r.max() - r.min()), 1e-8)
    out = np.zeros((size, size, 3), np.float32)
    out[:nh, :nw] = r
    return out.transpose(2, 0, 1)[None].copy(), s, nh, nw


def run_photo(model: Model, refine: str, emb: np.ndarray, img: np.ndarray, gt: np.ndarray,
              s: float, nh: int, nw: int, max_clicks: int) -> tuple[list[float], float, float]:
    h, w = gt.shape
    pred = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    clicks: list[tuple[float, float, bool]] = []
    mask_in = np.zeros((1, 1, 256, 256), np.float32)
    ious: list[float] = []
    t_dec = t_ref = 0.0
    for k in range(max_clicks):
        c = next_click(gt, pred, clicked)
        if c is None:
            ious.append(ious[-1] if ious else 1.0)
            continue
        r, cc, pos = c
        clicked[r, cc] = True
        clicks.append((cc + 0.5, r + 0.5, pos))
        coords = np.array([[[x * s, y * s] for x, y, _ in clicks] + [[0.0, 0.0]]], np.float32)
        labels = np.array([[1.0 if p else 0.0 for _, _, p in clicks] + [-1.0]], np.float32)
        t = time.perf_counter()
        masks, iou = model.dec.run(None, {
            "image_embeddings": emb, "point_coords": coords, "point_labels": labels,
            "mask_input": mask_in, "has_mask_input": np.array([1.0 if k else 0.0], np.float32)})
        best = int(np.argmax(iou[0]))
        low = masks[0, best]
        mask_in = masks[:, best: best + 1]
        logits = cv2.resize(low[:nh, :nw], (w, h), interpolation=cv2.INTER_LINEAR)
        t_dec += time.perf_counter() - t
        t = time.perf_counter()
        if refine == "grabcut":
            prob = 1 / (1 + np.exp(-np.clip(logits, -30, 30)))
            pred = grabcut_band(img, prob.astype(np.float32), clicks)
        else:
            pred = logits > 0
        t_ref += time.perf_counter() - t
        ious.append(float((pred & gt).sum() / max((pred | gt).sum(), 1)))
        if ious[-1] >= 0.90 and k + 1 >= 5:
            break
    n = len(ious)
    return ious, t_dec / n, t_ref / n


def summarize(all_ious: list[list[float]], max_clicks: int) -> dict[str, float]:
    def noc(th: float) -> np.ndarray:
        return np.array([next((i + 1 for i, v in enumerate(x) if v >= th), max_clicks)
                         for x in all_ious])

    def miou(k: int) -> float:
        return float(np.mean([x[min(k, len(x)) - 1] for x in all_ious]))

    never = sum(1 for x in all_ious if max(x) < 0.90)
    return {"NoC@85": float(noc(0.85).mean()), "NoC@90": float(noc(0.90).mean()),
            "NoF@90": never, "mIoU@1": miou(1), "mIoU@3": miou(3), "mIoU@5": miou(5)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "datasets" / "DAVIS"))
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--config", action="append", default=[], help="model_id:none|grabcut")
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--out", default="build/eval.json")
    ap.add_argument("--emb-cache", default="build/davis_emb",
                    help="encoder outputs are kept here per photo (the encoder is the slow part)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    configs = [c.split(":") for c in args.config] or [["litemedsam", "encode-only"]]
    models = {m: Model(m) for m, _ in configs}
    encoders = {str(m.enc_path) for m in models.values()}
    enc = {p: session(Path(p)) for p in encoders}
    names = sorted(p.name for p in Path(args.data, "img").glob("*.jpg"))
    # The engine bench's fixed subset: ``limit`` evenly spaced photos.
    pick = np.linspace(0, len(names) - 1, args.limit).round().astype(int)
    names = [names[i] for i in sorted(set(pick.tolist()))]
    results: dict[str, dict] = {f"{m}:{r}": {"ious": [], "dec": [], "ref": []} for m, r in configs}
    t_enc = []
    for i, name in enumerate(names):
        img = cv2.cvtColor(cv2.imread(str(Path(args.data, "img", name))), cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(Path(args.data, "gt", name[:-4] + ".png")), cv2.IMREAD_GRAYSCALE) > 0
        x, s, nh, nw = preprocess(img)
        embs = {}
        for p, sess in enc.items():
            cached = Path(args.emb_cache, Path(p).parent.name, name[:-4] + ".npy")
            if cached.exists():
                embs[p] = np.load(cached)
                continue
            t = time.perf_counter()
            embs[p] = sess.run(None, {"image": x})[0]
            t_enc.append(time.perf_counter() - t)
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, embs[p])
        for m, r in configs:
            if r == "encode-only":
                continue
            ious, td, tr = run_photo(models[m], r, embs[str(models[m].enc_path)], img, gt, s, nh,
                                     nw, args.max_clicks)
            res = results[f"{m}:{r}"]
            res["ious"].append(ious)
            res["dec"].append(td)
            res["ref"].append(tr)
        if (i + 1) % 10 == 0:
            noc = {k: round(summarize(v["ious"], args.max_clicks)["NoC@90"], 2)
                   for k, v in results.items()}
            print(f"{i + 1}/{len(names)} NoC@90 so far", noc, flush=True)
    table = {}
    for k, v in results.items():
        if not v["ious"]:
            continue
        table[k] = summarize(v["ious"], args.max_clicks)
        table[k]["decode_ms"] = 1000 * float(np.mean(v["dec"]))
        table[k]["refine_ms"] = 1000 * float(np.mean(v["ref"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = {"photos": len(names), "encode_ms": 1000 * float(np.mean(t_enc or [0.0])),
              "table": table, "ious": {k: v["ious"] for k, v in results.items()}}
    Path(args.out).write_text(json.dumps(report))
    print("| config | NoC@85 | NoC@90 | NoF@90 | mIoU@1 | @3 | @5 | decode ms | refine ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k, t in table.items():
        print(f"| {k} | {t['NoC@85']:.2f} | {t['NoC@90']:.2f} | {t['NoF@90']} | {t['mIoU@1']:.3f}"
              f" | {t['mIoU@3']:.3f} | {t['mIoU@5']:.3f} | {t['decode_ms']:.0f} | "
              f"{t['refine_ms']:.0f} |")
    if t_enc:
        print(f"encoder: {1000 * np.mean(t_enc):.0f} ms/photo over {len(t_enc)} photos")


if __name__ == "__main__":
    main()
