"""Tiny ONNX graphs with the real input/output names, shapes and prompt contracts of each
model family.

They compute something checkable rather than anything learned: the decoder answers with a
disc of known radius (in the encoder's input frame) around the positive points, so a test
fails if the engine maps coordinates, padding or feedback wrongly. What the real graphs do to
their prompts, these do too (../shared/docs/model-contracts.md):
- SAM and SAM 2.1 add 0.5 to every coordinate (the prompt encoder's shift to the pixel
  centre) and measure in the input frame; SegNext draws its clicks on the grid of whole
  input pixels (0 .. S-1), coordinates (x, y), no shift;
- darktable-ai's SAM 2.1 decoder appends the (0, 0, -1) padding point itself;
- every -1 point is a token the decoder reads: each one lowers every score by
  ``PAD_TOKEN_SCORE``, so a padding point too many or too few shows in the scores;
- SAM 2.1's two output variants: 1024 px ``masks`` upsampled in the graph plus
  ``low_res_masks``, or 256 px ``masks`` clamped to +-32;
- SegNext answers logits (no sigmoid) and reads ``prev_mask`` as a probability.
Encoders produce their real output shapes from the image's mean (cheap) so the whole
pipeline runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
F = TensorProto.FLOAT


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(
        np.asarray(value), name=name + "_v"))


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def encoder(path: Path, input_size: int, outputs: dict[str, list[int]]) -> Path:
    """image [1, 3, S, S] -> each named output filled with the image's mean (its real shape)."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["m"], keepdims=1)]
    outs = []
    for name, shape in outputs.items():
        nodes += [_const(name + "_shape", np.array(shape, np.int64)),
                  helper.make_node("Expand", ["m", name + "_shape"], [name])]
        outs.append(helper.make_tensor_value_info(name, F, shape))
    graph = helper.make_graph(
        nodes, "encoder", [helper.make_tensor_value_info("image", F,
                                                         [1, 3, input_size, input_size])], outs)
    return _save(graph, path)


def _disc_logits(nodes: list, res: int, frame: int, radii: list[float], out: str,
                 make_grid: bool = True, coords: str = "point_coords",
                 labels: str = "point_labels", grid: str = "centres") -> None:
    """Append nodes computing [1, len(radii), res, res] logits = radius - distance (in input
    frame pixels) to the nearest point labelled 1; ``res`` pixels cover ``frame`` input px.
    ``grid``: "centres" measures from each output pixel's centre ((i + 0.5) input px at
    res == frame), "indices" from its index (i), as SegNext's distance maps do.
    With ``make_grid=False`` the caller provides ``gx`` [1,1,1,w] and ``gy`` [1,1,h,1]."""
    if make_grid:
        k = res / frame
        offset = 0.5 if grid == "centres" else 0.0
        centres = ((np.arange(res, dtype=np.float32) + offset) / k).astype(np.float32)
        nodes += [_const("gx", centres.reshape(1, 1, 1, res)),
                  _const("gy", centres.reshape(1, 1, res, 1))]
    nodes += [
        _const("i0", np.array([0], np.int64)), _const("i1", np.array([1], np.int64)),
        _const("i2", np.array([2], np.int64)), _const("ax2", np.array([2], np.int64)),
        _const("ax23", np.array([2, 3], np.int64)),
        helper.make_node("Slice", [coords, "i0", "i1", "ax2"], ["px3"]),
        helper.make_node("Slice", [coords, "i1", "i2", "ax2"], ["py3"]),
        helper.make_node("Unsqueeze", ["px3", "ax2"], ["px"]),  # [1, N, 1, 1]
        helper.make_node("Unsqueeze", ["py3", "ax2"], ["py"]),
        helper.make_node("Sub", ["gx", "px"], ["dx"]),
        helper.make_node("Sub", ["gy", "py"], ["dy"]),
        helper.make_node("Mul", ["dx", "dx"], ["dx2"]),
        helper.make_node("Mul", ["dy", "dy"], ["dy2"]),
        helper.make_node("Add", ["dx2", "dy2"], ["d2"]),  # [1, N, res, res]
        _const("one", np.array(1.0, np.float32)), _const("big", np.array(1e8, np.float32)),
        helper.make_node("Equal", [labels, "one"], ["is_pos_b"]),
        helper.make_node("Cast", ["is_pos_b"], ["is_pos"], to=F),
        helper.make_node("Sub", ["one", "is_pos"], ["not_pos"]),
        helper.make_node("Mul", ["not_pos", "big"], ["pen2"]),
        helper.make_node("Unsqueeze", ["pen2", "ax23"], ["pen"]),  # [1, N, 1, 1]
        helper.make_node("Add", ["d2", "pen"], ["d2p"]),
        helper.make_node("ReduceMin", ["d2p"], ["dmin"], axes=[1], keepdims=1),
        helper.make_node("Sqrt", ["dmin"], ["dist"]),
    ]
    parts = []
    for i, r in enumerate(radii):
        nodes += [_const(f"r{i}", np.array(r, np.float32)),
                  helper.make_node("Sub", [f"r{i}", "dist"], [f"l{i}"])]
        parts.append(f"l{i}")
    nodes.append(helper.make_node("Concat", parts, [out], axis=1) if len(parts) > 1
                 else helper.make_node("Identity", parts, [out]))


