"""The HTTP API (docs/protocol.md, /api/v1/openapi.json) and the two pages. Thin: parse, call a
service, shape the answer. Errors are always ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from maskweb.export.filenames import download_name
from maskweb.masking import editing
from maskweb.masking.api import download_jobs
from maskweb.masking.api.errors import error, method_not_allowed
from maskweb.masking.api.openapi import openapi_document
from maskweb.masking.editing import downloads, limits
from maskweb.masking.models import MaskObject, Status
from maskweb.masking.protocol import inputs
from maskweb.masking.protocol.inputs import ProtocolError
from maskweb.photos import crops, storage
from maskweb.photos.ingest import UploadError, ingest

log = logging.getLogger(__name__)

STATUS_OF = {"internal": 500, "bad_field": 400, "bad_json": 400, "out_of_bounds": 400,
             "too_many_points": 400, "not_found": 404, "empty": 409, "not_ready": 409,
             "forbidden": 403, "unknown_type": 400, "too_large": 413,
             "too_many_objects": 409, "conflict": 409}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}

View = Callable[..., Any]


def error_for(exc: Exception) -> HttpResponseBase | None:
    """The JSON error answering one of the errors a view may raise; None for any other."""
    if isinstance(exc, editing.NotFound):
        return error(404, "not_found", "No session has this link.")
    if isinstance(exc, editing.Forbidden):
        return error(403, "forbidden", str(exc))
    if isinstance(exc, ProtocolError):
        return error(STATUS_OF.get(exc.code, 400), exc.code, exc.message)
    if isinstance(exc, UploadError | downloads.DownloadError):
        return error(exc.status, exc.code, exc.message)
    if isinstance(exc, limits.LimitExceeded):
        response = error(exc.status, exc.code, exc.message)
        if exc.retry_after is not None:
            response["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
        return response
    if isinstance(exc, download_jobs.Busy):
        response = error(503, "busy", "Too many downloads are being made right now; try "
                         "again in a few seconds.")
        response["Retry-After"] = str(download_jobs.RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, RequestDataTooBig):
        return error(413, "too_large", "The request body is too large.")
    if isinstance(exc, redis.RedisError):
        log.exception("Redis is unreachable")
        return error(503, "unavailable", "The server's Redis is unreachable; try again in a "
                     "moment.")
    return None


def api(methods: list[str]) -> Callable[[View], Callable[..., Any]]:
    """Method check, token resolution (``token`` kwarg -> ``access``), the per-session rate
    of writes, and error mapping.

    The view runs in a worker thread of its own (``thread_sensitive=False``): Django would run
    every sync view on one shared thread, so one slow decode would hold up every other request
    (page loads, uploads) behind it. A view may return a ``download_jobs.Job``: it is then
    made in the download threads (bounded, cached; see that module).
    """

    def wrap(view: View) -> Callable[..., Any]:
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                if "token" in kwargs:
                    access = editing.resolve(kwargs.pop("token"))
                    kwargs["access"] = access
                    if request.method in WRITES:
                        access.require_edit()
                        limits.check_session_writes(access.session.pk)
                return view(request, *args, **kwargs)
            except Exception as exc:
                response = error_for(exc)
                if response is None:
                    raise
                return response

        @csrf_exempt
        @functools.wraps(view)
        async def in_thread(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return method_not_allowed(methods)
            answer = await database_sync_to_async(inner, thread_sensitive=False)(
                request, *args, **kwargs)
            if isinstance(answer, download_jobs.Job):
                return await _download(request, answer)
            response: HttpResponseBase = answer
            return response

        return in_thread

    return wrap


async def _download(request: HttpRequest, job: download_jobs.Job) -> HttpResponseBase:
    etag = f'"{job.key.rsplit(":", 1)[-1]}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponseBase = HttpResponse(status=304)
    else:
        data = await database_sync_to_async(download_jobs.cached, thread_sensitive=False)(
            job.key)
        if data is None:
            try:
                data = await download_jobs.run(job)
            except Exception as exc:
                answer = error_for(exc)
                if answer is None:
                    raise
                return answer
        response = _attachment(data, job.content_type, job.filename)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # asks again, gets 304 when unchanged
    return response


def json_body(request: HttpRequest) -> dict[str, Any]:
    return inputs.body_object(request.body)


# --- pages ---------------------------------------------------------------------------------

def _page(name: str) -> HttpResponseBase:
    path = Path(settings.FRONTEND_DIR) / name
    if not path.is_file():
        raise Http404(f"{name} is not built yet")
    response = FileResponse(path.open("rb"), content_type="text/html; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


def upload_page(request: HttpRequest) -> HttpResponseBase:
    return _page("index.html")


def session_page(request: HttpRequest, token: str) -> HttpResponseBase:
    try:
        editing.resolve(token)
    except editing.NotFound:
        raise Http404("No session has this link.") from None
    return _page("session.html")


# --- API -----------------------------------------------------------------------------------

@api(["GET"])
def openapi(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse(openapi_document())


@api(["GET"])
def models(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse({"models": editing.model_list(),
                         "default": editing.default_model()})


@api(["POST"])
def create_session(request: HttpRequest) -> HttpResponseBase:
    content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if content_length > settings.MAX_UPLOAD_BYTES + 1024 * 1024:
        # Daphne refuses this before reading the body (maskweb.daphne_http); kept for any
        # other server.
        raise UploadError(413, "too_large", f"The upload is {content_length:,} bytes; at most "
                          f"{settings.MAX_UPLOAD_BYTES:,} are accepted.")
    client = limits.client_key(request.META.get("REMOTE_ADDR"))
    limits.check_upload_rate(client)
    limits.check_disk(client, content_length)
    upload = request.FILES.get("photo")
    if upload is None:
        raise UploadError(400, "invalid_image", "Send the photo as the multipart field 'photo' "
                          "(multipart/form-data).")
    model = request.POST.get("model") or None
    if model is not None:
        editing.check_model(model)
    photo = ingest(upload, upload.name, upload.size)
    session = editing.create_session(photo, model, upload.name, client=client)
    state = editing.session_state(editing.Access(editing.reload(session), editing.EDIT))
    return JsonResponse(state, status=201)


@api(["GET", "DELETE"])
def session_detail(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    if request.method == "DELETE":
        editing.delete_session(access)
        return HttpResponse(status=204)
    if access.session.status == Status.ENCODING:
        # A client that only polls over HTTP gets a lost encode job back too.
        access.session = editing.encode_status(access)
    return JsonResponse(editing.session_state(access))


@api(["GET"])
def photo(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    # From the storage (a local file, or streamed from the bucket by this web host).
    handle = storage.storage().open(access.session.photo.preview_name, "rb")
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@api(["GET"])
def photo_crop(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    """A region of the full-resolution photo, upright (the page's true 100 % view)."""
    values = []
    for name in ("x", "y", "w", "h"):
        raw = request.GET.get(name, "")
        if not raw.isdigit() or len(raw) > 6:
            raise ProtocolError("bad_field", f"'{name}' must be a whole number of pixels")
        values.append(int(raw))
    try:
        data = crops.crop_jpeg(access.session.photo, *values)
    except crops.CropError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"  # a photo never changes
    return response


def _mask_answer(access: editing.Access, request_id: str | None = None) -> HttpResponseBase:
    rendered = editing.render_current(access.session, request_id)
    if rendered.header is None:
        session = rendered.session
        if session.status == Status.ENCODING:
            session = editing.encode_status(editing.Access(session, access.role))
        return JsonResponse({"status": session.status, "progress": session.progress,
                             "message": session.message}, status=202)
    png = rendered.frame[4 + len(json.dumps(rendered.header, separators=(",", ":")).encode()):] \
        if rendered.frame else b""
    return JsonResponse({**rendered.header, "png_base64": base64.b64encode(png).decode()})


@api(["POST"])
def prompts(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    editing.add_prompt_and_render(access, json_body(request))
    return _mask_answer(access)


@api(["GET"])
def current(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    return _mask_answer(access)


@api(["POST"])
def undo(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    editing.undo(access)
    return _mask_answer(access)


@api(["POST"])
def redo(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    editing.redo(access)
    return _mask_answer(access)


@api(["POST"])
def clear(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    editing.clear(access)
    return _mask_answer(access)


@api(["POST"])
def candidate(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    editing.select_candidate(access, json_body(request).get("index"))
    return _mask_answer(access)


@api(["POST"])
def apply(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    obj = editing.apply(access, json_body(request).get("name"))
    session = editing.reload(access.session)
    token = session.edit_token
    return JsonResponse({"object": editing.object_dict(session, obj, token),
                         "objects": editing.objects_list(session, token)}, status=201)


@api(["POST"])
def combine(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    body = json_body(request)
    obj = editing.combine_objects(access, body.get("op"), body.get("objects"),
                                   body.get("name"))
    session = editing.reload(access.session)
    token = session.edit_token
    return JsonResponse({"object": editing.object_dict(session, obj, token),
                         "objects": editing.objects_list(session, token)}, status=201)


@api(["PUT"])
def model(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    session = editing.switch_model(access, json_body(request).get("model"))
    return JsonResponse(editing.session_state(editing.Access(session, access.role)),
                        status=202 if session.status != Status.READY else 200)


@api(["GET"])
def objects(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    token = access.session.edit_token if access.role == editing.EDIT else \
        access.session.view_token
    return JsonResponse({"objects": editing.objects_list(access.session, token)})


@api(["PATCH", "DELETE"])
def object_detail(request: HttpRequest, access: editing.Access, number: int) -> HttpResponseBase:
    if request.method == "DELETE":
        editing.delete_object(access, number)
        return HttpResponse(status=204)
    body = json_body(request)
    if not {"name", "visible", "colour"} & set(body):
        raise ProtocolError("bad_field", "send 'name', 'visible' and/or 'colour'")
    obj = editing.update_object(access, number, name=body.get("name"),
                                 visible=body.get("visible"), colour=body.get("colour"))
    return JsonResponse(editing.object_dict(access.session, obj, access.session.edit_token))


@api(["POST"])
def reopen(request: HttpRequest, access: editing.Access, number: int) -> HttpResponseBase:
    session = editing.reopen(access, number)
    return JsonResponse(editing.session_state(editing.Access(session, access.role)))


def attachment_disposition(filename: str) -> str:
    """``attachment`` with the name as RFC 6266 gives it: a plain ASCII ``filename`` that every
    client reads (curl -J included), and ``filename*`` with the UTF-8 name when it differs,
    which browsers prefer. (Django put a non-ASCII name's whole header into RFC 2047 words,
    which curl cannot read, so the .xmp name was lost.)"""
    plain = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_"
        for c in unicodedata.normalize("NFKD", filename)
        if not unicodedata.combining(c))  # é -> e, ß and 写 -> _
    header = f'attachment; filename="{plain or "download"}"'
    if plain != filename:
        header += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return header


def _attachment(data: bytes | str, content_type: str, filename: str) -> HttpResponseBase:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = attachment_disposition(filename)
    return response


def _stem(access: editing.Access) -> str:
    return Path(access.session.photo_name).stem or "photo"


def _object_filename(access: editing.Access, obj: MaskObject, extension: str,
                     variant: str = "") -> str:
    """``<photo>-<object name>[-soft].<ext>``: named after the object, as the user named it
    (safe on every OS, see maskweb.export.filenames); the hard and soft PNG differ."""
    return download_name(_stem(access), obj.name or f"object {obj.number}", variant,
                         extension=extension, fallback=f"object-{obj.number}")


def _soft(request: HttpRequest) -> bool:
    return request.GET.get("soft") in ("1", "true", "yes")


def _png_options(request: HttpRequest) -> dict[str, Any]:
    """soft, stored_grid (``?grid=stored``) and depth (``?depth=16``) of a PNG download."""
    grid = request.GET.get("grid", "upright")
    if grid not in ("upright", "stored"):
        raise ProtocolError("bad_field", "'grid' must be 'upright' or 'stored'")
    depth = request.GET.get("depth", "8")
    if depth not in ("8", "16"):
        raise ProtocolError("bad_field", "'depth' must be 8 or 16")
    return {"soft": _soft(request), "stored_grid": grid == "stored", "depth": int(depth)}


def _region(request: HttpRequest, photo: Any) -> tuple[int, int, int, int] | None:
    """``?x=&y=&w=&h=`` (upright full-resolution pixels, all four or none)."""
    names = ("x", "y", "w", "h")
    if not any(n in request.GET for n in names):
        return None
    values = []
    for name in names:
        raw = request.GET.get(name, "")
        if not raw.isdigit() or len(raw) > 6:
            raise ProtocolError("bad_field", f"'{name}' must be a whole number of pixels")
        values.append(int(raw))
    try:
        crops.check_region(photo, *values)
    except crops.CropError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    x, y, w, h = values
    return x, y, w, h


def _png_variant(options: dict[str, Any]) -> str:
    """What a PNG's file name says of its options, beyond the object's name."""
    return " ".join(part for part, on in (("soft", options["soft"]),
                                          ("sensor", options["stored_grid"]),
                                          ("16bit", options["depth"] == 16)) if on)


@api(["GET"])
def object_png(request: HttpRequest, access: editing.Access, number: int) -> Any:
    obj = editing.get_object(access.session, number)
    options = _png_options(request)
    session = editing.reload(access.session)
    region = _region(request, session.photo)
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


@api(["GET"])
def object_svg(request: HttpRequest, access: editing.Access, number: int) -> Any:
    obj = editing.get_object(access.session, number)
    options, _ = downloads.vector_settings(request.GET)
    session = editing.reload(access.session)
    return download_jobs.Job(
        download_jobs.cache_key("object.svg", session, [obj], _params(request)),
        lambda: downloads.svg(session.photo, [(obj, _object_mask(session, obj))],
                              options).encode(),
        "image/svg+xml", _object_filename(access, obj, "svg"))


@api(["GET"])
def object_xmp(request: HttpRequest, access: editing.Access, number: int) -> Any:
    obj = editing.get_object(access.session, number)
    session = editing.reload(access.session)
    return _sidecar_job(request, session, "object.xmp", [obj],
                        lambda: [(obj, _object_mask(session, obj))])


def _params(request: HttpRequest) -> dict[str, float]:
    """The vector settings as the cache key sees them (validated, defaults filled in)."""
    options, feather = downloads.vector_settings(request.GET)
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


@api(["GET"])
def all_png(request: HttpRequest, access: editing.Access) -> Any:
    options = _png_options(request)
    session = editing.reload(access.session)
    return download_jobs.Job(
        download_jobs.cache_key("all.png", session, _visible(session), options),
        lambda: downloads.png(session.photo, _all(session), **options),
        "image/png", download_name(_stem(access), "mask", _png_variant(options).replace(
            " ", "-"), extension="png"))


@api(["GET"])
def all_svg(request: HttpRequest, access: editing.Access) -> Any:
    options, _ = downloads.vector_settings(request.GET)
    session = editing.reload(access.session)
    return download_jobs.Job(
        download_jobs.cache_key("all.svg", session, _visible(session), _params(request)),
        lambda: downloads.svg(session.photo, _all(session), options).encode(),
        "image/svg+xml", f"{_stem(access)}-masks.svg")


@api(["GET"])
def sidecar_xmp(request: HttpRequest, access: editing.Access) -> Any:
    session = editing.reload(access.session)
    return _sidecar_job(request, session, "all.xmp", _visible(session),
                        lambda: _all(session))


def _sidecar_job(request: HttpRequest, session: Any, kind: str, objects: list[MaskObject],
                 items: Callable[[], list[tuple[Any, np.ndarray]]]) -> download_jobs.Job:
    """The XMP download of ``items()``, merged into the session's uploaded sidecar if any.

    The settings are read before ``items()`` makes the masks, so a bad parameter is a 400
    without a mask (maybe a decode) being made for nothing. The file is named as darktable
    looks for it (``<photo name>.xmp``) for one object too: under any other name darktable
    would not read it.
    """
    options, feather = downloads.vector_settings(request.GET)
    filename = downloads.sidecar_name(session.photo_name)

    def make() -> bytes:
        data, _ = downloads.xmp(session, items(), options, feather)
        return data

    return download_jobs.Job(download_jobs.cache_key(kind, session, objects, _params(request)),
                             make, "application/rdf+xml", filename)


@api(["POST", "DELETE"])
def upload_sidecar(request: HttpRequest, access: editing.Access) -> HttpResponseBase:
    access.require_edit()
    if request.method == "DELETE":
        editing.remove_sidecar(access)
        return HttpResponse(status=204)
    name = ""
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("sidecar")
        data = upload.read(4 * 1024 * 1024 + 1) if upload is not None else b""
        name = upload.name if upload is not None and upload.name else ""
    else:
        data = request.body
    editing.store_sidecar(access, data, name)
    return JsonResponse({"sidecar": True, "bytes": len(data), "name": name})
