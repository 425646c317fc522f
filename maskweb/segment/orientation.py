"""EXIF orientation: between the stored pixel grid and the upright picture a person sees.

The server keeps every coordinate in the *stored* grid (darktable's XMP needs that); the
engine and the browser work on the *upright* picture. Coordinates are continuous (pixel c
covers [c, c+1)), so a horizontal flip maps x to ``width - x``.
Orientation values are EXIF's 1..8; anything else is treated as 1.
"""

from __future__ import annotations

import numpy as np

VALID = range(1, 9)


def _norm(orientation: int | None) -> int:
    return orientation if orientation is not None and orientation in VALID else 1


def swaps_axes(orientation: int | None) -> bool:
    """True when the upright picture is the stored one turned by 90 degrees (5..8)."""
    return _norm(orientation) >= 5


def upright_size(stored_w: int, stored_h: int, orientation: int | None) -> tuple[int, int]:
    """(width, height) of the upright picture."""
    return (stored_h, stored_w) if swaps_axes(orientation) else (stored_w, stored_h)


def to_upright(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """Stored (H, W, ...) array -> upright, as PIL's ``ImageOps.exif_transpose`` does."""
    o = _norm(orientation)
    a = array
    if o == 2:
        return a[:, ::-1]
    if o == 3:
        return a[::-1, ::-1]
    if o == 4:
        return a[::-1]
    if o == 5:
        return a.swapaxes(0, 1)
    if o == 6:
        return a[::-1].swapaxes(0, 1)
    if o == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if o == 8:
        return a[:, ::-1].swapaxes(0, 1)
    return a


def to_stored(array: np.ndarray, orientation: int | None) -> np.ndarray:
    """Upright (H, W, ...) array -> the stored grid: the inverse of :func:`to_upright`."""
    o = _norm(orientation)
    a = array
    if o in (2, 3, 4, 5, 7):  # these are their own inverse
        return to_upright(a, o)
    if o == 6:
        return a.swapaxes(0, 1)[::-1]
    if o == 8:
        return a.swapaxes(0, 1)[:, ::-1]
    return a


def stored_to_upright_xy(x: float, y: float, stored_w: int, stored_h: int,
                         orientation: int | None) -> tuple[float, float]:
    """A point in the stored grid -> the same point in the upright picture."""
    o = _norm(orientation)
    w, h = stored_w, stored_h
    return {
        1: (x, y),
        2: (w - x, y),
        3: (w - x, h - y),
        4: (x, h - y),
        5: (y, x),
        6: (h - y, x),
        7: (h - y, w - x),
        8: (y, w - x),
    }[o]


def upright_to_stored_xy(u: float, v: float, stored_w: int, stored_h: int,
                         orientation: int | None) -> tuple[float, float]:
    """A point in the upright picture -> the stored grid: inverse of the function above."""
    o = _norm(orientation)
    w, h = stored_w, stored_h
    return {
        1: (u, v),
        2: (w - u, v),
        3: (w - u, h - v),
        4: (u, h - v),
        5: (v, u),
        6: (v, h - u),
        7: (w - v, h - u),
        8: (w - v, u),
    }[o]