# Each -1 token the decoder reads lowers every score by this much.
PAD_TOKEN_SCORE = 0.1
SAM2_VARIANTS = ("masks1024", "masks256")


def sam_decoder(path: Path, embed_inputs: dict[str, list[int]], input_size: int,
                radii: list[float], scores: list[float], low_res: int = 256,
                pads_itself: bool = False, variant: str = "low_res") -> Path:
    """SAM / SAM 2 decoder. Logits = max(radius_k - distance, mask_input if has_mask_input)
    on the low-res grid covering the padded input frame (feedback shows up as a union),
    distances from each point's coordinates + 0.5. ``pads_itself``: the graph appends the
    (0, 0, -1) point (darktable-ai's SAM 2.1). Scores: ``scores`` minus ``PAD_TOKEN_SCORE``
    for each -1 token read. ``variant``: "low_res" (masks [1, K, 256, 256], SAM 1 exports),
    "masks1024" (masks upsampled to the input size in the graph, bilinear, plus
    ``low_res_masks``) or "masks256" (masks clamped to +-32)."""
    nodes: list = []
    coords, labels = "point_coords", "point_labels"
    if pads_itself:
        nodes += [_const("pad_xy", np.zeros((1, 1, 2), np.float32)),
                  _const("pad_label", np.full((1, 1), -1.0, np.float32)),
                  helper.make_node("Concat", [coords, "pad_xy"], ["coords_padded"], axis=1),
                  helper.make_node("Concat", [labels, "pad_label"], ["labels_padded"],
                                   axis=1)]
        coords, labels = "coords_padded", "labels_padded"
    nodes += [_const("half_px", np.array(0.5, np.float32)),
              helper.make_node("Add", [coords, "half_px"], ["coords_centred"])]
    _disc_logits(nodes, low_res, input_size, radii, "discs", coords="coords_centred",
                 labels=labels)
    # Without a mask input the feedback term is -1000 (a plain 0 would clip the logits and
    # bias the upsampled edge).
    nodes += [_const("off", np.array(1000.0, np.float32)),
              _const("c1", np.array(1.0, np.float32)),
              helper.make_node("Sub", ["c1", "has_mask_input"], ["no_mask"]),
              helper.make_node("Mul", ["no_mask", "off"], ["penalty"]),
              helper.make_node("Sub", ["mask_input", "penalty"], ["fb"]),
              helper.make_node("Max", ["discs", "fb"], ["low_logits"]),
              # scores - PAD_TOKEN_SCORE * (number of -1 labels)
              _const("minus_one", np.array(-1.0, np.float32)),
              _const("pad_score", np.array(PAD_TOKEN_SCORE, np.float32)),
              _const("base_scores", np.array([scores], np.float32)),
              helper.make_node("Equal", [labels, "minus_one"], ["is_pad_b"]),
              helper.make_node("Cast", ["is_pad_b"], ["is_pad"], to=F),
              helper.make_node("ReduceSum", ["is_pad", "i1"], ["pads"], keepdims=1),
              helper.make_node("Mul", ["pads", "pad_score"], ["pad_cost"]),
              helper.make_node("Sub", ["base_scores", "pad_cost"], ["iou_predictions"])]
    k = len(radii)
    outputs = [helper.make_tensor_value_info("iou_predictions", F, [1, k])]
    if variant == "masks1024":
        up = float(input_size) / low_res
        nodes += [_const("up_scales", np.array([1.0, 1.0, up, up], np.float32)),
                  helper.make_node("Resize", ["low_logits", "", "up_scales"], ["masks"],
                                   mode="linear",
                                   coordinate_transformation_mode="half_pixel"),
                  helper.make_node("Identity", ["low_logits"], ["low_res_masks"])]
        outputs = [helper.make_tensor_value_info("masks", F, [1, k, input_size, input_size]),
                   outputs[0],
                   helper.make_tensor_value_info("low_res_masks", F, [1, k, low_res, low_res])]
    elif variant == "masks256":
        nodes += [_const("lo", np.array(-32.0, np.float32)),
                  _const("hi", np.array(32.0, np.float32)),
                  helper.make_node("Clip", ["low_logits", "lo", "hi"], ["masks"])]
        outputs.insert(0, helper.make_tensor_value_info("masks", F, [1, k, low_res, low_res]))
    elif variant == "low_res":
        nodes.append(helper.make_node("Identity", ["low_logits"], ["masks"]))
        outputs.insert(0, helper.make_tensor_value_info("masks", F, [1, k, low_res, low_res]))
    else:
        raise ValueError(f"unknown variant {variant!r}")
    inputs = [helper.make_tensor_value_info(n, F, s) for n, s in embed_inputs.items()]
    inputs += [helper.make_tensor_value_info("point_coords", F, [1, "num_points", 2]),
               helper.make_tensor_value_info("point_labels", F, [1, "num_points"]),
               helper.make_tensor_value_info("mask_input", F, [1, 1, low_res, low_res]),
               helper.make_tensor_value_info("has_mask_input", F, [1])]
    return _save(helper.make_graph(nodes, "decoder", inputs, outputs), path)


