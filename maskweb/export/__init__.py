"""Pure writers for finished masks: PNG, SVG and darktable XMP sidecars (no Django here).

Every writer takes masks in the photo's *stored* pixel grid (before EXIF orientation), the
way the server keeps them. PNG and SVG come out upright (as viewers show the photo); the
darktable XMP stays in the stored grid, which is what darktable's pipeline works in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["COMBINE_OPS", "Combination", "MaskObject", "NothingToExport", "check_objects",
           "combine_masks"]

#: How objects combine into a new one: the union of all, the first less the others, what
#: all share, and the inverse of one (darktable's mask group modes do the same).
COMBINE_OPS = ("union", "difference", "intersection", "invert")


@dataclass
class Combination:
    """How an object was made from others: ``op`` (COMBINE_OPS) over ``operands``, each
    with its own mask (and maybe its own combination). The XMP writes it as darktable's
    nested mask groups, so the sidecar keeps each operand's shape and the mode."""

    op: str
    operands: list[MaskObject]


@dataclass
class MaskObject:
    """One named object: ``mask`` is a bool (stored_height, stored_width) array;
    ``combination``: how it was made from other objects, if it was."""

    name: str
    mask: np.ndarray
    combination: Combination | None = None


def combine_masks(op: str, masks: Sequence[np.ndarray]) -> np.ndarray:
    """The boolean combination of same-sized masks (ValueError for a wrong count or op)."""
    if op not in COMBINE_OPS:
        raise ValueError(f"unknown combination {op!r}; one of {', '.join(COMBINE_OPS)}")
    if op == "invert":
        if len(masks) != 1:
            raise ValueError("invert takes exactly one mask")
        return ~masks[0].astype(bool)
    if len(masks) < 2:
        raise ValueError(f"{op} takes two masks or more")
    out = masks[0].astype(bool).copy()
    for mask in masks[1:]:
        if op == "union":
            out |= mask
        elif op == "difference":
            out &= ~mask
        else:
            out &= mask
    return out


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
        if obj.combination is not None:
            if obj.combination.op not in COMBINE_OPS:
                raise ValueError(f"unknown combination {obj.combination.op!r}")
            check_objects(obj.combination.operands, stored_width, stored_height)
