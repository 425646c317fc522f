"""Prompts from the outside world: strict validation, then conversion between grids.

A prompt arrives in upright full-resolution coordinates (docs/protocol.md), is stored in the
photo's stored grid (what darktable needs), and reaches the engine in the work picture's
pixels. Nothing here touches the database.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings

from maskweb.photos.models import Photo
from maskweb.segment.orientation import stored_to_upright_xy, upright_to_stored_xy
from maskweb.segment.types import Box, Point, Prompts, Stroke


class ProtocolError(Exception):
    """Bad input from a client: ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def number(data: dict[str, Any], field: str) -> float:
    value = data.get(field)
    # bool is an int in Python; a JSON true is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("bad_field", f"'{field}' must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ProtocolError("bad_field", f"'{field}' must be finite (no NaN or Infinity)")
    return value


def flag(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{field}' must be true or false")
    return value


def _inside(photo: Photo, x: float, y: float, what: str) -> None:
    if not (0 <= x <= photo.upright_width and 0 <= y <= photo.upright_height):
        raise ProtocolError("out_of_bounds", f"{what} ({x:g}, {y:g}) is outside the "
                            f"{photo.upright_width}x{photo.upright_height} picture")


def parse_upright(data: Any, photo: Photo) -> dict[str, Any]:
    """Validates one prompt object (upright coordinates); returns a clean copy."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_field", "'prompt' must be an object")
    kind = data.get("kind")
    if kind == "point":
        x, y = number(data, "x"), number(data, "y")
        _inside(photo, x, y, "the point")
        return {"kind": "point", "x": x, "y": y, "positive": flag(data, "positive", True)}
    if kind == "box":
        x0, y0, x1, y1 = (number(data, f) for f in ("x0", "y0", "x1", "y1"))
        _inside(photo, x0, y0, "the box corner")
        _inside(photo, x1, y1, "the box corner")
        if x0 == x1 or y0 == y1:
            raise ProtocolError("bad_field", "the box has no area")
        return {"kind": "box", "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    if kind == "stroke":
        points = data.get("points")
        if not isinstance(points, list) or not points:
            raise ProtocolError("bad_field", "'points' must be a non-empty list of [x, y]")
        if len(points) > settings.WS_MAX_STROKE_POINTS:
            raise ProtocolError("too_many_points", f"a stroke has at most "
                                f"{settings.WS_MAX_STROKE_POINTS} points, not {len(points)}")
        clean = []
        for item in points:
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise ProtocolError("bad_field", "each stroke point must be [x, y]")
            x, y = number({"x": item[0]}, "x"), number({"y": item[1]}, "y")
            _inside(photo, x, y, "the stroke point")
            clean.append([x, y])
        radius = number(data, "radius")
        if not 0 < radius <= max(photo.upright_width, photo.upright_height):
            raise ProtocolError("bad_field", "'radius' must be > 0 and within the picture")
        return {"kind": "stroke", "points": clean, "radius": radius,
                "positive": flag(data, "positive", True)}
    raise ProtocolError("bad_field", "'kind' must be 'point', 'box' or 'stroke'")


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
