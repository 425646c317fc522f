"""Objects made from other objects: union, difference, intersection and inverse.

A combined object is an ordinary applied object (its own work-size mask, listed, drawn,
renamed, hidden, deleted, undone like any other) that also keeps its *recipe*: the operation
and each operand's own work mask (PNG, base64), nested when an operand was combined itself.
Downloads use the recipe: each operand is brought to full resolution on its own, the way its
own download is, and combined there, so the PNG is exactly the combination of the operands'
PNGs; the XMP keeps the operands' shapes and lets darktable combine them (nested mask groups
with its union, difference, intersection and inverse modes).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import numpy as np

from maskweb.export import Combination, combine_masks
from maskweb.export import MaskObject as ExportObject
from maskweb.masking.decoding import render
from maskweb.masking.protocol.schemas import NAME_LENGTH
from maskweb.photos.models import Photo

#: How a new object is named after its operands.
SYMBOL = {"union": "+", "difference": "−", "intersection": "∩"}


def default_name(op: str, names: Sequence[str]) -> str:
    name = f"Inverse of {names[0]}" if op == "invert" else f" {SYMBOL[op]} ".join(names)
    if len(name) > NAME_LENGTH:
        name = name[: NAME_LENGTH - 1] + "…"
    return name


def operand(name: str, png: bytes, recipe: dict[str, Any] | None) -> dict[str, Any]:
    """One operand as a recipe keeps it: its work mask as stored (PNG), and its own recipe
    when it was combined too (for the XMP's nesting)."""
    return {"name": name, "png": base64.b64encode(png).decode("ascii"), "recipe": recipe}


def make_recipe(op: str, operands: list[dict[str, Any]]) -> dict[str, Any]:
    return {"op": op, "operands": operands}


def work_mask(recipe: dict[str, Any]) -> np.ndarray:
    """The recipe's result at the work size (what the pages draw)."""
    masks = [render.png_to_mask(base64.b64decode(o["png"])) for o in recipe["operands"]]
    return combine_masks(recipe["op"], masks)


def _leaves(recipe: dict[str, Any]) -> list[np.ndarray]:
    """Every plain operand's work mask, depth first (what is brought to full resolution)."""
    out: list[np.ndarray] = []
    for o in recipe["operands"]:
        if o.get("recipe"):
            out.extend(_leaves(o["recipe"]))
        else:
            out.append(render.png_to_mask(base64.b64decode(o["png"])))
    return out


def _build(name: str, recipe: dict[str, Any] | None, leaves: list[np.ndarray]
           ) -> ExportObject:
    """The export object of a recipe (consuming its full-resolution leaves in order)."""
    if not recipe:
        return ExportObject(name, leaves.pop(0))
    parts = [_build(o["name"], o.get("recipe"), leaves) for o in recipe["operands"]]
    return ExportObject(name, combine_masks(recipe["op"], [p.mask for p in parts]),
                        Combination(recipe["op"], parts))


def export_objects(photo: Photo, items: Sequence[tuple[Any, np.ndarray]]) -> list[ExportObject]:
    """The objects at full resolution in the stored grid, as the writers take them: a plain
    object's work mask brought up as before; a combined one's operands brought up one by one
    and combined (``items``: (object with ``name`` and ``recipe``, its work mask)). The photo
    is read once for all of them."""
    work: list[np.ndarray] = []
    for obj, mask in items:
        recipe = getattr(obj, "recipe", None)
        work.extend(_leaves(recipe) if recipe else [mask])
    full = render.stored_full_masks(photo, work) if work else []
    return [_build(obj.name, getattr(obj, "recipe", None), full) for obj, _ in items]
