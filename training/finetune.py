"""Fine-tune LiteMedSAM's prompt encoder + mask decoder for clicks on photos (COCO_MVal).

    /work/.venv-train/bin/python training/cache_embeddings.py          # once, ~25 min
    nohup /work/.venv-train/bin/python training/finetune.py --minutes 55 --lr 3e-4 \
        > build/ft.log 2>&1 &        # may start while the cache is still being filled
    /work/.venv-train/bin/python training/export_finetuned.py --weights build/ft/last.pt

Recipe (seeded, one CPU thread; the defaults below are what models/litemedsam-photo used):
- The image encoder is frozen; its embeddings for COCO_MVal come from cache_embeddings.py.
  Photos are split by COCO id: a held-out 24 give a protocol curve at the end; DAVIS is
  never read.
- Every batch (4 photos) plays a whole interactive session, like RITM / SAM training: the
  first prompt is a click inside the object (deep inside half the time, anywhere inside
  otherwise) or, for 10%, a jittered box; each next click is drawn from the deep part of the
  larger error region of the model's OWN previous prediction (sometimes the other region),
  and the previous low-res logits are fed back as mask_input. Sessions run 4..16 clicks so
  the decoder learns long sessions (short ones drifted after ~10 clicks).
- Every step of a session is trained (loss on the single-mask token): BCE + dice against
  the soft ground truth in the padded 256 frame (padding excluded), plus MSE of the IoU head
  against the real IoU. AdamW (lr 3e-4, weight decay 0.01), warm-up then cosine decay over
  the wall-clock budget.
- Click coordinates are pixel centres (c + 0.5) with +-0.5 px jitter in the 256 frame, the
  way the engine maps a continuous click; a padding point (label -1) follows the clicks half
  of the time, so both SAM's ONNX habit and a plain click list work.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clicks import next_click, random_click  # noqa: E402
from litemedsam_torch import INPUT_SIZE, DecoderOnnx, load_litemedsam  # noqa: E402

S = INPUT_SIZE


def load_cache(cache: Path, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Cached embeddings (memory-mapped) and the masks in the 256 frame.

    Training may start while cache_embeddings.py is still filling the embeddings:
    ``cached_mask`` says which are there yet, and only those are drawn.
    """
    from cache_embeddings import gt_in_frame

    emb = np.load(cache / "embeddings.npy", mmap_mode="r")
    if (cache / "gt256.npy").exists():
        names = (cache / "names.txt").read_text().splitlines()
        return emb, np.load(cache / "gt256.npy"), np.load(cache / "sizes.npy"), names
    names = sorted(p.name for p in (data / "img").glob("*.jpg"))
    gts = np.zeros((len(names), S, S), np.uint8)
    sizes = np.zeros((len(names), 2), np.int32)
    for i, name in enumerate(names):
        gt = cv2.imread(str(data / "gt" / (name[:-4] + ".png")), cv2.IMREAD_GRAYSCALE)
        h, w = gt.shape
        scale = S / max(h, w)
        sizes[i] = (max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5)))
        gts[i] = gt_in_frame(gt)
    return emb, gts, sizes, names


def cached_mask(cache: Path, total: int) -> np.ndarray:
    """Which photos' embeddings are there yet (all, once the cache is complete)."""
    done = cache / "done.npy"
    if done.exists():
        try:
            return np.load(done)
        except (OSError, ValueError):  # being replaced right now: try next time
            pass
    return np.ones(total, bool) if not done.exists() else np.zeros(total, bool)


