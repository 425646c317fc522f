"""Encode every training photo once with LiteMedSAM's frozen image encoder and cache it.

The encoder stays frozen during fine-tuning, so its output per photo never changes: computing
it once (about 2 s a photo on one CPU thread) makes every later decoder step cost only the
decoder's. Writes, under ``--out``:
  embeddings.npy  float16 [N,256,64,64]   (memory-mapped, filled in order; resumable)
  gt256.npy       uint8   [N,256,256]     the object mask in the padded 256 frame, 0..255
                                          (area-averaged, so edges stay soft)
  sizes.npy       int32   [N,2]           valid (height, width) of the resized photo inside 256
  names.txt       one photo name per line
  done.npy        bool [N]: which embeddings are there yet (training may start early)
Photos are encoded one per class in turn (the names sort by class), so a partial cache
already covers every class.
Run:  /work/.venv-train/bin/python training/cache_embeddings.py --data ../shared/datasets/COCO_MVal
NEVER point it at DAVIS: DAVIS is the measuring set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from litemedsam_torch import INPUT_SIZE, load_litemedsam, preprocess  # noqa: E402


def gt_in_frame(gt: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    h, w = gt.shape
    scale = size / max(h, w)
    nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    soft = cv2.resize((gt > 0).astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size), np.uint8)
    out[:nh, :nw] = np.round(soft * 255).astype(np.uint8)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/datasets/COCO_MVal")
    ap.add_argument("--out", default="build/coco_cache")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if "DAVIS" in str(Path(args.data).resolve()):
        raise SystemExit("refusing to cache DAVIS: it is the measuring set, never training data")
    torch.set_num_threads(args.threads)
    names = sorted(p.name for p in Path(args.data, "img").glob("*.jpg"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(names)
    emb_path = out / "embeddings.npy"
    mode = "r+" if emb_path.exists() else "w+"
    emb = np.lib.format.open_memmap(emb_path, mode=mode, dtype=np.float16,
                                    shape=(n, 256, 64, 64))
    gts = np.zeros((n, INPUT_SIZE, INPUT_SIZE), np.uint8)
    sizes = np.zeros((n, 2), np.int32)
    done_file = out / "done.npy"
    done = np.load(done_file) if done_file.exists() else np.zeros(n, bool)
    if (out / "done.txt").exists():  # an older, in-order cache: its prefix is there
        done[: int((out / "done.txt").read_text())] = True
    for i, name in enumerate(names):
        gt = cv2.imread(str(Path(args.data, "gt", name[:-4] + ".png")), cv2.IMREAD_GRAYSCALE)
        h, w = gt.shape
        scale = INPUT_SIZE / max(h, w)
        sizes[i] = (max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5)))
        gts[i] = gt_in_frame(gt)
    np.save(out / "gt256.npy", gts)
    np.save(out / "sizes.npy", sizes)
    (out / "names.txt").write_text("\n".join(names) + "\n")
    # One photo per class in turn: k-th photo of every class, then the (k+1)-th...
    classes = [name.rsplit("_", 1)[0].rstrip("0123456789") for name in names]
    rank = [classes[:i].count(c) for i, c in enumerate(classes)]
    order = sorted(range(n), key=lambda i: (rank[i], classes[i]))
    net = load_litemedsam(str(out / "ckpt"))
    t0 = time.time()
    for j, i in enumerate(order):
        if done[i]:
            continue
        img = cv2.cvtColor(cv2.imread(str(Path(args.data, "img", names[i]))), cv2.COLOR_BGR2RGB)
        x, _ = preprocess(img)
        with torch.no_grad():
            emb[i] = net.image_encoder(torch.from_numpy(x))[0].numpy().astype(np.float16)
        done[i] = True
        if done.sum() % 20 == 0 or j + 1 == n:
            emb.flush()
            np.save(out / "done.tmp.npy", done)
            (out / "done.tmp.npy").replace(done_file)
            print(f"{int(done.sum())}/{n} {time.time() - t0:.0f}s", flush=True)
    emb.flush()
    np.save(out / "done.tmp.npy", done)
    (out / "done.tmp.npy").replace(done_file)
    print("cached", n, "photos in", out)


if __name__ == "__main__":
    main()
