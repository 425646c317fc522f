"""ONNX model families behind the Segmenter interface: SAM (SAM, MobileSAM, LiteMedSAM),
SAM 2.1 and SegNext, as exported by segment-anything / samexporter / darktable-ai.

Frames. The encoder sees the photo resized to ``input_size``: "pad" (longest side to
input_size, zero padding bottom/right, scale s = input_size / max(H, W) on both axes) or
"stretch" (sx = input_size / W, sy = input_size / H). Prompt coordinates go to the decoder in
that input frame, by the descriptor's ``points`` convention (``descriptor.POINT_CONVENTIONS``:
x * s for maskweb's LiteMedSAM, (x - 0.5) * s for SAM 2.1, whole pixels for SegNext); box
corners go as x * s. Decoder masks cover the whole input frame (padding included) at their own
resolution (256 for SAM's low-res logits, 1024 for SegNext), or, for exports that take
``orig_im_size``, the original photo; they are mapped back with pixel-centre-exact bilinear
resampling of the LOGITS, as the reference predictors do.

Decoder contract, by input name (anything else is an encoder output, matched by name):
- ``point_coords [1, N, 2]``, ``point_labels [1, N]``: 1 foreground, 0 background, 2 / 3 box
  corners (first, as SAM2ImagePredictor puts them), -1 padding: the client appends a
  (0, 0, -1) point when there is no box only where the descriptor says ``pad_point`` (SAM 1
  exports; darktable-ai's SAM 2.1 graph pads itself);
- ``mask_input [1, 1, 256, 256]`` + ``has_mask_input [1]`` (SAM, SAM 2): the previous best
  low-res logits (SAM 2: clamped to +-32, as its predictor returns them); ``prev_mask [1, 1,
  S, S]`` (SegNext): the sigmoid of its previous logits, as its reference predictor feeds
  back;
- ``orig_im_size [2]`` (optional): (H, W).
Outputs: ``masks`` / ``mask`` logits [1, K, h, w] (SegNext's too: there is no sigmoid in its
graph), ``iou_predictions [1, K]`` (absent for SegNext), optionally ``low_res_masks``: then
the candidates are read from those (one interpolation to the photo, as the reference does;
the 1024 px ``masks`` are the same logits upsampled once more) and they are the feedback.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from maskweb.segment.classical import as_rgb_uint8, refine_with_grabcut
from maskweb.segment.descriptor import ModelDescriptor
from maskweb.segment.postprocess import (
    clean_mask,
    guide_image,
    refine_guided,
    resample,
    sigmoid,
)
from maskweb.segment.prompts import all_points, clamp_point
from maskweb.segment.providers import decoder_on_gpu, decoder_precision, make_session
from maskweb.segment.types import Box, Candidate, Embedding, Point, Prediction, Prompts

PROMPT_INPUTS = {"point_coords", "point_labels", "mask_input", "has_mask_input", "prev_mask",
                 "orig_im_size"}
GUIDE_ARRAY = "_guide"
# SAM2ImagePredictor clamps the low-res logits it returns for feeding back to this.
SAM2_FEEDBACK_CLAMP = 32.0
# A guide for edge refinement is kept with ONNX embeddings up to this size: enough for the
# edge, and it keeps the cached embedding small next to the features.
ONNX_GUIDE_MAX_SIDE = 1024


def preprocess(image: np.ndarray, size: int, resize: str,
               normalization: str | dict[str, list[float]]) -> tuple[np.ndarray, float, float]:
    """uint8 RGB (H, W, 3) -> float32 NCHW [1, 3, size, size] and the scales (sx, sy)."""
    h, w = image.shape[:2]
    if resize == "pad":
        s = size / max(h, w)
        sx = sy = s
        nw, nh = min(size, max(1, round(w * s))), min(size, max(1, round(h * s)))
    else:
        sx, sy = size / w, size / h
        nw, nh = size, size
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp).astype(np.float32)
    if normalization == "minmax":
        lo, hi = float(resized.min()), float(resized.max())
        resized = (resized - lo) / max(hi - lo, 1e-8)
    elif normalization == "unit":
        resized = resized / 255.0
    elif isinstance(normalization, dict):
        mean = np.asarray(normalization["mean"], np.float32)
        std = np.asarray(normalization["std"], np.float32)
        resized = np.asarray((resized - mean) / std, np.float32)
    else:  # pragma: no cover - descriptors are validated
        raise ValueError(f"bad normalization {normalization!r}")
    out = np.zeros((1, 3, size, size), np.float32)  # padding is 0 after normalization
    out[0, :, :nh, :nw] = resized.transpose(2, 0, 1)
    return out, sx, sy


def _match_encoder_output(name: str, available: list[str]) -> str | None:
    """Decoder input name -> encoder output name: exact, else one contains the other
    (darktable's SAM 2 encoder says ``image_embed`` where some decoders say
    ``image_embeddings``)."""
    if name in available:
        return name
    for candidate in available:
        if candidate in name or name in candidate:
            return candidate
    return None


def _numpy_dtype(ort_type: str) -> Any:
    return {"tensor(float)": np.float32, "tensor(float16)": np.float16,
            "tensor(double)": np.float64, "tensor(int64)": np.int64,
            "tensor(int32)": np.int32}.get(ort_type, np.float32)


def _static(dim: Any, default: int) -> int:
    return dim if isinstance(dim, int) and dim > 0 else default


@dataclass
class DecoderAnswer:
    """One decode before thresholding: ``logits`` [K, H, W] float32 at the photo's size, best
    first, with their ``scores`` [K]; ``feedback`` is what the next decode of the same object
    gets as ``previous`` (see the module docstring); ``points`` and ``box`` are the prompts as
    the decoder read them (clamped into the photo, strokes sampled)."""

    logits: np.ndarray
    scores: np.ndarray
    feedback: np.ndarray | None
    points: list[Point]
    box: Box | None


class OnnxSegmenter:
    """One ONNX model (encoder + decoder sessions), built once per process.

    Sessions start lazily: a web process that only decodes never loads the encoder, a worker
    that only encodes never loads the decoder. ``decode`` is thread-safe (onnxruntime's
    ``run`` is).
    """

    def __init__(self, descriptor: ModelDescriptor, precision: str | None = None) -> None:
        self.descriptor = descriptor
        self.precision = precision  # of the CPU decoder: "int8" / "float"; None: from the env
        self.model_id = descriptor.id
        self.family = descriptor.family
        self._lock = threading.Lock()
        self._encoder: Any = None
        self._decoder: Any = None

    # -- sessions ---------------------------------------------------------------------------
    @property
    def encoder(self) -> Any:
        with self._lock:
            if self._encoder is None:
                self._encoder = make_session(self.descriptor.encoder_path, "encoder")
            return self._encoder

    @property
    def decoder(self) -> Any:
        with self._lock:
            if self._decoder is None:
                self._decoder = make_session(self.decoder_file(), "decoder")
            return self._decoder

    def decoder_file(self) -> Path:
        """The model's int8 decoder if it has one and decodes on the CPU, else its float one."""
        d = self.descriptor
        int8 = d.decoder_int8_path
        if int8 is None or (self.precision or decoder_precision()) == "float" \
                or decoder_on_gpu():
            return d.decoder_path
        return int8

    def warm_up(self, part: str = "decoder") -> None:
        """Starts the encoder or the decoder and runs it twice on dummy input.

        onnxruntime's first runs of a session are slow: LiteMedSAM's encoder on one thread
        took 1.5 s and 1.8 s, then 1.2 s for every photo after; its decoder's first run, with
        loading, 0.57 s against 0.08 s. The first photo or click that a freshly started
        process serves should not pay for that.
        """
        size = self.descriptor.input_size
        if part == "encoder":
            for _ in range(2):
                self.encode(np.full((size, size, 3), 128, np.uint8))
            return
        session = self.decoder
        feeds = {}
        for inp in session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            dtype = _numpy_dtype(inp.type)
            feeds[inp.name] = (np.array([size, size], dtype) if inp.name == "orig_im_size"
                               else np.zeros(shape, dtype))
        for _ in range(2):
            session.run(None, feeds)

    # -- encode -----------------------------------------------------------------------------
    def encode(self, image: np.ndarray,
               progress: Callable[[float], None] | None = None) -> Embedding:
        rgb = as_rgb_uint8(image)
        h, w = rgb.shape[:2]
        d = self.descriptor
        tensor, sx, sy = preprocess(rgb, d.input_size, d.resize, d.normalization)
        if progress:
            progress(0.1)
        session = self.encoder
        (inp,) = session.get_inputs()[:1]
        outputs = session.run(None, {inp.name: tensor.astype(_numpy_dtype(inp.type))})
        if progress:
            progress(0.95)
        arrays = {o.name: np.asarray(v, dtype=np.float32)
                  for o, v in zip(session.get_outputs(), outputs, strict=True)}
        if d.refine != "none":
            arrays[GUIDE_ARRAY] = guide_image(rgb, ONNX_GUIDE_MAX_SIDE)
        if progress:
            progress(1.0)
        return Embedding(model_id=self.model_id, image_size=(h, w), arrays=arrays,
                         meta={"family": self.family, "input_size": d.input_size,
                               "resize": d.resize, "scale_x": sx, "scale_y": sy})

    # -- decode -----------------------------------------------------------------------------
    def decode(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> Prediction:
        h, w = embedding.image_size
        if embedding.model_id == self.model_id and prompts.is_empty():
            return Prediction([Candidate(np.zeros((h, w), bool), 0.0)], None)
        answer = self.logits(embedding, prompts, previous)
        guide = embedding.arrays.get(GUIDE_ARRAY)
        candidates = [Candidate(self._finish(full, answer.points, answer.box, guide), score)
                      for full, score in zip(answer.logits, answer.scores, strict=True)]
        return Prediction(candidates, answer.feedback)

    def logits(self, embedding: Embedding, prompts: Prompts,
               previous: Prediction | None = None) -> DecoderAnswer:
        """The decoder's candidates as logits at the photo's size, best first, before any
        refinement or clean-up: what ``decode`` thresholds, and what a reference
        implementation's logits are compared with (tests/golden)."""
        if embedding.model_id != self.model_id:
            raise ValueError(f"embedding is for {embedding.model_id!r}, not {self.model_id!r}")
        h, w = embedding.image_size
        sx, sy = _meta_float(embedding, "scale_x"), _meta_float(embedding, "scale_y")
        points = [clamp_point(p, h, w) for p in all_points(prompts)]
        box = prompts.box.ordered() if prompts.box is not None else None
        feeds = self._feeds(embedding, points, box, previous, sx, sy)
        session = self.decoder
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(None, feeds), strict=True))
        masks, scores, low_res = self._read_outputs(outputs, (h, w))
        order = self._candidate_order(scores, points, box)
        full_size = masks.shape[-2:] == (h, w) and "orig_im_size" in feeds
        k = masks.shape[-1] / self.descriptor.input_size
        logits = np.stack([masks[0, i] if full_size
                           else resample(masks[0, i], sx * k, sy * k, (h, w)) for i in order])
        best = order[0]
        feedback = None
        if self.family == "segnext":
            # The reference predictor feeds back the sigmoid of its last logits.
            feedback = sigmoid(masks[0, best])
        elif low_res is not None:
            feedback = low_res[0, best].astype(np.float32)
            if self.family == "sam2":
                feedback = np.clip(feedback, -SAM2_FEEDBACK_CLAMP, SAM2_FEEDBACK_CLAMP)
        return DecoderAnswer(logits, scores[order].astype(np.float32), feedback, points, box)

    def _input_point(self, x: float, y: float, sx: float, sy: float) -> tuple[float, float]:
        """A continuous photo point in the decoder's input frame, by the descriptor's
        ``points`` convention (see descriptor.POINT_CONVENTIONS)."""
        convention = self.descriptor.points
        if convention == "pixel_index":
            return (x - 0.5) * sx, (y - 0.5) * sy
        if convention == "whole_pixel":
            return (float(int(math.floor(x) * sx + 0.5)), float(int(math.floor(y) * sy + 0.5)))
        return x * sx, y * sy

    def _feeds(self, embedding: Embedding, points: list[Point], box: Box | None,
               previous: Prediction | None, sx: float, sy: float) -> dict[str, np.ndarray]:
        session = self.decoder
        enc_names = [n for n in embedding.arrays if n != GUIDE_ARRAY]
        coords: list[tuple[float, float]] = []
        labels: list[float] = []
        if self.family == "segnext":
            if box is not None:
                # SegNext has no box prompt: the box's centre becomes a click (and the
                # result is cropped to the box afterwards).
                points = [*points, Point((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)]
        elif box is not None:
            coords += [(box.x0 * sx, box.y0 * sy), (box.x1 * sx, box.y1 * sy)]
            labels += [2.0, 3.0]
        for p in points:
            coords.append(self._input_point(p.x, p.y, sx, sy))
            labels.append(1.0 if p.positive else 0.0)
        if box is None and self.descriptor.pad_point:
            coords.append((0.0, 0.0))  # SAM 1 ONNX exports' padding point
            labels.append(-1.0)
        h, w = embedding.image_size
        feeds: dict[str, np.ndarray] = {}
        for inp in session.get_inputs():
            name, dtype = inp.name, _numpy_dtype(inp.type)
            if name == "point_coords":
                feeds[name] = np.array([coords], dtype=dtype)
            elif name == "point_labels":
                feeds[name] = np.array([labels], dtype=dtype)
            elif name in ("mask_input", "prev_mask"):
                default = 256 if name == "mask_input" else self.descriptor.input_size
                size = (_static(inp.shape[2], default), _static(inp.shape[3], default))
                fb = previous.feedback if previous is not None else None
                usable = fb is not None and fb.shape[-2:] == size
                arr = (np.asarray(fb, np.float32).reshape(1, 1, *size) if usable
                       else np.zeros((1, 1, *size), np.float32))
                feeds[name] = arr.astype(dtype)
                if "has_mask_input" in {i.name for i in session.get_inputs()}:
                    feeds["has_mask_input"] = np.array([1.0 if usable else 0.0], dtype=dtype)
            elif name == "has_mask_input":
                continue  # set with mask_input
            elif name == "orig_im_size":
                feeds[name] = np.array([h, w], dtype=dtype)
            else:
                source = _match_encoder_output(name, enc_names)
                if source is None:
                    raise ValueError(f"{self.model_id}: decoder input {name!r} has no matching "
                                     f"encoder output (have {enc_names})")
                enc_names.remove(source)
                feeds[name] = embedding.arrays[source].astype(dtype, copy=False)
        if "has_mask_input" in {i.name for i in session.get_inputs()} and \
                "has_mask_input" not in feeds:
            feeds["has_mask_input"] = np.array([0.0], np.float32)
        return feeds

    @staticmethod
    def _read_outputs(outputs: dict[str, np.ndarray], photo_hw: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(candidate logits [1, K, h, w], scores [K], low-res logits to feed back or None).

        Where the export gives ``low_res_masks`` beside ``masks`` that are not already at the
        photo's size, the candidates are the low-res logits: the reference predictors
        interpolate those once to the photo; the graph's upsampled copy would be a second
        interpolation."""
        masks = outputs.get("masks", outputs.get("mask"))
        if masks is None:
            masks = next(v for v in outputs.values() if np.ndim(v) == 4)
        masks = np.asarray(masks, np.float32)
        if masks.ndim == 3:
            masks = masks[None]
        k = masks.shape[1]
        scores_out = outputs.get("iou_predictions", outputs.get("scores"))
        scores = (np.asarray(scores_out, np.float32).reshape(-1)[:k] if scores_out is not None
                  else np.ones(k, np.float32))
        low = outputs.get("low_res_masks")
        if low is not None:
            low = np.asarray(low, np.float32)
            if masks.shape[-2:] != photo_hw:
                masks = low
        elif masks.shape[-1] == 256:
            low = masks  # the low-res logits are the masks themselves (MODEL helper's export)
        return masks, scores, low

    @staticmethod
    def _candidate_order(scores: np.ndarray, points: list[Point], box: Box | None) -> list[int]:
        """Best first. With SAM's 4 outputs, token 0 is the single-mask answer, meant for
        several prompts; tokens 1..3 are the multimask answers meant for one ambiguous click."""
        k = len(scores)
        if k == 4:
            multi = sorted(range(1, 4), key=lambda i: -scores[i])
            single_click = len(points) == 1 and box is None
            return multi + [0] if single_click else [0, *multi]
        return sorted(range(k), key=lambda i: -scores[i])

    def _finish(self, logits_full: np.ndarray, points: list[Point], box: Box | None,
                guide: np.ndarray | None) -> np.ndarray:
        refine = self.descriptor.refine
        if refine == "guided" and guide is not None:
            mask = refine_guided(sigmoid(logits_full), guide) > 0.5
        elif refine == "grabcut" and guide is not None:
            mask = refine_with_grabcut(sigmoid(logits_full), guide, points, box)
        else:
            mask = logits_full > 0.0
        return clean_mask(mask, points, box)


def _meta_float(embedding: Embedding, key: str) -> float:
    value = embedding.meta.get(key)
    if not isinstance(value, (int, float)):
        raise ValueError(f"embedding lacks {key!r}: not made by an ONNX model's encode")
    return float(value)

