"""The bundled offline models (models/*/model.json + ONNX) keep the "sam" family contract.

Runs the real ONNX files with onnxruntime on a synthetic photo: a disc on a textured
background, so a wrong preprocessing, a wrong coordinate frame or a broken export shows up as
a mask that misses the disc.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
DESCRIPTORS = sorted(MODELS.glob("*/model.json"))
REQUIRED = {"id", "name", "family", "input_size", "resize", "normalization", "encoder",
            "decoder", "licence", "source", "description", "refine"}


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def disc_photo() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    h, w = 360, 640
    img = (rng.normal(0, 12, (h, w, 3)) + np.array([90, 140, 90])).clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (0, 250), (w, h), (150, 120, 80), -1)
    disc = np.zeros((h, w), np.uint8)
    cv2.circle(disc, (220, 170), 90, 1, -1)
    img[disc > 0] = (210, 40, 40)
    return img, disc.astype(bool)


def preprocess(img: np.ndarray, desc: dict) -> tuple[np.ndarray, float]:
    assert desc["resize"] == "pad" and desc["normalization"] == "minmax"
    size = desc["input_size"]
    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = int(h * s + 0.5), int(w * s + 0.5)
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    r = (r - r.min()) / max(float(r.max() - r.min()), 1e-8)
    out = np.zeros((size, size, 3), np.float32)
    out[:nh, :nw] = r
    return out.transpose(2, 0, 1)[None].copy(), s


def load(desc_path: Path) -> tuple[dict, ort.InferenceSession, ort.InferenceSession]:
    desc = json.loads(desc_path.read_text())
    enc = session((desc_path.parent / desc["encoder"]).resolve())
    dec = session((desc_path.parent / desc["decoder"]).resolve())
    return desc, enc, dec


def decode(dec: ort.InferenceSession, emb: np.ndarray, coords: list, labels: list,
           mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    feeds = {"image_embeddings": emb,
             "point_coords": np.array([coords], np.float32),
             "point_labels": np.array([labels], np.float32),
             "mask_input": mask if mask is not None else np.zeros((1, 1, 256, 256), np.float32),
             "has_mask_input": np.array([0.0 if mask is None else 1.0], np.float32)}
    masks, iou = dec.run(["masks", "iou_predictions"], feeds)
    return masks, iou


def iou_with(disc: np.ndarray, low_res: np.ndarray, s: float) -> float:
    h, w = disc.shape
    nh, nw = int(h * s + 0.5), int(w * s + 0.5)
    m = cv2.resize(low_res[:nh, :nw], (w, h), interpolation=cv2.INTER_LINEAR) > 0
    return float((m & disc).sum() / max((m | disc).sum(), 1))


def test_there_is_a_bundled_litemedsam() -> None:
    assert (MODELS / "litemedsam" / "model.json") in DESCRIPTORS


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_descriptor_names_existing_files_and_a_licence(desc_path: Path) -> None:
    desc = json.loads(desc_path.read_text())
    assert desc.keys() >= REQUIRED
    assert desc["id"] == desc_path.parent.name
    assert desc["family"] == "sam"
    assert desc["licence"] == "Apache-2.0"
    assert desc["refine"] in {"none", "guided", "grabcut"}
    for key in ("encoder", "decoder"):
        assert (desc_path.parent / desc[key]).resolve().is_file()
    assert (desc_path.parent / "MODEL_CARD.md").is_file()


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_onnx_pair_takes_any_number_of_points_and_returns_low_res_logits(desc_path: Path) -> None:
    desc, enc, dec = load(desc_path)
    assert [i.name for i in enc.get_inputs()] == ["image"]
    assert enc.get_inputs()[0].shape == [1, 3, 256, 256]
    x, s = preprocess(disc_photo()[0], desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    assert emb.shape == (1, 256, 64, 64) and emb.dtype == np.float32
    for n in (1, 2, 7):
        coords = [[10.0 * i, 20.0] for i in range(n)]
        masks, iou = decode(dec, emb, coords, [1] + [0] * (n - 1))
        assert masks.shape[0] == 1 and masks.shape[2:] == (256, 256)
        assert iou.shape == (1, masks.shape[1]) and masks.shape[1] in (1, 3)
        assert np.isfinite(masks).all()


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_box_around_the_disc_segments_the_disc(desc_path: Path) -> None:
    desc, enc, dec = load(desc_path)
    img, disc = disc_photo()
    x, s = preprocess(img, desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    masks, _ = decode(dec, emb, [[125 * s, 75 * s], [315 * s, 265 * s]], [2, 3])
    assert iou_with(disc, masks[0, 0], s) > 0.8


@pytest.mark.parametrize("desc_path", [p for p in DESCRIPTORS if p.parent.name != "litemedsam"],
                         ids=lambda p: p.parent.name)
def test_photo_model_finds_the_disc_from_one_click(desc_path: Path) -> None:
    """The shipped LiteMedSAM answers a click with an empty mask (IoU 0); a photo model must
    find the clicked object. One low-res click is not an exact mask (DAVIS mIoU@1 is about
    0.4-0.5 without refinement), so the bar is "mostly the disc", not a perfect edge."""
    desc, enc, dec = load(desc_path)
    img, disc = disc_photo()
    x, s = preprocess(img, desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    masks, iou = decode(dec, emb, [[220 * s, 170 * s]], [1])
    best = int(np.argmax(iou[0]))
    assert iou_with(disc, masks[0, best], s) > 0.6


# --- the int8 decoders (training/optimize_decoder.py) ----------------------------------------

ROOT = MODELS.parent


def coco_photo(name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = ROOT.parent / "shared" / "datasets" / "COCO_MVal"
    bgr = cv2.imread(str(folder / "img" / f"{name}.jpg"))
    gt = cv2.imread(str(folder / "gt" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    assert bgr is not None and gt is not None, f"COCO_MVal photo {name} is missing"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.asarray(gt > 0)


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_every_bundled_model_ships_an_int8_decoder(desc_path: Path) -> None:
    desc = json.loads(desc_path.read_text())
    int8 = desc_path.parent / desc["decoder_int8"]
    float_inputs = [i.name for i in session(desc_path.parent / desc["decoder"]).get_inputs()]
    assert [i.name for i in session(int8).get_inputs()] == float_inputs


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_shipped_int8_decoder_is_what_the_script_builds(desc_path: Path, tmp_path: Path) -> None:
    """The int8 file is a build product: rebuilding it from the float decoder with
    training/optimize_decoder.py must give a decoder that answers exactly as the shipped one."""
    import subprocess
    import sys

    desc = json.loads(desc_path.read_text())
    folder = tmp_path / desc_path.parent.name
    folder.mkdir()
    (folder / "decoder.onnx").write_bytes((desc_path.parent / desc["decoder"]).read_bytes())
    (folder / "model.json").write_text(json.dumps({**desc, "decoder": "decoder.onnx",
                                                   "decoder_int8": ""}))
    subprocess.run([sys.executable, str(ROOT / "training" / "optimize_decoder.py"), str(folder)],
                   check=True, capture_output=True)
    rebuilt = session(folder / json.loads((folder / "model.json").read_text())["decoder_int8"])
    shipped = session(desc_path.parent / desc["decoder_int8"])
    enc = session((desc_path.parent / desc["encoder"]).resolve())
    x, s = preprocess(disc_photo()[0], desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    coords, labels = [[220 * s, 170 * s], [40 * s, 300 * s]], [1, 0]
    for a, b in zip(decode(shipped, emb, coords, labels), decode(rebuilt, emb, coords, labels),
                    strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("photo", ["airplane04_000000099054", "bird01_000000229997",
                                   "skateboard06_000000559160"])
def test_int8_decoder_masks_agree_with_the_float_decoder_on_photos(photo: str) -> None:
    """Five clicks on a COCO_MVal photo, each decoded by both decoders with the float path's
    own previous mask fed back: the low-res masks must stay within IoU 0.97 of each other
    (mean 0.994 over 12 photos when the quantization was chosen)."""
    desc_path = MODELS / "litemedsam-photo" / "model.json"
    desc, enc, dec_float = load(desc_path)
    dec_int8 = session(desc_path.parent / desc["decoder_int8"])
    img, gt = coco_photo(photo)
    x, s = preprocess(img, desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    rng = np.random.default_rng(7)
    inside, outside = np.argwhere(gt), np.argwhere(~gt)
    coords: list[list[float]] = []
    labels: list[int] = []
    previous = None
    for click in range(5):
        positive = click == 0 or rng.random() < 0.7
        pool = inside if positive else outside
        y, x_ = pool[rng.integers(len(pool))]
        coords.append([(x_ + 0.5) * s, (y + 0.5) * s])
        labels.append(1 if positive else 0)
        masks_f, _ = decode(dec_float, emb, coords + [[0.0, 0.0]], labels + [-1], previous)
        masks_q, _ = decode(dec_int8, emb, coords + [[0.0, 0.0]], labels + [-1], previous)
        a, b = masks_f[0, 0] > 0, masks_q[0, 0] > 0
        assert a.any(), "the float decoder gave an empty mask: the test says nothing"
        assert (a & b).sum() / (a | b).sum() > 0.97, f"click {click + 1}"
        previous = masks_f


def optimize_script() -> Any:
    """training/optimize_decoder.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "optimize_decoder", ROOT / "training" / "optimize_decoder.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_int8_matmuls_are_exact_on_this_cpu(tmp_path: Path) -> None:
    """The int8 decoder's integer products must not saturate on this CPU, whatever it is.

    Ones times ones quantize to the extreme codes (activations 255; weights 255 unsigned, 127
    signed), so every pair of products is as large as it gets. onnxruntime's signed-weight
    kernel on AVX2 without VNNI adds such pairs into a saturating int16 and answers about half
    of K here; exact arithmetic answers K on every CPU."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, n = 512, 16
    weights = np.ones((k, n), np.float32)
    weights[::3, ::2] = 0.0  # not all-equal columns, so each has a real quantization range
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="image_tokens/MatMul")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(float_path))
    optimize_script().quantize_matmuls(float_path, int8_path, ["image_tokens/MatMul"])
    assert any(node.op_type != "MatMul" for node in onnx.load(str(int8_path)).graph.node)
    x = np.ones((64, k), np.float32)
    x[1::2, ::5] = 0.0
    (y,) = session(int8_path).run(None, {"x": x})
    np.testing.assert_allclose(y, x @ weights, rtol=2e-2)


@pytest.mark.parametrize("desc_path", DESCRIPTORS, ids=lambda p: p.parent.name)
def test_exact_rewrites_are_the_same_arithmetic(desc_path: Path, tmp_path: Path) -> None:
    """Steps 0 and 1 of training/optimize_decoder.py (no int8) must not change the logits."""
    import onnx

    script = optimize_script()
    desc, enc, dec = load(desc_path)
    rows = tmp_path / "rows.onnx"
    onnx.save(script.exact_rewrites(onnx.load(str(desc_path.parent / desc["decoder"]))),
              str(rows))
    rewritten = session(rows)
    graph = onnx.load(str(rows)).graph
    assert not any(n.name.startswith("/output_upscaling/") for n in graph.node)
    assert not any(n.op_type == "Tile" for n in graph.node)  # the constant PE stays constant
    # LiteMedSAM outputs the first of SAM's four masks: only its product is computed.
    assert any(n.name == "/upscale_rows/hyper_first" for n in graph.node)
    img, _ = disc_photo()
    x, s = preprocess(img, desc)
    (emb,) = enc.run(["image_embeddings"], {"image": x})
    previous = None
    for coords, labels in (([[220 * s, 170 * s]], [1]),
                           ([[220 * s, 170 * s], [40 * s, 300 * s], [0.0, 0.0]], [1, 0, -1]),
                           ([[125 * s, 75 * s], [315 * s, 265 * s]], [2, 3])):
        a = decode(dec, emb, coords, labels, previous)
        b = decode(rewritten, emb, coords, labels, previous)
        np.testing.assert_allclose(a[0], b[0], atol=1e-4 * max(1.0, float(np.abs(a[0]).max())))
        np.testing.assert_allclose(a[1], b[1], atol=1e-5)
        previous = a[0]
