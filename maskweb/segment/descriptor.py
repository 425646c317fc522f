"""Model descriptors: what the engine needs to know to run a model folder.

Two formats are read:
- maskweb's own ``model.json`` (schema below), written for bundled / converted models;
- darktable-ai packages' ``config.json`` (``id``, ``name``, ``description``, ``task``,
  ``backend``, ``version``, optionally ``arch``), mapped by their id/arch onto the family's
  known preprocessing, so a darktable installation's models folder is used as it is.

``model.json``::

    {"id": "litemedsam", "name": "...", "family": "sam" | "sam2" | "segnext",
     "input_size": 256, "resize": "pad" | "stretch",
     "normalization": "minmax" | "unit" | {"mean": [r, g, b], "std": [r, g, b]},
     "encoder": "encoder.onnx", "decoder": "decoder.onnx",
     "decoder_int8": "decoder.int8.onnx",
     "licence": "Apache-2.0", "source": "...", "description": "...",
     "refine": "none" | "guided" | "grabcut", "offline_default_rank": 0,
     "prompts": ["click", "box", "stroke"],
     "pad_point": true | false, "points": "continuous" | "pixel_index" | "whole_pixel"}

``normalization`` means: "minmax" per image to 0..1, "unit" x/255, or mean/std in 0..255
units. "pad": longest side resized to ``input_size``, padded bottom/right; "stretch": both
sides resized to ``input_size``. ``decoder_int8`` (optional) names a faster copy of the decoder,
its heavy MatMuls in int8 (``training/optimize_decoder.py``); the CPU decodes with it
unless ``MASKWEB_DECODER_PRECISION=float`` (see ``providers.decoder_precision``).

``prompts`` (optional, default all three) says what the model does well; the pickers offer
only models that take clicks (LiteMedSAM as shipped was trained on boxes: a click gives an
empty mask). ``pad_point`` and ``points`` are the decoder's prompt contract, by default the
family's (``FAMILY_CONTRACTS``); a model.json only names them for an export that differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAMILIES = ("sam", "sam2", "segnext")
RESIZES = ("pad", "stretch")
REFINES = ("none", "guided", "grabcut")
PROMPT_KINDS = ("click", "box", "stroke")
# How a continuous photo point x (pixel c covers [c, c+1)) becomes a decoder coordinate in
# the encoder's input frame of scale s:
# - "continuous": x * s. maskweb's LiteMedSAM exports: the fine-tune (training/finetune.py)
#   fed clicks at pixel centres, c + 0.5, to a graph that adds 0.5 again, so that is what
#   its weights know.
# - "pixel_index": (x - 0.5) * s, the clicked pixel's index c as SAM2ImagePredictor's users
#   send it (c * s: predict() scales pixel coordinates by 1024 / W); the graph adds the 0.5.
# - "whole_pixel": int(floor(x) * s + 0.5): SegNext draws each click as a disk on the grid
#   of whole input pixels, and its reference predictor sends int(c * 1024 / W + 0.5).
POINT_CONVENTIONS = ("continuous", "pixel_index", "whole_pixel")
# Each family's decoder contract: ``pad_point``, the client appends SAM's (0, 0, -1)
# padding point when there is no box (SAM 1 ONNX exports need it; darktable-ai's SAM 2.1
# decoder appends it itself, and a second one changes its answer: see docs/engine.md).
FAMILY_CONTRACTS: dict[str, dict[str, Any]] = {
    "sam": {"pad_point": True, "points": "continuous"},
    "sam2": {"pad_point": False, "points": "pixel_index"},
    "segnext": {"pad_point": False, "points": "whole_pixel"},
}
# SAM's and SAM 2's ImageNet statistics in 0..255 units.
IMAGENET = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}


class DescriptorError(ValueError):
    """A model folder whose descriptor is missing, malformed or points at missing files."""


@dataclass(frozen=True)
class ModelDescriptor:
    id: str
    name: str
    family: str
    folder: Path
    input_size: int
    resize: str
    normalization: str | dict[str, list[float]]
    encoder: str
    decoder: str
    decoder_int8: str = ""
    licence: str = "unknown"
    source: str = ""
    description: str = ""
    refine: str = "none"
    offline_default_rank: int = 0
    prompts: tuple[str, ...] = PROMPT_KINDS
    pad_point: bool = False
    points: str = "continuous"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_path(self) -> Path:
        return (self.folder / self.encoder).resolve()

    @property
    def decoder_path(self) -> Path:
        return (self.folder / self.decoder).resolve()

    @property
    def decoder_int8_path(self) -> Path | None:
        return (self.folder / self.decoder_int8).resolve() if self.decoder_int8 else None

    def missing_files(self) -> list[Path]:
        paths = [self.encoder_path, self.decoder_path, self.decoder_int8_path]
        return [p for p in paths if p is not None and not p.is_file()]


def _check_normalization(value: Any) -> str | dict[str, list[float]]:
    if value in ("minmax", "unit"):
        return str(value)
    if isinstance(value, dict) and set(value) >= {"mean", "std"}:
        mean = [float(v) for v in value["mean"]]
        std = [float(v) for v in value["std"]]
        if len(mean) == 3 and len(std) == 3 and all(s > 0 for s in std):
            return {"mean": mean, "std": std}
    raise DescriptorError(f"bad normalization {value!r}")


def parse_model_json(data: dict[str, Any], folder: Path) -> ModelDescriptor:
    """Validate a ``model.json`` mapping; DescriptorError says which field is wrong."""
    try:
        family = str(data["family"])
        if family not in FAMILIES:
            raise DescriptorError(f"family must be one of {FAMILIES}, not {family!r}")
        resize = str(data.get("resize", "pad"))
        if resize not in RESIZES:
            raise DescriptorError(f"resize must be one of {RESIZES}, not {resize!r}")
        refine = str(data.get("refine", "none"))
        if refine not in REFINES:
            raise DescriptorError(f"refine must be one of {REFINES}, not {refine!r}")
        input_size = int(data["input_size"])
        if not 16 <= input_size <= 4096:
            raise DescriptorError(f"input_size out of range: {input_size}")
        model_id = str(data["id"])
        if not model_id or "/" in model_id or model_id == "grabcut":
            raise DescriptorError(f"bad id {model_id!r}")
        contract = FAMILY_CONTRACTS[family]
        pad_point = data.get("pad_point", contract["pad_point"])
        if not isinstance(pad_point, bool):
            raise DescriptorError(f"pad_point must be true or false, not {pad_point!r}")
        points = str(data.get("points", contract["points"]))
        if points not in POINT_CONVENTIONS:
            raise DescriptorError(f"points must be one of {POINT_CONVENTIONS}, not {points!r}")
        prompts = data.get("prompts", list(PROMPT_KINDS))
        if (not isinstance(prompts, list) or not prompts
                or any(p not in PROMPT_KINDS for p in prompts)):
            raise DescriptorError(f"prompts must be a non-empty list of {PROMPT_KINDS}, "
                                  f"not {prompts!r}")
        return ModelDescriptor(
            id=model_id, name=str(data.get("name", model_id)), family=family, folder=folder,
            input_size=input_size, resize=resize,
            normalization=_check_normalization(data.get("normalization", "unit")),
            encoder=str(data.get("encoder", "encoder.onnx")),
            decoder=str(data.get("decoder", "decoder.onnx")),
            decoder_int8=str(data.get("decoder_int8", "")),
            licence=str(data.get("licence", data.get("license", "unknown"))),
            source=str(data.get("source", "")), description=str(data.get("description", "")),
            refine=refine, offline_default_rank=int(data.get("offline_default_rank", 0)),
            prompts=tuple(str(p) for p in prompts), pad_point=pad_point, points=points,
            extra={k: v for k, v in data.items() if k.startswith("x_")},
        )
    except KeyError as exc:
        raise DescriptorError(f"missing field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, DescriptorError):
            raise
        raise DescriptorError(str(exc)) from exc


# darktable-ai's interactive mask packages, by id prefix / arch. SAM 2.1 is ImageNet-normalised
# outside the graph, SegNext takes 0..1 (it normalises inside). Both photos are stretched to
# 1024 x 1024, as the reference predictors do (SAM2ImagePredictor's transforms; SegNext's
# PlainVitModel.preprocess), and as SAM 2 was trained; darktable pads instead (longest side to
# 1024, zeros bottom/right), which on a non-square photo is another encoder input than the
# one the reference's published results come from. docs/engine.md has the reasons.
DARKTABLE_FAMILIES: dict[str, dict[str, Any]] = {
    "sam2": {"family": "sam2", "input_size": 1024, "resize": "stretch",
             "normalization": IMAGENET},
    "segnext": {"family": "segnext", "input_size": 1024, "resize": "stretch",
                "normalization": "unit"},
}


def darktable_family(config: dict[str, Any]) -> str | None:
    arch = str(config.get("arch", "")).lower()
    model_id = str(config.get("id", "")).lower()
    if arch in ("sam2", "sam21") or model_id.startswith("mask-object-sam21"):
        return "sam2"
    if arch == "segnext" or model_id.startswith("mask-object-segnext"):
        return "segnext"
    return None


def parse_darktable_config(config: dict[str, Any], folder: Path) -> ModelDescriptor:
    """Map a darktable-ai ``config.json`` onto a descriptor (only interactive mask models)."""
    if str(config.get("task", "")) != "mask":
        raise DescriptorError(f"not a mask model (task {config.get('task')!r})")
    family = darktable_family(config)
    if family is None:
        raise DescriptorError(f"not an interactive mask model we know: {config.get('id')!r}")
    data = dict(DARKTABLE_FAMILIES[family])
    data.update(id=config.get("id", folder.name), name=config.get("name", folder.name),
                description=config.get("description", ""),
                licence=config.get("license", config.get("licence", "see package")),
                source="darktable-ai", encoder="encoder.onnx", decoder="decoder.onnx",
                refine="none")
    return parse_model_json(data, folder)


def _read_object(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise DescriptorError(f"{path.name} must hold a JSON object")
    return data


def load_descriptor(folder: Path) -> ModelDescriptor:
    """The descriptor of a model folder (``model.json`` first, else darktable's config.json).

    Raises DescriptorError when there is none, it is malformed, or its ONNX files are missing.
    """
    folder = Path(folder)
    mine, theirs = folder / "model.json", folder / "config.json"
    try:
        if mine.is_file():
            desc = parse_model_json(_read_object(mine), folder)
        elif theirs.is_file():
            desc = parse_darktable_config(_read_object(theirs), folder)
        else:
            raise DescriptorError(f"{folder}: no model.json or config.json")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DescriptorError(f"{folder}: unreadable descriptor: {exc}") from exc
    except DescriptorError as exc:
        raise DescriptorError(f"{folder}: {exc}") from exc
    missing = desc.missing_files()
    if missing:
        raise DescriptorError(f"{folder}: missing {', '.join(str(p) for p in missing)}")
    return desc