def segnext_decoder(path: Path, radius: float, input_size: int = 1024,
                    gain: float = 1.0) -> Path:
    """SegNext decoder: mask [1, 1, S, S] logits = max(gain * (radius - distance),
    20 * (prev_mask - 0.5)), distances from each input pixel's index to the clicks' (x, y):
    the real graph's disks on the grid of whole pixels. ``prev_mask`` is read as a
    probability: 0.5 is its edge."""
    nodes: list = []
    _disc_logits(nodes, input_size, input_size, [radius], "disc", grid="indices")
    nodes += [_const("half", np.array(0.5, np.float32)),
              _const("gain", np.array(20.0, np.float32)),
              _const("disc_gain", np.array(gain, np.float32)),
              helper.make_node("Mul", ["disc", "disc_gain"], ["disc_scaled"]),
              helper.make_node("Sub", ["prev_mask", "half"], ["pm0"]),
              helper.make_node("Mul", ["pm0", "gain"], ["pm"]),
              helper.make_node("Max", ["disc_scaled", "pm"], ["mask"])]
    inputs = [helper.make_tensor_value_info("image_feats", F, [1, 768, 64, 64]),
              helper.make_tensor_value_info("point_coords", F, [1, "num_points", 2]),
              helper.make_tensor_value_info("point_labels", F, [1, "num_points"]),
              helper.make_tensor_value_info("prev_mask", F, [1, 1, input_size, input_size])]
    outputs = [helper.make_tensor_value_info("mask", F, [1, 1, input_size, input_size])]
    return _save(helper.make_graph(nodes, "decoder", inputs, outputs), path)


SAM_EMBED = {"image_embeddings": [1, 256, 64, 64]}
SAM2_ENCODER_OUT = {"high_res_feats_0": [1, 32, 256, 256], "high_res_feats_1": [1, 64, 128, 128],
                    "image_embed": [1, 256, 64, 64]}
# darktable's decoder lists image_embed first (the engine matches by name, not order).
SAM2_DECODER_IN = {"image_embed": [1, 256, 64, 64], "high_res_feats_0": [1, 32, 256, 256],
                   "high_res_feats_1": [1, 64, 128, 128]}


def write_descriptor(folder: Path, **fields: object) -> Path:
    (folder / "model.json").write_text(json.dumps(fields))
    return folder


def sam_model(folder: Path, model_id: str = "tinysam", input_size: int = 256,
              resize: str = "pad", radii: tuple[float, ...] = (20.0, 40.0, 10.0),
              scores: tuple[float, ...] = (0.5, 0.9, 0.7), refine: str = "none") -> Path:
    """A SAM-family model folder with a model.json (LiteMedSAM-like: 256 input, minmax)."""
    encoder(folder / "encoder.onnx", input_size, SAM_EMBED)
    sam_decoder(folder / "decoder.onnx", SAM_EMBED, input_size, list(radii), list(scores))
    return write_descriptor(folder, id=model_id, name="Tiny SAM", family="sam",
                            input_size=input_size, resize=resize, normalization="minmax",
                            encoder="encoder.onnx", decoder="decoder.onnx", licence="MIT",
                            source="test", refine=refine)


