"""SAM 2.1 with seeded random weights: darktable-ai's ONNX contract, packages, reference answers.

Runs in the golden venv (``scripts/setup --test`` builds ``.venv-golden``: the CPU build of
torch 2.13.0, PyPI's ``sam2==1.1.0`` installed without its dependencies, and the few packages
its model code imports). The real weights cannot be downloaded here; the architecture can,
and with seeded random weights it has the real models' shapes, operations and contract, so

- ``export`` writes a darktable-ai style package (``config.json``, ``encoder.onnx``,
  ``decoder.onnx``) and, with ``--release``, the ``<id>.dtmodel`` zip and ``versions.json``
  that ``models install`` downloads (tests/golden; bench.decode_speed and bench.latency time
  them);
- ``reference`` runs ``SAM2ImagePredictor.predict(..., return_logits=True)`` on the photos
  and prompt sequences of a cases file and saves its logits, scores and low-res masks, the
  answers the engine must give (tests/golden/test_sam21_reference.py).

The ONNX graphs follow the contract written down in ../shared/docs/model-contracts.md (the
export code is ours, written from those facts):

- encoder: ``image [1, 3, 1024, 1024]`` (ImageNet mean/std on the 0..255 scale, applied by
  the client) -> ``high_res_feats_0 [1, 32, 256, 256]``, ``high_res_feats_1 [1, 64, 128,
  128]``, ``image_embed [1, 256, 64, 64]``; the decoder's ``conv_s0`` / ``conv_s1``
  projections and ``no_mem_embed`` are inside the graph, as SAM2ImagePredictor.set_image
  applies them;
- decoder: those three, ``point_coords [1, N, 2]`` (the 1024 input frame), ``point_labels
  [1, N]``, ``mask_input [1, 1, 256, 256]``, ``has_mask_input [1]``. The graph appends the
  (0, 0, -1) padding point itself (the predictor's prompt encoder always pads, a box being two
  labelled points), adds 0.5 and divides by 1024; only the three multimask tokens come out;
- two output variants: ``masks1024`` (A: ``masks [1, 3, 1024, 1024]`` upsampled in the graph,
  ``iou_predictions [1, 3]``, ``low_res_masks [1, 3, 256, 256]``) and ``masks256`` (B:
  ``masks [1, 3, 256, 256]`` clamped to +-32, ``iou_predictions``).

    .venv-golden/bin/python training/sam21_random.py export --size tiny --variant masks1024 \\
        --out build/sam21 --release build/sam21/release
    .venv-golden/bin/python training/sam21_random.py reference --size tiny \\
        --cases cases.json --out reference.npz

torchvision: PyPI's wheel does not load beside the CPU torch, and sam2 imports only three of
its transforms (in ``sam2.utils.transforms``), so this script gives it stand-ins that compute
what torchvision computes on a tensor (``_install_torchvision_stand_in``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIZE = 1024
OPSET = 17
SEED = 20240  # the weights of every size come from this seed
CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
}
VARIANTS = ("masks1024", "masks256")
ENCODER_OUTPUTS = ["high_res_feats_0", "high_res_feats_1", "image_embed"]
DECODER_INPUTS = ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords",
                  "point_labels", "mask_input", "has_mask_input"]


# --- the model ------------------------------------------------------------------------------


def _install_torchvision_stand_in() -> None:
    """``sam2.utils.transforms`` imports ``ToTensor``, ``Resize`` and ``Normalize`` from
    torchvision and scripts the last two with torch.jit. These compute what torchvision's do
    on an (H, W, 3) uint8 array and a float tensor: to float in 0..1 as (3, H, W); a bilinear
    resize with antialiasing (torchvision's tensor default since 0.17), corners not aligned;
    (x - mean) / std per channel."""
    if "torchvision.transforms" in sys.modules:
        return

    class ToTensor:
        def __call__(self, pic: np.ndarray) -> torch.Tensor:
            array = np.ascontiguousarray(np.asarray(pic))
            return torch.from_numpy(array).permute(2, 0, 1).contiguous().float().div(255.0)

    class Resize(nn.Module):
        def __init__(self, size: Any) -> None:
            super().__init__()
            self.size = [int(size[0]), int(size[1])]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x.unsqueeze(0), size=self.size, mode="bilinear",
                                 align_corners=False, antialias=True).squeeze(0)

    class Normalize(nn.Module):
        def __init__(self, mean: list[float], std: list[float]) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean).reshape(-1, 1, 1))
            self.register_buffer("std", torch.tensor(std).reshape(-1, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.std

    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.ToTensor, transforms.Resize, transforms.Normalize = ToTensor, Resize, Normalize
    package.transforms = transforms
    sys.modules["torchvision"] = package
    sys.modules["torchvision.transforms"] = transforms


def build(size: str, seed: int = SEED) -> Any:
    """The real SAM 2.1 architecture of ``size`` (sam2's own config), seeded random weights."""
    _install_torchvision_stand_in()
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    return build_sam2(CONFIGS[size], ckpt_path=None, device="cpu", mode="eval")


class EncoderGraph(nn.Module):
    """image -> (high_res_feats_0, high_res_feats_1, image_embed), as set_image computes them:
    the backbone, the decoder's projections of the two high-resolution levels, and the
    no-memory embedding added to the lowest level."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.model.forward_image(image)["backbone_fpn"]
        hi0, hi1, low = levels[-self.model.num_feature_levels:]
        channels = low.shape[1]
        low = low + self.model.no_mem_embed.reshape(1, channels, 1, 1)
        return hi0, hi1, low


class DecoderGraph(nn.Module):
    """Prompts + features -> masks, as the predictor's prompt encoder and mask decoder compute
    them with multimask output: the padding point appended, coordinates +0.5 and divided by
    the input size, each label's embedding added, the mask input's embedding or the "no
    mask" embedding chosen by has_mask_input."""

    def __init__(self, model: Any, variant: str) -> None:
        super().__init__()
        self.prompt_encoder = model.sam_prompt_encoder
        self.mask_decoder = model.sam_mask_decoder
        self.variant = variant

    def forward(self, image_embed: torch.Tensor, high_res_feats_0: torch.Tensor,
                high_res_feats_1: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pe = self.prompt_encoder
        pad_xy = torch.zeros_like(point_coords[:, :1, :])
        pad_label = torch.full_like(point_labels[:, :1], -1.0)
        coords = torch.cat([point_coords, pad_xy], dim=1) + 0.5
        labels = torch.cat([point_labels, pad_label], dim=1).unsqueeze(-1)
        sparse = pe.pe_layer.forward_with_coords(coords, (SIZE, SIZE))
        sparse = torch.where(labels == -1, torch.zeros_like(sparse)
                             + pe.not_a_point_embed.weight, sparse)
        for k, embedding in enumerate(pe.point_embeddings):
            sparse = torch.where(labels == k, sparse + embedding.weight, sparse)
        has = has_mask_input.reshape(1, 1, 1, 1)
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has * pe.mask_downscaling(mask_input) + (1.0 - has) * no_mask
        low_res, iou, _, _ = self.mask_decoder(
            image_embeddings=image_embed, image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=True, repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1])
        if self.variant == "masks1024":
            masks = F.interpolate(low_res, (SIZE, SIZE), mode="bilinear", align_corners=False)
            return masks, iou, low_res
        return torch.clamp(low_res, -32.0, 32.0), iou


def export(model: Any, folder: Path, variant: str, model_id: str,
           encoder_from: Path | None = None) -> None:
    """Writes ``folder/{config.json, encoder.onnx, decoder.onnx}``. ``encoder_from``: an
    encoder.onnx already exported from the same weights (the variants share it)."""
    folder.mkdir(parents=True, exist_ok=True)
    encoder_path = folder / "encoder.onnx"
    if encoder_from is not None:
        encoder_path.write_bytes(encoder_from.read_bytes())
    else:
        torch.onnx.export(EncoderGraph(model).eval(), (torch.randn(1, 3, SIZE, SIZE),),
                          str(encoder_path), input_names=["image"],
                          output_names=ENCODER_OUTPUTS, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    dummy = (torch.randn(1, 256, 64, 64), torch.randn(1, 32, 256, 256),
             torch.randn(1, 64, 128, 128), torch.tensor([[[500.0, 400.0], [10.0, 20.0]]]),
             torch.tensor([[1.0, 0.0]]), torch.zeros(1, 1, 256, 256), torch.tensor([0.0]))
    outputs = (["masks", "iou_predictions", "low_res_masks"] if variant == "masks1024"
               else ["masks", "iou_predictions"])
    torch.onnx.export(DecoderGraph(model, variant).eval(), dummy, str(folder / "decoder.onnx"),
                      input_names=DECODER_INPUTS, output_names=outputs,
                      dynamic_axes={"point_coords": {1: "num_points"},
                                    "point_labels": {1: "num_points"}},
                      opset_version=OPSET, do_constant_folding=True, dynamo=False)
    (folder / "config.json").write_text(json.dumps({
        "id": model_id, "name": f"{model_id} (random weights)",
        "description": f"SAM 2.1 architecture, seeded random weights, {variant} decoder",
        "task": "mask", "backend": "onnx", "version": "1.0", "tiling": False}, indent=2))


def release(folder: Path, out: Path) -> Path:
    """``out/<id>.dtmodel`` (a zip whose one top folder is ``<id>/``) and ``out/versions.json``
    listing it with its size and SHA-256, as darktable-ai publishes them."""
    model_id = folder.name
    out.mkdir(parents=True, exist_ok=True)
    package = out / f"{model_id}.dtmodel"
    with zipfile.ZipFile(package, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f"{model_id}/{f.name}")
    digest = hashlib.sha256(package.read_bytes()).hexdigest()
    versions_path = out / "versions.json"
    versions = (json.loads(versions_path.read_text()) if versions_path.exists()
                else {"schema": 1, "models": {}})
    versions["models"][model_id] = {"version": "1.0", "task": "mask",
                                    "sha256": f"sha256:{digest}",
                                    "size": package.stat().st_size}
    versions_path.write_text(json.dumps(versions, indent=2))
    return package


# --- reference answers ----------------------------------------------------------------------


def reference(model: Any, cases_path: Path, out: Path) -> None:
    """For every photo and prompt sequence of the cases file, ``predict`` with the previous
    step's best low-res mask fed back (none for the first step), as a user of the reference
    predictor does. Points are pixel indices (c, r) and boxes XYXY, in photo pixels."""
    from PIL import Image
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    cases = json.loads(cases_path.read_text())
    predictor = SAM2ImagePredictor(model)
    saved: dict[str, np.ndarray] = {}
    for photo, rel in cases["photos"].items():
        image = np.asarray(Image.open(cases_path.parent / rel).convert("RGB"))
        predictor.set_image(image)
        saved[f"{photo}/input"] = predictor._transforms(image)[None].numpy()
        for name, case in cases["cases"].items():
            points = case.get("points") or []
            coords = np.array([p[:2] for p in points], np.float32) if points else None
            labels = np.array([p[2] for p in points], np.int32) if points else None
            box = np.array(case["box"], np.float32) if case.get("box") else None
            previous = None
            for step in range(int(cases["steps"])):
                masks, scores, low_res = predictor.predict(
                    point_coords=coords, point_labels=labels, box=box, mask_input=previous,
                    multimask_output=True, return_logits=True)
                key = f"{photo}/{name}/{step}"
                saved[f"{key}/masks"] = masks.astype(np.float32)
                saved[f"{key}/scores"] = scores.astype(np.float32)
                saved[f"{key}/low_res"] = low_res.astype(np.float32)
                previous = low_res[int(np.argmax(scores))][None]
    np.savez(out, **saved)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="ONNX package(s) of one size")
    e.add_argument("--size", choices=sorted(CONFIGS), default="tiny")
    e.add_argument("--variant", choices=VARIANTS, action="append",
                   help="repeatable; default: masks256")
    e.add_argument("--id", help="package id (default mask-object-sam21-<size>, with "
                                "-<variant> when several variants are exported)")
    e.add_argument("--out", type=Path, required=True, help="the package folders go here")
    e.add_argument("--release", type=Path, help="also write <id>.dtmodel + versions.json here")
    r = sub.add_parser("reference", help="SAM2ImagePredictor's answers on a cases file")
    r.add_argument("--size", choices=sorted(CONFIGS), default="tiny")
    r.add_argument("--cases", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    started = time.perf_counter()
    model = build(args.size)
    print(f"built SAM 2.1 {args.size}: "
          f"{sum(t.numel() for t in model.parameters()) / 1e6:.1f} M parameters "
          f"({time.perf_counter() - started:.1f} s)", flush=True)
    if args.command == "reference":
        reference(model, args.cases, args.out)
    else:
        variants = args.variant or ["masks256"]
        encoder = None
        for variant in variants:
            model_id = args.id or f"mask-object-sam21-{args.size}"
            if len(variants) > 1:
                model_id += f"-{variant}"
            folder = args.out / model_id
            export(model, folder, variant, model_id, encoder)
            encoder = folder / "encoder.onnx"
            if args.release is not None:
                release(folder, args.release)
            print(f"exported {folder} ({time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