def split(names: list[str], n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Held-out photos chosen by COCO id, so one photo never sits on both sides."""
    ids = sorted({n.rsplit("_", 1)[1] for n in names})
    rng = np.random.default_rng(seed)
    val_ids: set[str] = set()
    order = rng.permutation(len(ids))
    val = []
    for j in order:
        val_ids.add(ids[j])
        val = [i for i, n in enumerate(names) if n.rsplit("_", 1)[1] in val_ids]
        if len(val) >= n_val:
            break
    train = [i for i in range(len(names)) if i not in set(val)]
    return train, val


class Session:
    """One simulated interactive session on one cached photo (256 frame)."""

    def __init__(self, rng: np.random.Generator, gt_soft: np.ndarray, size: tuple[int, int],
                 box_prob: float) -> None:
        self.rng = rng
        self.gt_soft = gt_soft.astype(np.float32) / 255.0
        self.gt = gt_soft >= 128
        self.valid = np.zeros((S, S), bool)
        self.valid[: size[0], : size[1]] = True
        self.points: list[tuple[float, float, float]] = []
        if rng.random() < box_prob and self.gt.any():
            ys, xs = np.nonzero(self.gt)
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            j = 0.08 * max(x1 - x0, y1 - y0)
            x0, x1 = x0 + rng.normal(0, j / 2), x1 + rng.normal(0, j / 2)
            y0, y1 = y0 + rng.normal(0, j / 2), y1 + rng.normal(0, j / 2)
            self.points += [(float(x0), float(y0), 2.0), (float(x1), float(y1), 3.0)]
        else:
            deep = 0.7 if rng.random() < 0.5 else 0.0
            self.add(random_click(rng, self.gt, None, self.valid, deep))
        self.pad = rng.random() < 0.5

    def add(self, click: tuple[int, int, bool] | None) -> None:
        if click is None:
            return
        r, c, positive = click
        jx, jy = self.rng.uniform(-0.5, 0.5, 2)
        self.points.append((c + 0.5 + jx, r + 0.5 + jy, 1.0 if positive else 0.0))

    def next(self, pred: np.ndarray) -> None:
        deep = 0.5 if self.rng.random() < 0.5 else 0.9
        self.add(random_click(self.rng, self.gt, pred, self.valid, deep))

    def prompt(self) -> list[tuple[float, float, float]]:
        return self.points + ([(0.0, 0.0, -1.0)] if self.pad else [])


def batch_prompts(sessions: list[Session]) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(s.prompt()) for s in sessions)
    coords = np.zeros((len(sessions), n, 2), np.float32)
    labels = -np.ones((len(sessions), n), np.float32)
    for i, s in enumerate(sessions):
        p = np.array(s.prompt(), np.float32)
        coords[i, : len(p)] = p[:, :2]
        labels[i, : len(p)] = p[:, 2]
    return torch.from_numpy(coords), torch.from_numpy(labels)


def losses(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
           valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE + dice over the valid frame, MSE of predicted vs real IoU), each a batch mean."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3))
    p = torch.sigmoid(logits) * valid
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    with torch.no_grad():
        hard = (logits > 0).float() * valid
        gt = (target >= 0.5).float()
        real_iou = (hard * gt).sum((1, 2, 3)) / ((hard + gt).clamp(max=1).sum((1, 2, 3)) + 1e-6)
    mse = F.mse_loss(iou_pred[:, 0], real_iou)
    return (bce + dice).mean(), mse


@torch.no_grad()
def evaluate(dec: DecoderOnnx, emb: np.ndarray, gts: np.ndarray, sizes: np.ndarray,
             idx: list[int], max_clicks: int = 20) -> np.ndarray:
    """Protocol clicks on held-out COCO photos in the 256 frame: mIoU after 1..max_clicks."""
    dec.eval()
    ious = np.zeros((len(idx), max_clicks))
    for bi in range(0, len(idx), 16):
        ids = idx[bi: bi + 16]
        e = torch.from_numpy(np.stack([np.asarray(emb[i], np.float32) for i in ids]))
        gt = [gts[i] >= 128 for i in ids]
        valid = []
        for i in ids:
            v = np.zeros((S, S), bool)
            v[: sizes[i][0], : sizes[i][1]] = True
            valid.append(v)
        pts: list[list[tuple[float, float, float]]] = [[] for _ in ids]
        clicked = [np.zeros((S, S), bool) for _ in ids]
        preds = [np.zeros((S, S), bool) for _ in ids]
        mask_in = torch.zeros(len(ids), 1, S, S)
        for k in range(max_clicks):
            for j in range(len(ids)):
                c = next_click(gt[j], preds[j], clicked[j], valid[j])
                if c is None:  # a perfect mask: no further click
                    continue
                r, cc, pos = c
                clicked[j][r, cc] = True
                pts[j].append((cc + 0.5, r + 0.5, 1.0 if pos else 0.0))
            n = max(len(p) for p in pts) + 1
            coords = torch.zeros(len(ids), n, 2)
            labels = -torch.ones(len(ids), n)
            for j, p in enumerate(pts):
                t = torch.tensor(p)
                coords[j, : len(p)] = t[:, :2]
                labels[j, : len(p)] = t[:, 2]
            has = torch.full((len(ids),), 1.0 if k else 0.0)
            logits, _ = dec(e, coords, labels, mask_in, has)
            mask_in = logits[:, :1]
            for j in range(len(ids)):
                preds[j] = (logits[j, 0].numpy() > 0) & valid[j]
                inter = (preds[j] & gt[j]).sum()
                ious[bi + j, k] = inter / max((preds[j] | gt[j]).sum(), 1)
    return ious


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emb_mm, gts, sizes, names = load_cache(Path(args.cache), Path(args.data))
    emb = emb_mm
    train_idx, val_idx = split(names, args.val, args.seed)
    print(f"train {len(train_idx)} photos, held-out {len(val_idx)}", flush=True)
    net = load_litemedsam(str(Path(args.cache) / "ckpt"))
    dec = DecoderOnnx(net)
    if args.resume:
        dec.load_state_dict(torch.load(args.resume, map_location="cpu"))
        print("resumed from", args.resume, flush=True)
    params = list(dec.mask_decoder.parameters()) + list(dec.prompt_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    budget = args.minutes * 60.0
    t0 = time.time()
    step = 0
    history = []
    next_eval = args.eval_every
    session_i = 0
    # Running training IoU per click index (free: from the predictions trained on anyway).
    run_iou = np.zeros(args.max_clicks)
    run_n = np.zeros(args.max_clicks)
    cached = cached_mask(Path(args.cache), len(names))
    while time.time() - t0 < budget:
        mask = cached_mask(Path(args.cache), len(names))
        if mask.any():
            cached = mask
        n_cached = int(cached.sum())
        pool = [i for i in train_idx if cached[i]]
        ids = np.sort(rng.choice(pool, size=args.batch, replace=False))
        sessions = [Session(rng, gts[i], tuple(sizes[i]), args.box_prob) for i in ids]
        e = torch.from_numpy(np.asarray(emb[ids], np.float32))
        target = torch.from_numpy(np.stack([s.gt_soft for s in sessions]))[:, None]
        valid = torch.from_numpy(np.stack([s.valid for s in sessions]).astype(np.float32))[:, None]
        length = int(rng.integers(args.min_clicks, args.max_clicks + 1))
        mask_in = torch.zeros(args.batch, 1, S, S)
        for k in range(length):
            frac = min(1.0, (time.time() - t0) / budget)
            lr = args.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr
            dec.train()
            coords, labels = batch_prompts(sessions)
            has = torch.full((args.batch,), 1.0 if k else 0.0)
            logits, iou = dec(e, coords, labels, mask_in, has)
            seg, mse = losses(logits, iou, target, valid)
            loss = seg + mse
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            mask_in = logits.detach()[:, :1]
            pred = (mask_in[:, 0].numpy() > 0)
            for j, s in enumerate(sessions):
                p = pred[j] & s.valid
                run_iou[k] += (p & s.gt).sum() / max((p | s.gt).sum(), 1)
                run_n[k] += 1
                s.next(p)
            if step % 20 == 0:
                print(f"step {step} session {session_i} click {k + 1} seg {seg.item():.4f} "
                      f"iou-mse {mse.item():.4f} lr {lr:.2e} {time.time() - t0:.0f}s", flush=True)
        session_i += 1
        if time.time() - t0 >= next_eval or time.time() - t0 >= budget:
            next_eval += args.eval_every
            curve = run_iou / np.maximum(run_n, 1)
            history.append({"step": step, "sessions": session_i, "photos_cached": n_cached,
                            "minutes": round((time.time() - t0) / 60, 1),
                            "train_iou_by_click": curve.round(4).tolist()})
            print(f"train IoU by click @{step} ({(time.time() - t0) / 60:.1f} min):",
                  " ".join(f"{x:.2f}" for x in curve), flush=True)
            run_iou[:] = 0
            run_n[:] = 0
            torch.save(dec.state_dict(), out / "last.pt")
            (out / "history.json").write_text(json.dumps(history, indent=1))
    torch.save(dec.state_dict(), out / "last.pt")
    if args.val_clicks:
        cached = cached_mask(Path(args.cache), len(names))
        v = evaluate(dec, emb, gts, sizes, [i for i in val_idx if cached[i]], args.val_clicks)
        history.append({"step": step, "held_out_miou_by_click": v.mean(0).round(4).tolist()})
        print("held-out mIoU by click:", " ".join(f"{x:.3f}" for x in v.mean(0)), flush=True)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    print("done", step, "steps", session_i, "sessions", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/COCO_MVal")
    ap.add_argument("--cache", default="build/coco_cache")
    ap.add_argument("--out", default="build/ft")
    ap.add_argument("--minutes", type=float, default=55)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--min-clicks", type=int, default=4)
    ap.add_argument("--max-clicks", type=int, default=16)
    ap.add_argument("--box-prob", type=float, default=0.1)
    ap.add_argument("--val", type=int, default=24)
    ap.add_argument("--val-clicks", type=int, default=10,
                    help="protocol clicks on the held-out photos after training (0: skip)")
    ap.add_argument("--eval-every", type=float, default=300, help="seconds between log curves")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", default=None, help="start from these decoder weights")
    args = ap.parse_args(argv)
    if "DAVIS" in str(Path(args.data).resolve()) or "DAVIS" in str(Path(args.cache).resolve()):
        raise SystemExit("refusing: DAVIS is the measuring set, never training data")
    train(args)


if __name__ == "__main__":
    main()
