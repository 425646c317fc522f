"""SVG download: one ``<path>`` per object, upright, in image pixels."""

from __future__ import annotations

import re
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from maskweb.export import MaskObject, check_objects
from maskweb.segment.orientation import stored_to_upright_xy, upright_size
from maskweb.segment.vectorize import BezierPath, Region, VectorizeOptions, vectorize

__all__ = ["objects_svg", "path_data"]

FILL = "#000000"


def objects_svg(objects: Sequence[MaskObject], stored_width: int, stored_height: int,
                orientation: int = 1, options: VectorizeOptions | None = None) -> str:
    """Vectorize each object's stored-grid mask and write an upright SVG document.

    The SVG is ``width`` x ``height`` of the upright photo with a matching ``viewBox`` in
    pixels. Each object is one black ``<path fill-rule="evenodd">`` (its regions and holes
    as subpaths, so holes stay holes) whose ``id`` is made from its name and whose
    ``<title>`` is the name itself. An object with an empty mask gets a path with empty
    ``d`` (renders nothing; the object is still listed).
    """
    check_objects(objects, stored_width, stored_height)
    width, height = upright_size(stored_width, stored_height, orientation)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        "<title>maskweb masks</title>",
    ]
    used: set[str] = set()
    for obj in objects:
        regions = vectorize(obj.mask, options)
        d = path_data(regions, stored_width, stored_height, orientation)
        lines.append(
            f"<path id={quoteattr(_unique_id(obj.name, used))} fill={quoteattr(FILL)} "
            f'fill-rule="evenodd" d="{d}"><title>{escape(obj.name)}</title></path>')
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def path_data(regions: Sequence[Region], stored_width: int, stored_height: int,
              orientation: int = 1) -> str:
    """SVG path data (``M ... C ... Z`` per boundary) in upright pixel coordinates."""
    parts = []
    for region in regions:
        for path in region.paths():
            parts.append(_subpath(path, stored_width, stored_height, orientation))
    return " ".join(parts)


def _subpath(path: BezierPath, sw: int, sh: int, orientation: int) -> str:
    up = _upright(path.points, sw, sh, orientation)  # (n, 3, 2)
    corner, ctrl_in, ctrl_out = up[:, 0], up[:, 1], up[:, 2]
    n = len(up)
    out = [f"M{_f(corner[0, 0])} {_f(corner[0, 1])}"]
    for i in range(n):
        j = (i + 1) % n
        if np.array_equal(ctrl_out[i], corner[i]) and np.array_equal(ctrl_in[j], corner[j]):
            out.append(f"L{_f(corner[j, 0])} {_f(corner[j, 1])}")  # a straight edge
            continue
        out.append(f"C{_f(ctrl_out[i, 0])} {_f(ctrl_out[i, 1])} "
                   f"{_f(ctrl_in[j, 0])} {_f(ctrl_in[j, 1])} "
                   f"{_f(corner[j, 0])} {_f(corner[j, 1])}")
    out.append("Z")
    return "".join(out)


def _upright(points: np.ndarray, sw: int, sh: int, orientation: int) -> np.ndarray:
    """Stored-grid points -> upright ones: the orientation mapping is affine, so take its
    matrix from three points of :func:`stored_to_upright_xy` and apply it to them all."""
    o = np.array(stored_to_upright_xy(0.0, 0.0, sw, sh, orientation))
    ex = np.array(stored_to_upright_xy(1.0, 0.0, sw, sh, orientation)) - o
    ey = np.array(stored_to_upright_xy(0.0, 1.0, sw, sh, orientation)) - o
    return o + points[..., :1] * ex + points[..., 1:2] * ey


def _f(v: float) -> str:
    """Compact number: two decimals (1/100 px), no trailing zeros."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _unique_id(name: str, used: set[str]) -> str:
    """An XML id (letters, digits, ``-_.``, not starting with a digit), unique in the file."""
    base = "mask-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "object")
    candidate, k = base, 2
    while candidate in used:
        candidate, k = f"{base}-{k}", k + 1
    used.add(candidate)
    return candidate
