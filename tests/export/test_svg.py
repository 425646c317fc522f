"""SVG download: a real renderer (rsvg-convert) draws our paths back onto the mask."""

from __future__ import annotations

import io
import shutil
import subprocess
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from maskweb.export import MaskObject
from maskweb.export.svg import objects_svg
from maskweb.segment.orientation import to_upright

RSVG = shutil.which("rsvg-convert")
needs_rsvg = pytest.mark.skipif(RSVG is None, reason="rsvg-convert not installed "
                                "(librsvg2-bin; scripts/setup --test installs it)")
SVG = "{http://www.w3.org/2000/svg}"
W, H = 300, 200


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def ring_and_box() -> tuple[np.ndarray, np.ndarray]:
    ring = disc(100, 100, 70) & ~disc(100, 100, 30)
    box = np.zeros((H, W), bool)
    box[20:180, 200:280] = True
    box[90:110, 220:260] = False  # a rectangular hole
    return ring, box


def render(svg: str) -> np.ndarray:
    """Coverage (alpha) of the rendered SVG, as a bool mask at 50 %."""
    assert RSVG is not None
    png = subprocess.run([RSVG, "--format", "png"], input=svg.encode(), capture_output=True,
                         check=True, timeout=60).stdout
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))[..., 3] >= 128


@needs_rsvg
def test_rsvg_draws_the_objects_back_onto_the_mask() -> None:
    ring, box = ring_and_box()
    svg = objects_svg([MaskObject("ring", ring), MaskObject("box", box)], W, H)
    drawn = render(svg)
    assert drawn.shape == (H, W)
    assert not drawn[100, 100], "the ring's hole stays a hole (evenodd)"
    assert not drawn[100, 240], "the box's hole stays a hole"
    assert iou(drawn, ring | box) >= 0.98


@needs_rsvg
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_svg_is_upright_like_the_photo_in_a_viewer(orientation: int) -> None:
    ring, box = ring_and_box()
    svg = objects_svg([MaskObject("ring", ring), MaskObject("box", box)], W, H, orientation)
    drawn = render(svg)
    expected = to_upright(ring | box, orientation)
    assert drawn.shape == expected.shape
    assert iou(drawn, expected) >= 0.98


def test_document_has_size_viewbox_and_one_named_path_per_object() -> None:
    ring, box = ring_and_box()
    svg = objects_svg([MaskObject("my ring", ring), MaskObject("my ring", box),
                       MaskObject("nothing", np.zeros((H, W), bool))], W, H, orientation=6)
    root = ET.fromstring(svg)
    assert (root.get("width"), root.get("height")) == ("200", "300")  # upright
    assert root.get("viewBox") == "0 0 200 300"
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 3
    assert [p.get("id") for p in paths] == ["mask-my-ring", "mask-my-ring-2", "mask-nothing"]
    assert [p.findtext(f"{SVG}title") for p in paths] == ["my ring", "my ring", "nothing"]
    assert all(p.get("fill-rule") == "evenodd" for p in paths)
    assert paths[0].get("d", "").count("M") == 2  # outer + hole
    assert paths[2].get("d") == ""  # an empty mask: listed, draws nothing


def test_markup_in_names_is_escaped() -> None:
    svg = objects_svg([MaskObject('<script>"x"&', disc(50, 50, 20))], W, H)
    root = ET.fromstring(svg)
    assert root.findtext(f"{SVG}path/{SVG}title") == '<script>"x"&'
    assert "<script>" not in svg


def test_mask_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="stored grid"):
        objects_svg([MaskObject("x", np.zeros((W, H), bool))], W, H)
