"""The golden reference test: maskweb's engine against SAM2ImagePredictor, the real SAM 2.1
architecture with seeded random weights (../shared/docs/model-contracts.md).

The torch side runs in its own venv (``.venv-golden``, built by ``scripts/setup --test``;
torch never enters the app's venv): ``training/sam21_random.py`` exports SAM 2.1 tiny to
ONNX with darktable-ai's names, shapes and in-graph steps, in both output variants, packs
each as a darktable-ai ``.dtmodel`` with a ``versions.json``, and records the reference
predictor's logits, scores and low-res masks for the cases below. That build runs once per
cache key (the script, the cases and the photos) under ``build/golden/``, about a minute and a
half on this 2-core machine; CI's fresh clone builds it once.

This side installs both packages through ``models install``'s code from a server on
loopback and decodes the same prompts with ``OnnxSegmenter``, each case twice: first alone,
then with the previous best mask fed back, as SAM2ImagePredictor's users do.

- Square photo (1024 x 1024: the reference's resize and ours are both the identity, pad and
  stretch agree): logits and scores within 1e-4.
- Non-square photo (900 x 600): the prompt contract (stretched frame, sx != sy, clicks and
  box corners, the padding point, the feedback, the logits' interpolation back to the photo)
  is held to the same 1e-4 by decoding the embedding of the reference's own encoder input.
  As the app runs (its own resize, on uint8 with OpenCV; the reference resizes in float with
  torchvision's antialiased bilinear) the photo reaches the encoder a little differently, so
  the logits are held to a bound: within a tenth of what padding the photo instead, as
  darktable does, would change.
Random weights give tiny logits, so logits and scores are compared, not masks. The figures
go to ``test-artifacts/golden-sam21.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from maskweb.segment.descriptor import load_descriptor
from maskweb.segment.install import install
from maskweb.segment.onnx_engine import OnnxSegmenter
from maskweb.segment.types import Box, Embedding, Point, Prediction, Prompts

REPO = Path(__file__).resolve().parents[2]
GOLDEN_PYTHON = REPO / ".venv-golden" / "bin" / "python"
SCRIPT = REPO / "training" / "sam21_random.py"
CACHE = REPO / "build" / "golden"
ARTIFACTS = REPO / "test-artifacts"
VARIANTS = ("masks1024", "masks256")
STEPS = 2  # each case alone, then with its best mask fed back
SQUARE_TOLERANCE = 1e-4

pytestmark = pytest.mark.timeout(1800)  # the first test builds the packages (minutes)


def photo(width: int, height: int, seed: int) -> np.ndarray:
    """A deterministic photo-like picture: smooth colour fields, a few shapes, fine noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 64 + 2, width // 64 + 2, 3)).astype(np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, centre, int(rng.integers(height // 12, height // 4)), colour, -1)
    noise = rng.integers(-8, 9, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


PHOTOS = {"square": (1024, 1024, 1), "wide": (900, 600, 2)}  # width, height, seed


def cases_for(width: int, height: int) -> dict[str, dict[str, object]]:
    """Prompts in the reference's units: clicks are pixel indices (c, r, label), the box XYXY."""
    def px(fx: float, fy: float) -> list[int]:
        return [int(fx * width), int(fy * height)]

    box = [*px(0.25, 0.3), *px(0.7, 0.8)]
    return {
        "click": {"points": [[*px(0.45, 0.5), 1]]},
        "click+background": {"points": [[*px(0.45, 0.5), 1], [*px(0.8, 0.2), 0]]},
        "box": {"box": box},
        "box+click": {"points": [[*px(0.5, 0.55), 1]], "box": box},
    }


def engine_prompts(case: dict[str, object]) -> Prompts:
    """The same prompts as the app sends them: a click is its pixel's centre, the box as is."""
    points = tuple(Point(c + 0.5, r + 0.5, positive=bool(label))
                   for c, r, label in case.get("points", []))  # type: ignore[attr-defined]
    box = case.get("box")
    return Prompts(points=points, box=Box(*box) if box else None)  # type: ignore[misc]


@dataclasses.dataclass
class Golden:
    folder: Path
    photos: dict[str, np.ndarray]
    cases: dict[str, dict[str, dict[str, object]]]
    reference: dict[str, np.ndarray]
    build_s: float | None  # None: taken from the cache


def _build(folder: Path, photos: dict[str, np.ndarray],
           cases: dict[str, dict[str, dict[str, object]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in photos.items():
        Image.fromarray(image).save(folder / f"{name}.png")
    # The torch side reads one cases file per photo size; the photos share the case names.
    for name in photos:
        (folder / f"cases-{name}.json").write_text(json.dumps(
            {"photos": {name: f"{name}.png"}, "cases": cases[name], "steps": STEPS}))
    run = [str(GOLDEN_PYTHON), str(SCRIPT)]
    env = {**os.environ, "OMP_NUM_THREADS": str(min(2, os.cpu_count() or 1))}
    subprocess.run([*run, "export", "--size", "tiny", "--out", str(folder / "packages"),
                    "--release", str(folder / "release"),
                    *[arg for v in VARIANTS for arg in ("--variant", v)]],
                   check=True, env=env, cwd=REPO)
    for name in photos:
        subprocess.run([*run, "reference", "--size", "tiny", "--cases",
                        str(folder / f"cases-{name}.json"),
                        "--out", str(folder / f"reference-{name}.npz")],
                       check=True, env=env, cwd=REPO)


@pytest.fixture(scope="session")
def golden() -> Golden:
    if not GOLDEN_PYTHON.is_file():
        pytest.fail(f"{GOLDEN_PYTHON} is missing: `scripts/setup --test` builds it (torch CPU, "
                    "sam2==1.1.0); the golden reference test cannot run without it")
    photos = {name: photo(w, h, seed) for name, (w, h, seed) in PHOTOS.items()}
    cases = {name: cases_for(w, h) for name, (w, h, _) in PHOTOS.items()}
    key = hashlib.sha256()
    key.update(SCRIPT.read_bytes())
    key.update(json.dumps(cases, sort_keys=True).encode())
    for image in photos.values():
        key.update(image.tobytes())
    folder = CACHE / key.hexdigest()[:16]
    build_s = None
    if not (folder / "done").is_file():
        started = time.perf_counter()
        _build(folder, photos, cases)
        build_s = time.perf_counter() - started
        (folder / "done").write_text(f"{build_s:.1f}\n")
    reference: dict[str, np.ndarray] = {}
    for name in photos:
        with np.load(folder / f"reference-{name}.npz") as data:
            reference.update({k: data[k] for k in data.files})
    return Golden(folder, photos, cases, reference, build_s)


@pytest.fixture(scope="session")
def release_url(golden: Golden) -> Iterator[str]:
    """The packages and their versions.json on a server on loopback, as a release."""
    release = golden.folder / "release"

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    def handler(*args: object, **kwargs: object) -> Quiet:
        return Quiet(*args, directory=str(release), **kwargs)  # type: ignore[arg-type]

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def engines(release_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, OnnxSegmenter]:
    """Each variant installed by ``models install``'s code and loaded as the app loads it."""
    dest = tmp_path_factory.mktemp("models")
    loaded = {}
    for variant in VARIANTS:
        folder = install(f"mask-object-sam21-tiny-{variant}", url=release_url, dest=dest)
        loaded[variant] = OnnxSegmenter(load_descriptor(folder), precision="float")
    return loaded


@dataclasses.dataclass
class Differences:
    logits: float
    scores: float
    logit_range: float  # the reference's largest |logit|, for scale


def compare(seg: OnnxSegmenter, embedding: Embedding, golden: Golden, photo_name: str,
            case_name: str) -> list[Differences]:
    """Each step of a case: the engine's candidates (best first) against the reference's
    tokens ordered by its own scores, the engine feeding back its own previous answer."""
    prompts = engine_prompts(golden.cases[photo_name][case_name])
    previous: Prediction | None = None
    out = []
    for step in range(STEPS):
        key = f"{photo_name}/{case_name}/{step}"
        ref_masks = golden.reference[f"{key}/masks"]
        ref_scores = golden.reference[f"{key}/scores"]
        order = np.argsort(-ref_scores, kind="stable")
        answer = seg.logits(embedding, prompts, previous)
        assert answer.logits.shape == ref_masks.shape
        out.append(Differences(
            logits=float(np.abs(answer.logits - ref_masks[order]).max()),
            scores=float(np.abs(answer.scores - ref_scores[order]).max()),
            logit_range=float(np.abs(ref_masks).max())))
        previous = Prediction([], answer.feedback)
    return out


def reference_embedding(seg: OnnxSegmenter, golden: Golden, photo_name: str) -> Embedding:
    """The embedding of the reference's own encoder input (its resize and normalisation), in
    the frame the engine's encode records for a stretched photo."""
    image = golden.photos[photo_name]
    h, w = image.shape[:2]
    tensor = golden.reference[f"{photo_name}/input"].astype(np.float32)
    session = seg.encoder
    outputs = session.run(None, {session.get_inputs()[0].name: tensor})
    arrays = {o.name: np.asarray(v, np.float32)
              for o, v in zip(session.get_outputs(), outputs, strict=True)}
    return Embedding(model_id=seg.model_id, image_size=(h, w), arrays=arrays,
                     meta={"family": "sam2", "input_size": 1024, "resize": "stretch",
                           "scale_x": 1024 / w, "scale_y": 1024 / h})


FIGURES: dict[tuple[str, str, str, str], list[Differences]] = {}


@pytest.fixture(scope="session", autouse=True)
def _write_figures(golden: Golden) -> Iterator[None]:
    yield
    if not FIGURES:
        return
    lines = ["# Golden reference test: OnnxSegmenter vs SAM2ImagePredictor (SAM 2.1 tiny, "
             "seeded random weights)", "",
             "build of the packages and reference answers: "
             + (f"{golden.build_s:.0f} s" if golden.build_s is not None else "cached"), "",
             "| variant | photo | encoder input | case | max logit diff (alone / fed back) "
             "| max score diff (alone / fed back) | reference max abs logit |",
             "|---|---|---|---|---|---|---|"]
    for (variant, photo_name, source, case), diffs in sorted(FIGURES.items()):
        lines.append(
            f"| {variant} | {photo_name} | {source} | {case} | "
            + " / ".join(f"{d.logits:.2e}" for d in diffs) + " | "
            + " / ".join(f"{d.scores:.2e}" for d in diffs) + " | "
            + f"{max(d.logit_range for d in diffs):.3f} |")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "golden-sam21.md").write_text("\n".join(lines) + "\n")


CASES = ("click", "click+background", "box", "box+click")


@pytest.mark.parametrize("variant", VARIANTS)
def test_square_photo_matches_the_reference_predictor(golden, engines, variant):
    seg = engines[variant]
    embedding = seg.encode(golden.photos["square"])
    for case in CASES:
        diffs = compare(seg, embedding, golden, "square", case)
        FIGURES[(variant, "square 1024x1024", "the app's encode", case)] = diffs
        for step, d in enumerate(diffs):
            assert d.logits <= SQUARE_TOLERANCE, (case, step, d)
            assert d.scores <= SQUARE_TOLERANCE, (case, step, d)


@pytest.mark.parametrize("variant", VARIANTS)
def test_non_square_photo_follows_the_reference_prompt_contract(golden, engines, variant):
    # The reference's own encoder input: only the prompt contract and the mapping back to a
    # 900 x 600 photo are left to differ, and they must not.
    seg = engines[variant]
    embedding = reference_embedding(seg, golden, "wide")
    for case in CASES:
        diffs = compare(seg, embedding, golden, "wide", case)
        FIGURES[(variant, "wide 900x600", "the reference's", case)] = diffs
        for step, d in enumerate(diffs):
            assert d.logits <= SQUARE_TOLERANCE, (case, step, d)
            assert d.scores <= SQUARE_TOLERANCE, (case, step, d)


def test_non_square_photo_as_the_app_encodes_it_is_stretched_like_the_reference(golden,
                                                                                 engines):
    # The app's own resize (OpenCV on uint8) against the reference's (float, antialiased):
    # the logits stay within a tenth of what padding the photo, darktable's way, changes.
    seg = engines["masks256"]
    stretched = seg.encode(golden.photos["wide"])
    padded_model = OnnxSegmenter(dataclasses.replace(seg.descriptor, resize="pad"),
                                 precision="float")
    padded = padded_model.encode(golden.photos["wide"])
    for case in CASES:
        ours = compare(seg, stretched, golden, "wide", case)
        theirs = compare(padded_model, padded, golden, "wide", case)
        FIGURES[("masks256", "wide 900x600", "the app's encode", case)] = ours
        FIGURES[("masks256", "wide 900x600", "padded (darktable's)", case)] = theirs
        for step, (d, p) in enumerate(zip(ours, theirs, strict=True)):
            assert d.logits <= 0.1 * p.logits, (case, step, d, p)
            assert d.scores <= max(0.1 * p.scores, SQUARE_TOLERANCE), (case, step, d, p)
