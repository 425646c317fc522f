"""Downloads in the photo's stored grid at full resolution: PNG, SVG, darktable XMP.

Masks come in upright at the work size; they are turned into the stored grid and scaled up
here, then handed to the pure writers of maskweb.export.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from maskweb.masking import render
from maskweb.masking.models import MaskSession
from maskweb.photos.models import Photo

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


def png(photo: Photo, work_masks: Sequence[np.ndarray], *, soft: bool = False) -> bytes:
    stored = render.stored_full_mask(photo, _union(work_masks))
    try:
        from maskweb.export.png import mask_png
    except ImportError:  # the export package is not merged yet: a plain 8-bit PNG
        buf = io.BytesIO()
        Image.fromarray(stored.astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
        return buf.getvalue()
    return bytes(mask_png(stored, soft=soft))


def _mask_objects(photo: Photo, items: Sequence[tuple[Any, np.ndarray]]) -> list[Any]:
    from maskweb.export import MaskObject

    return [MaskObject(obj.name, render.stored_full_mask(photo, mask)) for obj, mask in items]


def svg(photo: Photo, items: Sequence[tuple[Any, np.ndarray]]) -> str:
    try:
        from maskweb.export.svg import objects_svg
    except ImportError:
        raise DownloadError(501, "not_available", "SVG export is not installed yet.") from None
    return str(objects_svg(_mask_objects(photo, items), photo.stored_width, photo.stored_height,
                           orientation=photo.orientation))


def xmp(session: MaskSession, items: Sequence[tuple[Any, np.ndarray]]) -> tuple[bytes, str]:
    try:
        from maskweb.export.xmp import darktable_sidecar, sidecar_name
    except ImportError:
        raise DownloadError(501, "not_available", "XMP export is not installed yet.") from None
    photo = session.photo
    existing = bytes(session.sidecar) if session.sidecar else None
    data = darktable_sidecar(_mask_objects(photo, items), photo.stored_width,
                             photo.stored_height, existing=existing)
    return bytes(data), str(sidecar_name(photo.name))


def store_sidecar(session: MaskSession, data: bytes) -> None:
    if not data:
        raise DownloadError(400, "invalid_sidecar", "Send the XMP file (field 'sidecar').")
    if len(data) > MAX_SIDECAR_BYTES:
        raise DownloadError(413, "too_large", "An XMP sidecar is at most 4 MB.")
    try:
        from maskweb.export.xmp import SidecarError, validate_sidecar
    except ImportError:
        raise DownloadError(501, "not_available", "XMP export is not installed yet.") from None
    try:
        validate_sidecar(data)
    except SidecarError as exc:
        raise DownloadError(400, "invalid_sidecar", f"Not a darktable XMP sidecar: {exc}") \
            from None
    MaskSession.objects.filter(pk=session.pk).update(sidecar=data)
