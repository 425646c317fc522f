"""What a client sends, checked in one place: the JSON of a socket message or an HTTP body, and
each field the services take (a prompt, a candidate index, a name, an object number...).

Every check raises ``ProtocolError`` with the protocol's error code and a message a person can
act on; the socket answers it with an ``error`` frame, the HTTP API with a JSON error (400
unless the code says otherwise). Nothing here touches the database or Redis, so a refused
input never changed anything. The socket consumer, the HTTP views and the services call these
functions and check nothing themselves: this module is the one to replace with typed schemas.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deeper than any message of the protocol needs (a stroke is 3 levels): refused before any
# code walks it. json.loads itself raises RecursionError near 1000 levels.
MAX_DEPTH = 16
NAME_LENGTH = 100
ID_LENGTH = 64


class ProtocolError(Exception):
    """Bad input from a client: ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- JSON -----------------------------------------------------------------------------------

def json_object(text: str | bytes, what: str = "A message") -> dict[str, Any]:
    """Parses a JSON object; NaN, Infinity, numbers beyond a float's range and nesting deeper
    than MAX_DEPTH are refused like malformed JSON (``bad_json``)."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ProtocolError("bad_json", f"{what} is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError("bad_json", f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", f"{what} must be a JSON object.")
    if _depth(data) > MAX_DEPTH:
        raise ProtocolError("bad_json", f"{what} is nested too deeply (at most {MAX_DEPTH} "
                            "levels).")
    return data


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def body_object(body: bytes) -> dict[str, Any]:
    """An HTTP request's JSON body; an empty body is an empty object."""
    if not body:
        return {}
    return json_object(body, "The body")


# --- socket messages ------------------------------------------------------------------------

def request_id(message: dict[str, Any]) -> str | None:
    """The message's ``id``, echoed in the replies it causes."""
    value = message.get("id")
    if value is not None and (not isinstance(value, str) or len(value) > ID_LENGTH):
        raise ProtocolError("bad_field", f"'id' must be a string of at most {ID_LENGTH} "
                            "characters")
    return value


def message_type(message: dict[str, Any], known: Any) -> str:
    """The message's ``type``, one of ``known``."""
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("unknown_type", "'type' must be a string naming the message.")
    if kind not in known:
        raise ProtocolError("unknown_type", f"Unknown message type {kind[:40]!r}.")
    return kind


def required(message: dict[str, Any], field: str) -> Any:
    if field not in message:
        raise ProtocolError("bad_field", f"'{field}' is missing")
    return message[field]


# --- fields ---------------------------------------------------------------------------------

def number(data: dict[str, Any], field: str) -> float:
    value = data.get(field)
    # bool is an int in Python; a JSON true is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("bad_field", f"'{field}' must be a number")
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ProtocolError("bad_field", f"'{field}' is far too large") from None
    if not math.isfinite(value):
        raise ProtocolError("bad_field", f"'{field}' must be finite (no NaN or Infinity)")
    return value


def flag(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{field}' must be true or false")
    return value


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError("bad_field", f"'{field}' must be true or false")
    return value


def whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_field", f"'{field}' must be a whole number")
    return value


def object_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise ProtocolError("bad_field", "'object_id' must be an object number")
    return value


def candidate_index(value: Any, count: int) -> int:
    """A candidate mask's index, below ``count`` (the candidates the model gave)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < max(count, 1):
        raise ProtocolError("bad_field", f"'index' must be a candidate number from 0 to "
                            f"{max(count, 1) - 1}")
    return value


def optional_name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value.strip()) <= NAME_LENGTH:
        raise ProtocolError("bad_field", f"'name' must be 1 to {NAME_LENGTH} characters")
    return value.strip()


def optional_visible(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ProtocolError("bad_field", "'visible' must be true or false")
    return value


COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


def optional_colour(value: Any) -> str | None:
    """An object's overlay colour, ``#rrggbb`` (stored lower case); "" puts back the default."""
    if value is None or value == "":
        return value
    if not isinstance(value, str) or not COLOUR.fullmatch(value):
        raise ProtocolError("bad_field", "'colour' must be #rrggbb (or \"\" for the default)")
    return value.lower()


def model_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise ProtocolError("bad_field", "'model' must be a model id (see /api/v1/models)")
    return value


def _inside(width: int, height: int, x: float, y: float, what: str) -> None:
    if not (0 <= x <= width and 0 <= y <= height):
        raise ProtocolError("out_of_bounds", f"{what} ({x:g}, {y:g}) is outside the "
                            f"{width}x{height} picture")


def prompt(data: Any, width: int, height: int, max_stroke_points: int) -> dict[str, Any]:
    """One prompt object in upright coordinates of a ``width`` x ``height`` photo; returns a
    clean copy (docs/protocol.md: point, box or stroke)."""
    if not isinstance(data, dict):
        raise ProtocolError("bad_field", "'prompt' must be an object")
    kind = data.get("kind")
    if kind == "point":
        x, y = number(data, "x"), number(data, "y")
        _inside(width, height, x, y, "the point")
        return {"kind": "point", "x": x, "y": y, "positive": flag(data, "positive", True)}
    if kind == "box":
        x0, y0, x1, y1 = (number(data, f) for f in ("x0", "y0", "x1", "y1"))
        _inside(width, height, x0, y0, "the box corner")
        _inside(width, height, x1, y1, "the box corner")
        if x0 == x1 or y0 == y1:
            raise ProtocolError("bad_field", "the box has no area")
        return {"kind": "box", "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    if kind == "stroke":
        points = data.get("points")
        if not isinstance(points, list) or not points:
            raise ProtocolError("bad_field", "'points' must be a non-empty list of [x, y]")
        if len(points) > max_stroke_points:
            raise ProtocolError("too_many_points", f"a stroke has at most "
                                f"{max_stroke_points} points, not {len(points)}")
        clean = []
        for item in points:
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise ProtocolError("bad_field", "each stroke point must be [x, y]")
            x, y = number({"x": item[0]}, "x"), number({"y": item[1]}, "y")
            _inside(width, height, x, y, "the stroke point")
            clean.append([x, y])
        radius = number(data, "radius")
        if not 0 < radius <= max(width, height):
            raise ProtocolError("bad_field", "'radius' must be > 0 and within the picture")
        return {"kind": "stroke", "points": clean, "radius": radius,
                "positive": flag(data, "positive", True)}
    raise ProtocolError("bad_field", "'kind' must be 'point', 'box' or 'stroke'")
