"""The engine's quality bench (bench/quality.py: same protocol, same fixed subset, same
decode path with the engine's refinement and clean-up) for several configurations at once,
computing each photo's embedding once and keeping it on disk.

    .venv/bin/python training/bench_cached.py --limit 100 \
        --config litemedsam-photo:none --config litemedsam-photo:grabcut

WHY: on this 2-core machine the encoder is the slow part, and every configuration of the
LiteMedSAM models shares one encoder (models/litemedsam/encoder.onnx). Configurations run
photo by photo, interleaved, and the table is rewritten after every photo, so a run cut
short still reports every configuration on the same photos.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MASKWEB_ONNX_THREADS", "1")

from bench.quality import dataset_items, fixed_subset, load, run_image, summarise, table  # noqa: E402
from maskweb.segment.embedding import embedding_from_bytes, embedding_to_bytes  # noqa: E402
from maskweb.segment.types import Embedding, Segmenter  # noqa: E402


class CachedEncoder:
    """Delegates to ``model``; ``encode`` reads the shared cached embedding of this photo."""

    def __init__(self, model: Segmenter, embedding: Embedding) -> None:
        self.model = model
        self.model_id = model.model_id
        self.embedding = embedding

    def encode(self, image: np.ndarray) -> Embedding:
        e = self.embedding
        return Embedding(self.model_id, e.image_size, dict(e.arrays), dict(e.meta))

    def decode(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        return self.model.decode(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="davis", choices=["davis", "coco"])
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--config", action="append", default=[],
                    help="model_id:refine (none given: only fill the embedding cache)")
    ap.add_argument("--encoder-model", default="litemedsam-photo",
                    help="model whose encoder makes the shared embeddings (with the guide)")
    ap.add_argument("--cache", default="build/emb_cache")
    ap.add_argument("--out", default="build/bench_cached")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    configs = [tuple(c.split(":")) for c in args.config]
    models = {c: load(c[0], c[1], {}) for c in configs}
    # Encoded with refinement on, so the embedding carries the guide image every refine needs.
    encoder = load(args.encoder_model, "grabcut", {})
    items = dataset_items(args.dataset)
    subset = fixed_subset(len(items), args.limit)
    results: dict[tuple[str, str], list[dict]] = {c: [] for c in configs}
    enc_times: list[float] = []
    cache = Path(args.cache, args.dataset)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for n, i in enumerate(subset):
        img_path, gt_path = items[i]
        image = np.array(Image.open(img_path).convert("RGB"))
        gt = np.array(Image.open(gt_path)) > 0
        if gt.ndim == 3:
            gt = gt[..., 0]
        f = cache / (img_path.stem + ".emb")
        if f.exists():
            emb = embedding_from_bytes(f.read_bytes())
        else:
            t = time.perf_counter()
            emb = encoder.encode(image)
            enc_times.append(time.perf_counter() - t)
            f.write_bytes(embedding_to_bytes(emb, "float16"))
        for c in configs:
            # The classical engine has its own (cheap) "embedding": no sharing there.
            m = models[c] if c[0] == "grabcut" else CachedEncoder(models[c], emb)
            r = run_image(m, image, gt, "float16")
            r["image"] = img_path.name
            results[c].append(r)
        rows = [(f"{m} +{rf}", summarise(results[(m, rf)])) for m, rf in configs]
        md = table(rows)
        head = (f"Dataset {args.dataset}, {n + 1} of {len(subset)} images (--limit {args.limit},"
                f" evenly spaced, engine bench protocol), embedding float16, 1 thread, shared "
                f"encoder median {1000 * np.median(enc_times or [0]):.0f} ms/img over "
                f"{len(enc_times)} encodes, {time.strftime('%Y-%m-%d %H:%M')}")
        Path(args.out + ".md").write_text(head + "\n\n" + md + "\n")
        Path(args.out + ".json").write_text(json.dumps(
            {f"{m}:{rf}": v for (m, rf), v in results.items()}, indent=1))
        print(f"[{n + 1}/{len(subset)}] {img_path.name} ({time.time() - t0:.0f}s) "
              + " ".join(f"{m}+{rf}:NoC90={np.mean([min(next((k + 1 for k, v in enumerate(r['ious']) if v >= 0.9), 20), 20) for r in results[(m, rf)]]):.1f}"  # noqa: E501
                         for m, rf in configs), flush=True)
    print(Path(args.out + ".md").read_text())


if __name__ == "__main__":
    main()
