"""Pure writers for finished masks: PNG, SVG and darktable XMP sidecars (no Django here).

Every writer takes masks in the photo's *stored* pixel grid (before EXIF orientation), the
way the server keeps them. PNG and SVG come out upright (as viewers show the photo); the
darktable XMP stays in the stored grid, which is what darktable's pipeline works in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MaskObject", "NothingToExport", "check_objects"]


@dataclass
class MaskObject:
    """One named object: ``mask`` is a bool (stored_height, stored_width) array."""

    name: str
    mask: np.ndarray


class NothingToExport(ValueError):
    """Every mask is empty (or there are no objects): there is no shape to write."""


def check_objects(objects: Sequence[MaskObject], stored_width: int, stored_height: int) -> None:
    """Raise ValueError unless every mask is 2-D and exactly stored_height x stored_width."""
    if stored_width <= 0 or stored_height <= 0:
        raise ValueError(f"photo size must be positive, got {stored_width}x{stored_height}")
    for obj in objects:
        if obj.mask.ndim != 2 or obj.mask.shape != (stored_height, stored_width):
            raise ValueError(
                f"mask of {obj.name!r} is {obj.mask.shape}, expected "
                f"({stored_height}, {stored_width}) (the photo's stored grid)")
