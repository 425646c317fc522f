"""SVG download into GIMP: the real gimp-console imports our file as paths, one per object,
and each path turned into a selection covers its object's mask, holes kept.

GIMP reads an SVG's ``<path>`` elements as its own paths (Paths dialog, "Import Path…"), which
is how a GIMP user takes a maskweb object into a selection. A Script-Fu batch imports the
file, selects each path in turn and fills the selection white on black into a PNG per path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskweb.export import MaskObject
from maskweb.export.svg import objects_svg
from tests.export.test_svg import H, W, iou, ring_and_box

GIMP = shutil.which("gimp-console-2.10") or shutil.which("gimp-console")
pytestmark = pytest.mark.skipif(GIMP is None, reason="gimp-console not installed "
                                "(gimp; scripts/setup --test installs it)")


def script(svg: Path, out_dir: Path) -> str:
    """Script-Fu: import ``svg``'s paths, write path-N.png (selection of path N) and
    names.txt (the paths' names, one a line)."""
    return f"""
(let* ((image (car (gimp-image-new {W} {H} RGB)))
       (layer (car (gimp-layer-new image {W} {H} RGB-IMAGE "fill" 100 LAYER-MODE-NORMAL)))
       (imported (gimp-vectors-import-from-file image "{svg}" FALSE FALSE))
       (count (car imported))
       (ids (cadr imported))
       (names (open-output-file "{out_dir}/names.txt")))
  (gimp-image-insert-layer image layer 0 0)
  (let loop ((i 0))
    (when (< i count)
      (let ((out (string-append "{out_dir}/path-" (number->string i) ".png")))
        (gimp-selection-none image)
        (gimp-context-set-foreground (list 0 0 0))
        (gimp-drawable-edit-fill layer FILL-FOREGROUND)
        (gimp-image-select-item image CHANNEL-OP-REPLACE (aref ids i))
        (gimp-context-set-foreground (list 255 255 255))
        (gimp-drawable-edit-fill layer FILL-FOREGROUND)
        (file-png-save RUN-NONINTERACTIVE image layer out out 0 9 0 0 0 0 0)
        (display (car (gimp-item-get-name (aref ids i))) names)
        (newline names))
      (loop (+ i 1))))
  (close-output-port names))
"""


def import_into_gimp(svg_text: str, tmp_path: Path) -> tuple[list[str], list[np.ndarray]]:
    """(path names, each path's selection as a bool mask) as GIMP imports ``svg_text``."""
    svg = tmp_path / "masks.svg"
    svg.write_text(svg_text, encoding="utf-8")
    assert GIMP is not None
    proc = subprocess.run(
        [GIMP, "-i", "-d", "-f", "--no-shm", "-b", script(svg, tmp_path), "-b", "(gimp-quit 0)"],
        capture_output=True, text=True, timeout=180, check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    names_file = tmp_path / "names.txt"
    assert names_file.exists(), f"GIMP wrote nothing:\n{proc.stdout}\n{proc.stderr}"
    names = names_file.read_text(encoding="utf-8").splitlines()
    masks = [np.asarray(Image.open(tmp_path / f"path-{i}.png").convert("L")) >= 128
             for i in range(len(names))]
    return names, masks


def test_gimp_imports_each_object_as_a_path_that_selects_its_mask_with_its_holes(tmp_path):
    ring, box = ring_and_box()
    svg = objects_svg([MaskObject("Ring", ring), MaskObject("Box with a hole", box)], W, H)

    names, selections = import_into_gimp(svg, tmp_path)

    assert len(names) == 2, names
    # GIMP names a path after the SVG element's id, which objects_svg makes from the name.
    assert "Ring" in names[0] and "Box" in names[1], names
    assert iou(selections[0], ring) >= 0.97
    assert iou(selections[1], box) >= 0.97
    assert not selections[0][100, 100], "the ring's hole is selected"
    assert not selections[1][100, 240], "the box's hole is selected"
    assert not (selections[0] & selections[1]).any(), "one path selects the other object"
