"""A prompt's coordinates in the photo's three grids.

A prompt arrives in upright full-resolution coordinates (docs/protocol.md), is stored in the
photo's stored grid (what darktable needs), and reaches the engine in the work picture's
pixels. Nothing here touches the database.
"""

from __future__ import annotations

from typing import Any

from maskweb.photos.models import Photo
from maskweb.segment.orientation import stored_to_upright_xy, upright_to_stored_xy
from maskweb.segment.types import Box, Point, Prompts, Stroke


def _map(prompt: dict[str, Any], convert: Any) -> dict[str, Any]:
    out = dict(prompt)
    if prompt["kind"] == "point":
        out["x"], out["y"] = convert(prompt["x"], prompt["y"])
    elif prompt["kind"] == "box":
        ax, ay = convert(prompt["x0"], prompt["y0"])
        bx, by = convert(prompt["x1"], prompt["y1"])
        # A rotation can swap which corner is which: keep the box normalised.
        out.update(x0=min(ax, bx), y0=min(ay, by), x1=max(ax, bx), y1=max(ay, by))
    else:
        out["points"] = [list(convert(x, y)) for x, y in prompt["points"]]
    return out


def to_stored(prompt: dict[str, Any], photo: Photo) -> dict[str, Any]:
    return _map(prompt, lambda u, v: upright_to_stored_xy(
        u, v, photo.stored_width, photo.stored_height, photo.orientation))


def to_upright(prompt: dict[str, Any], photo: Photo) -> dict[str, Any]:
    return _map(prompt, lambda x, y: stored_to_upright_xy(
        x, y, photo.stored_width, photo.stored_height, photo.orientation))


def engine_prompts(stored: list[dict[str, Any]], photo: Photo) -> Prompts:
    """Stored-grid prompts -> the engine's Prompts in work-picture pixels."""
    sx = photo.work_width / photo.upright_width
    sy = photo.work_height / photo.upright_height
    points: list[Point] = []
    strokes: list[Stroke] = []
    box: Box | None = None
    for prompt in stored:
        p = to_upright(prompt, photo)
        if p["kind"] == "point":
            points.append(Point(p["x"] * sx, p["y"] * sy, bool(p["positive"])))
        elif p["kind"] == "box":
            box = Box(p["x0"] * sx, p["y0"] * sy, p["x1"] * sx, p["y1"] * sy)  # the last wins
        else:
            strokes.append(Stroke(tuple((x * sx, y * sy) for x, y in p["points"]),
                                  p["radius"] * (sx + sy) / 2, bool(p["positive"])))
    return Prompts(points=tuple(points), box=box, strokes=tuple(strokes))
