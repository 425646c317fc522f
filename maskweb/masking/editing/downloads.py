"""Downloads at full resolution through the pure writers of maskweb.export.

Masks come in upright at the work size; they are turned into the stored grid and scaled up
here, as the writers want. The writers turn PNG and SVG upright again (as viewers show the
photo) and keep the darktable XMP in the stored grid (what darktable's pipeline works in).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from maskweb.export import MaskObject, NothingToExport
from maskweb.export.png import mask_png
from maskweb.export.svg import objects_svg
from maskweb.export.xmp import SidecarError, darktable_sidecar, sidecar_name, validate_sidecar
from maskweb.masking.decoding import render
from maskweb.masking.editing import combine, sidecars
from maskweb.masking.models import MaskSession
from maskweb.masking.protocol.schemas import VECTOR_PARAMS, ProtocolError
from maskweb.photos.ingest import safe_name
from maskweb.photos.models import Photo
from maskweb.segment.orientation import to_upright
from maskweb.segment.vectorize import VectorizeOptions

MAX_SIDECAR_BYTES = 4 * 1024 * 1024


class DownloadError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _union(masks: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros_like(masks[0], dtype=bool)
    for mask in masks:
        out |= mask
    return out


def png(photo: Photo, items: Sequence[tuple[Any, np.ndarray]], *, soft: bool = False,
        stored_grid: bool = False, depth: int = 8) -> bytes:
    """The union of the objects' masks at full resolution. Plain objects are united at the
    work size and brought up once (as before); with a combined object among them each is
    brought up on its own (its operands one by one, maskweb.masking.editing.combine) and united at
    full resolution, so a combination's PNG is exactly that of its operands' PNGs."""
    if not any(getattr(obj, "recipe", None) for obj, _ in items):
        stored = render.stored_full_mask(photo, _union([mask for _, mask in items]))
    else:
        stored = _union([o.mask for o in combine.export_objects(photo, items)])
    # stored_grid: as the file is stored (a raw's sensor orientation), for darktable's
    # external raster masks; otherwise upright, as viewers show the photo.
    return bytes(mask_png(stored, orientation=1 if stored_grid else photo.orientation,
                          soft=soft, depth=depth))


# The full-resolution upright masks of the last objects whose edges a page looked at in its
# 100 % view: a page asks for region after region of the same mask as it pans.
_edges_lock = threading.Lock()
_edges: OrderedDict[str, np.ndarray] = OrderedDict()
EDGES_KEPT = 4


def png_region(key: str, photo: Photo, items: Sequence[tuple[Any, np.ndarray]],
               region: tuple[int, int, int, int]) -> bytes:
    """A region (x, y, w, h, upright full-resolution pixels) of the objects' union as the PNG
    download has it: the same full-resolution mask, its edge on the photo's own edges, cut.
    ``key``: the download's cache key without the region (the mask's identity)."""
    with _edges_lock:
        full = _edges.get(key)
        if full is not None:
            _edges.move_to_end(key)
    if full is None:
        if not any(getattr(obj, "recipe", None) for obj, _ in items):
            stored = render.stored_full_mask(photo, _union([mask for _, mask in items]))
        else:
            stored = _union([o.mask for o in combine.export_objects(photo, items)])
        full = np.ascontiguousarray(to_upright(stored, photo.orientation))
        with _edges_lock:
            _edges[key] = full
            while len(_edges) > EDGES_KEPT:
                _edges.popitem(last=False)
    x, y, w, h = region
    return bytes(mask_png(full[y:y + h, x:x + w]))


def _mask_objects(photo: Photo, items: Sequence[tuple[Any, np.ndarray]]) -> list[MaskObject]:
    return combine.export_objects(photo, items)


def vector_defaults() -> dict[str, float]:
    return {name: spec[0] for name, spec in VECTOR_PARAMS.items()}


def vector_bounds() -> dict[str, dict[str, float | bool]]:
    return {name: {"min": low, "max": high, "integer": whole}
            for name, (_, low, high, whole) in VECTOR_PARAMS.items()}


def vector_settings(query: Any) -> tuple[VectorizeOptions, float]:
    """(options, feather) from a download's query string; ProtocolError for a bad value."""
    values: dict[str, float] = {}
    for name, (default, low, high, whole) in VECTOR_PARAMS.items():
        raw = query.get(name)
        if raw in (None, ""):
            values[name] = default
            continue
        try:
            value = float(raw)
        except ValueError:
            raise ProtocolError("bad_field", f"'{name}' must be a number") from None
        if not (low <= value <= high + 1e-9) or (whole and value != int(value)):
            raise ProtocolError("bad_field", f"'{name}' must be "
                                f"{'a whole number ' if whole else ''}within {low:g}..{high:g}")
        values[name] = value
    options = VectorizeOptions(turdsize=int(values["turdsize"]),
                               alphamax=min(values["alphamax"], 4.0 / 3.0),
                               opttolerance=values["opttolerance"])
    return options, values["feather"]


def svg(photo: Photo, items: Sequence[tuple[Any, np.ndarray]],
        options: VectorizeOptions | None = None) -> str:
    return objects_svg(_mask_objects(photo, items), photo.stored_width, photo.stored_height,
                       orientation=photo.orientation, options=options)


def xmp(session: MaskSession, items: Sequence[tuple[Any, np.ndarray]],
        options: VectorizeOptions | None = None, feather: float = 0.0) -> tuple[bytes, str]:
    photo = session.photo
    existing = sidecars.read(session)
    try:
        data = darktable_sidecar(_mask_objects(photo, items), photo.stored_width,
                                 photo.stored_height, existing=existing,
                                 photo_name=session.photo_name, options=options,
                                 feather=feather, orientation=photo.orientation)
    except NothingToExport as exc:
        raise DownloadError(409, "empty", str(exc)) from None
    except SidecarError as exc:
        raise DownloadError(409, "invalid_sidecar", "The uploaded sidecar cannot be merged "
                            f"into: {exc}. Upload another one.") from None
    return data, sidecar_name(session.photo_name)


def store_sidecar(session: MaskSession, data: bytes, name: str = "") -> None:
    if not data:
        raise DownloadError(400, "invalid_sidecar", "Send the XMP file (field 'sidecar').")
    if len(data) > MAX_SIDECAR_BYTES:
        raise DownloadError(413, "too_large", "An XMP sidecar is at most 4 MB.")
    try:
        validate_sidecar(data)
    except SidecarError as exc:
        raise DownloadError(400, "invalid_sidecar", f"Not a darktable XMP sidecar: {exc}") \
            from None
    sidecars.replace(session, data, safe_name(name or "")[:255])


def remove_sidecar(session: MaskSession) -> bool:
    """Forgets the uploaded sidecar: XMP downloads start a new one again. False when there
    was none."""
    return sidecars.remove(session)