def sam2_package(folder: Path, model_id: str = "mask-object-sam21-tiny",
                 radius: float = 80.0, variant: str = "masks256") -> Path:
    """A darktable-ai-style SAM 2.1 package: config.json + encoder.onnx + decoder.onnx, the
    decoder padding its prompts itself, in one of the two output ``variant``s."""
    encoder(folder / "encoder.onnx", 1024, SAM2_ENCODER_OUT)
    sam_decoder(folder / "decoder.onnx", SAM2_DECODER_IN, 1024, [radius / 2, radius, radius / 4],
                [0.3, 0.95, 0.5], pads_itself=True, variant=variant)
    (folder / "config.json").write_text(json.dumps(
        {"id": model_id, "name": "mask object sam 2.1 tiny", "description": "test package",
         "task": "mask", "backend": "onnx", "version": "1.0", "tiling": False}))
    return folder


def segnext_package(folder: Path, model_id: str = "mask-object-segnext-b2hq",
                    radius: float = 80.0, gain: float = 1.0) -> Path:
    encoder(folder / "encoder.onnx", 1024, {"image_feats": [1, 768, 64, 64]})
    segnext_decoder(folder / "decoder.onnx", radius, gain=gain)
    (folder / "config.json").write_text(json.dumps(
        {"id": model_id, "name": "mask segnext vitb-sax2 hq", "description": "test package",
         "task": "mask", "backend": "onnx", "version": "1.0", "tiling": False}))
    return folder


def sam_full_size_decoder(path: Path, input_size: int, radius: float) -> Path:
    """samexporter / SamOnnxModel style: takes ``orig_im_size`` [2] (H, W) and returns
    ``masks`` [1, 1, H, W] at the photo's size (disc of ``radius`` input-frame px around each
    point's coordinates + 0.5) and
    ``iou_predictions`` [1, 1]; no low-res output."""
    nodes: list = [
        _const("zero", np.array(0.0, np.float32)), _const("halfpx", np.array(0.5, np.float32)),
        _const("step", np.array(1.0, np.float32)), _const("size", np.array(float(input_size),
                                                                         np.float32)),
        _const("idx0", np.array(0, np.int64)), _const("idx1", np.array(1, np.int64)),
        helper.make_node("Gather", ["orig_im_size", "idx0"], ["H"], axis=0),
        helper.make_node("Gather", ["orig_im_size", "idx1"], ["W"], axis=0),
        helper.make_node("Max", ["H", "W"], ["longest"]),
        helper.make_node("Div", ["size", "longest"], ["s"]),
        helper.make_node("Range", ["zero", "H", "step"], ["ry"]),
        helper.make_node("Range", ["zero", "W", "step"], ["rx"]),
        helper.make_node("Add", ["ry", "halfpx"], ["cy"]),
        helper.make_node("Add", ["rx", "halfpx"], ["cx"]),
        helper.make_node("Mul", ["cy", "s"], ["sy"]),
        helper.make_node("Mul", ["cx", "s"], ["sx"]),
        _const("shape_y", np.array([1, 1, -1, 1], np.int64)),
        _const("shape_x", np.array([1, 1, 1, -1], np.int64)),
        helper.make_node("Reshape", ["sy", "shape_y"], ["gy"]),
        helper.make_node("Reshape", ["sx", "shape_x"], ["gx"]),
    ]
    nodes += [_const("half_px", np.array(0.5, np.float32)),
              helper.make_node("Add", ["point_coords", "half_px"], ["coords_centred"])]
    _disc_logits(nodes, 0, input_size, [radius], "masks", make_grid=False,
                 coords="coords_centred")
    nodes.append(_const("iou_predictions", np.array([[0.8]], np.float32)))
    inputs = [helper.make_tensor_value_info("image_embeddings", F, [1, 256, 64, 64]),
              helper.make_tensor_value_info("point_coords", F, [1, "num_points", 2]),
              helper.make_tensor_value_info("point_labels", F, [1, "num_points"]),
              helper.make_tensor_value_info("mask_input", F, [1, 1, 256, 256]),
              helper.make_tensor_value_info("has_mask_input", F, [1]),
              helper.make_tensor_value_info("orig_im_size", F, [2])]
    outputs = [helper.make_tensor_value_info("masks", F, [1, 1, "H", "W"]),
               helper.make_tensor_value_info("iou_predictions", F, [1, 1])]
    return _save(helper.make_graph(nodes, "decoder", inputs, outputs), path)
