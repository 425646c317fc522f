"""The HTTP API's downloads (PNG, SVG, darktable XMP; one object or all the visible ones, at
full resolution) and the uploaded sidecar they merge into. A download is made once per
object revision and settings, a bounded number at a time (download_jobs), and named after its
object (maskweb.export.filenames).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from ninja import Query

from maskweb.export.filenames import download_name
from maskweb.masking import editing
from maskweb.masking.api import download_jobs
from maskweb.masking.api.app import (
    DOWNLOAD_ERRORS,
    SESSION,
    WRITE_ERRORS,
    api,
    binary,
    in_thread,
    no_content,
)
from maskweb.masking.editing import downloads
from maskweb.masking.models import MaskObject
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos import crops
from maskweb.segment.vectorize import VectorizeOptions


def _stem(access: editing.Access) -> str:
    return Path(access.session.photo_name).stem or "photo"


def _object_filename(access: editing.Access, obj: MaskObject, extension: str,
                     variant: str = "") -> str:
    """``<photo>-<object name>[-soft].<ext>``: named after the object, as the user named it
    (safe on every OS, see maskweb.export.filenames); the hard and soft PNG differ."""
    return download_name(_stem(access), obj.name or f"object {obj.number}", variant,
                         extension=extension, fallback=f"object-{obj.number}")


def _png_options(query: schemas.PngQuery) -> dict[str, Any]:
    """soft, stored_grid (``?grid=stored``) and depth (``?depth=16``) of a PNG download."""
    return {"soft": query.soft in ("1", "true", "yes"), "stored_grid": query.grid == "stored",
            "depth": int(query.depth)}


def _region(query: schemas.RegionQuery, photo: Any) -> tuple[int, int, int, int] | None:
    """``?x=&y=&w=&h=`` (upright full-resolution pixels, all four or none)."""
    values = (query.x, query.y, query.w, query.h)
    if all(v is None for v in values):
        return None
    for name, value in zip("xywh", values, strict=True):
        if value is None:
            raise ProtocolError("bad_field", f"'{name}' must be a whole number of pixels")
    x, y, w, h = (int(v or 0) for v in values)
    try:
        crops.check_region(photo, x, y, w, h)
    except crops.CropError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    return x, y, w, h


def _png_variant(options: dict[str, Any]) -> str:
    """What a PNG's file name says of its options, beyond the object's name."""
    return " ".join(part for part, on in (("soft", options["soft"]),
                                          ("sensor", options["stored_grid"]),
                                          ("16bit", options["depth"] == 16)) if on)


DOWNLOAD = {200: None, 304: None, DOWNLOAD_ERRORS: schemas.Error}
PNG_HELP = ("A greyscale mask at full resolution, upright like the photo as viewers show it "
            "(`grid=stored`: the photo's stored grid), 8 or 16 bits; 304 when `If-None-Match` "
            "has the current ETag.")


@api.get(f"{SESSION}/objects/{{number}}/mask.png", response=DOWNLOAD,
         summary="One object's mask", openapi_extra=binary("image/png", PNG_HELP))
async def object_png(request: HttpRequest, token: str, number: int,
                     query: Query[schemas.RegionQuery]) -> HttpResponseBase:
    return await in_thread(request, token, _object_png, number, query)


def _object_png(access: editing.Access, number: int,
                query: schemas.RegionQuery) -> download_jobs.Job:
    obj = editing.get_object(access.session, number)
    options = _png_options(query)
    session = editing.reload(access.session)
    region = _region(query, session.photo)
    if region is not None:
        # The 100 % view's edge: a region of the mask exactly as the download has it.
        whole = download_jobs.cache_key("object.png", session, [obj], {})
        return download_jobs.Job(
            download_jobs.cache_key("object.png", session, [obj], {"region": region}),
            lambda: downloads.png_region(whole, session.photo,
                                         [(obj, _object_mask(session, obj))], region),
            "image/png", _object_filename(access, obj, "png", "region"))
    return download_jobs.Job(
        download_jobs.cache_key("object.png", session, [obj], options),
        lambda: downloads.png(session.photo, [(obj, _object_mask(session, obj))], **options),
        "image/png", _object_filename(access, obj, "png",
                                      _png_variant(options).replace(" ", "-")))


@api.get(f"{SESSION}/objects/{{number}}/mask.svg", response=DOWNLOAD,
         summary="One object as SVG paths (upright)",
         openapi_extra=binary("image/svg+xml", "Bezier paths."))
async def object_svg(request: HttpRequest, token: str, number: int,
                     query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    return await in_thread(request, token, _object_svg, number, query)


def _object_svg(access: editing.Access, number: int,
                query: schemas.VectorQuery) -> download_jobs.Job:
    obj = editing.get_object(access.session, number)
    options, feather = downloads.vector_settings(query.model_dump())
    session = editing.reload(access.session)
    return download_jobs.Job(
        download_jobs.cache_key("object.svg", session, [obj], _params(options, feather)),
        lambda: downloads.svg(session.photo, [(obj, _object_mask(session, obj))],
                              options).encode(),
        "image/svg+xml", _object_filename(access, obj, "svg"))


XMP_HELP = ("A darktable XMP sidecar (stored grid), named `<photo name>.xmp`, merged into the "
            "uploaded sidecar if there is one; 409 `invalid_sidecar` when that cannot be "
            "merged into.")


@api.get(f"{SESSION}/objects/{{number}}/sidecar.xmp", response=DOWNLOAD,
         summary="darktable XMP sidecar with one object as a drawn mask",
         openapi_extra=binary("application/rdf+xml", XMP_HELP))
async def object_xmp(request: HttpRequest, token: str, number: int,
                     query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        obj = editing.get_object(access.session, number)
        session = editing.reload(access.session)
        return _sidecar_job(query, session, "object.xmp", [obj],
                            lambda: [(obj, _object_mask(session, obj))])
    return await in_thread(request, token, run)


def _params(options: VectorizeOptions, feather: float) -> dict[str, float]:
    """The vector settings as the cache key sees them (validated, defaults filled in)."""
    return {"turdsize": options.turdsize, "alphamax": options.alphamax,
            "opttolerance": options.opttolerance, "feather": feather}


def _object_mask(session: Any, obj: MaskObject) -> np.ndarray:
    mask = editing.object_work_mask(session, obj)
    if mask is None or not mask.any():
        raise ProtocolError("empty", "This object has no mask yet.")
    return mask


def _visible(session: Any) -> list[MaskObject]:
    """The objects an all-objects download would hold, without making their masks."""
    found = [obj for obj in session.mask_objects.order_by("number")
             if not (obj.applied and not obj.visible)
             and (obj.applied and obj.mask_png or obj.effective_prompts())]
    if not found:
        raise ProtocolError("empty", "There is no visible mask to download yet.")
    return found


def _all(session: Any) -> list[tuple[Any, np.ndarray]]:
    items = editing.visible_objects(session)
    if not items:
        raise ProtocolError("empty", "There is no visible mask to download yet.")
    return items


@api.get(f"{SESSION}/mask.png", response=DOWNLOAD, summary="All visible objects in one mask",
         openapi_extra=binary("image/png", PNG_HELP))
async def all_png(request: HttpRequest, token: str,
                  query: Query[schemas.PngQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        options = _png_options(query)
        session = editing.reload(access.session)
        return download_jobs.Job(
            download_jobs.cache_key("all.png", session, _visible(session), options),
            lambda: downloads.png(session.photo, _all(session), **options),
            "image/png", download_name(_stem(access), "mask", _png_variant(options).replace(
                " ", "-"), extension="png"))
    return await in_thread(request, token, run)


@api.get(f"{SESSION}/masks.svg", response=DOWNLOAD, summary="All visible objects as SVG",
         openapi_extra=binary("image/svg+xml", "One path per object."))
async def all_svg(request: HttpRequest, token: str,
                  query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        options, feather = downloads.vector_settings(query.model_dump())
        session = editing.reload(access.session)
        return download_jobs.Job(
            download_jobs.cache_key("all.svg", session, _visible(session),
                                    _params(options, feather)),
            lambda: downloads.svg(session.photo, _all(session), options).encode(),
            "image/svg+xml", f"{_stem(access)}-masks.svg")
    return await in_thread(request, token, run)


@api.get(f"{SESSION}/sidecar.xmp", response=DOWNLOAD,
         summary="darktable XMP sidecar with the visible objects as drawn masks",
         openapi_extra=binary("application/rdf+xml", XMP_HELP))
async def sidecar_xmp(request: HttpRequest, token: str,
                      query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        session = editing.reload(access.session)
        return _sidecar_job(query, session, "all.xmp", _visible(session),
                            lambda: _all(session))
    return await in_thread(request, token, run)


def _sidecar_job(query: schemas.VectorQuery, session: Any, kind: str, objects: list[MaskObject],
                 items: Callable[[], list[tuple[Any, np.ndarray]]]) -> download_jobs.Job:
    """The XMP download of ``items()``, merged into the session's uploaded sidecar if any.

    The settings are read before ``items()`` makes the masks, so a bad parameter is a 400
    without a mask (maybe a decode) being made for nothing. The file is named as darktable
    looks for it (``<photo name>.xmp``) for one object too: under any other name darktable
    would not read it.
    """
    options, feather = downloads.vector_settings(query.model_dump())
    filename = downloads.sidecar_name(session.photo_name)

    def make() -> bytes:
        data, _ = downloads.xmp(session, items(), options, feather)
        return data

    key = download_jobs.cache_key(kind, session, objects, _params(options, feather))
    return download_jobs.Job(key, make, "application/rdf+xml", filename)


@api.post(f"{SESSION}/sidecar", response={200: schemas.SidecarStored,
                                          WRITE_ERRORS | {413}: schemas.Error},
          summary="Upload the photo's existing darktable XMP; later XMP downloads merge into it",
          openapi_extra={"requestBody": {"required": True, "content": {
              "multipart/form-data": {"schema": {"type": "object", "properties": {
                  "sidecar": {"type": "string", "format": "binary"}}}},
              "application/rdf+xml": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_sidecar(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _upload_sidecar, request)


def _upload_sidecar(access: editing.Access, request: HttpRequest) -> HttpResponseBase:
    name = ""
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("sidecar")
        data = upload.read(4 * 1024 * 1024 + 1) if upload is not None else b""
        name = upload.name if upload is not None and upload.name else ""
    else:
        data = request.body
    editing.store_sidecar(access, data, name)
    return JsonResponse({"sidecar": True, "bytes": len(data), "name": name})


@api.delete(f"{SESSION}/sidecar", response={204: None, WRITE_ERRORS: schemas.Error},
            summary="Forget the uploaded XMP: downloads start a new sidecar again")
async def remove_sidecar(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, no_content(editing.remove_sidecar))
