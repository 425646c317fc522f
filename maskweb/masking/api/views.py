"""The HTTP API (docs/protocol.md, /api/v1/openapi.json).

The API is a django-ninja ``NinjaAPI``: each route is a typed function whose body and query
models are maskweb.masking.protocol.schemas' (validated before the function runs; the OpenAPI
document is generated from the same declarations, with the response models). Thin: parse, call a
service off the event loop (``in_thread``), shape the answer. Errors are always
``{"error": {"code", "message"}}``, ninja's own included (``error_for`` and the handlers
below).
"""

from __future__ import annotations

import base64
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
from ninja import NinjaAPI, Query
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from maskweb.export.filenames import download_name
from maskweb.masking import editing
from maskweb.masking.api import download_jobs
from maskweb.masking.api.errors import error
from maskweb.masking.editing import downloads, limits
from maskweb.masking.models import MaskObject, Status
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos import crops, storage
from maskweb.photos.ingest import UploadError, ingest

log = logging.getLogger(__name__)

STATUS_OF = {"internal": 500, "bad_field": 400, "bad_json": 400, "out_of_bounds": 400,
             "too_many_points": 400, "not_found": 404, "empty": 409, "not_ready": 409,
             "forbidden": 403, "unknown_type": 400, "too_large": 413,
             "too_many_objects": 409, "conflict": 409}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def error_for(exc: Exception) -> HttpResponseBase | None:
    """The JSON error answering one of the errors a view may raise; None for any other."""
    if isinstance(exc, editing.NotFound):
        return error(404, "not_found", "No session has this link.")
    if isinstance(exc, editing.Forbidden):
        return error(403, "forbidden", str(exc))
    if isinstance(exc, ProtocolError):
        return error(STATUS_OF.get(exc.code, 400), exc.code, exc.message)
    if isinstance(exc, NinjaValidationError):  # a body or query string its model refused
        refused = schemas.protocol_error([{**e, "loc": _param_loc(e["loc"])}
                                          for e in exc.errors])
        return error(400, refused.code, refused.message)
    if isinstance(exc, HttpError):
        if isinstance(exc.__cause__, ProtocolError):  # the body failed schemas.json_object
            return error_for(exc.__cause__)
        return error(exc.status_code, "bad_request", str(exc))
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


def _param_loc(loc: Any) -> tuple[Any, ...]:
    """ninja's error location less its own part: the source (``body``, ``query``...) and, for
    a body, the parameter's name (every body parameter here is called ``body``)."""
    parts = tuple(loc)
    if parts and parts[0] in ("body", "query", "path", "form", "file", "header", "cookie"):
        parts = parts[1:] if parts[0] != "body" else parts[2:] if parts[1:2] == ("body",) \
            else parts[1:]
    return parts


class JsonParser(Parser):
    """Request bodies through schemas.json_object (depth, NaN, huge numbers), as the socket's
    messages are; an empty body is an empty object."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return schemas.body_object(request.body)


class Api(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None,
                           path_params: dict[str, Any] | None = None) -> Any:
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        # The document's own route (ninja serves it without listing it).
        document["paths"]["/api/v1/openapi.json"] = {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": {"200": {"description": "The OpenAPI document.", "content": {
                "application/json": {"schema": {"type": "object"}}}}}}}
        return document


api = Api(title="maskweb", version="1", urls_namespace="api-v1", parser=JsonParser(),
          docs_url=None,  # ninja's docs page loads its scripts from a CDN; the CSP forbids it
          description="AI object masking for photos. The websocket protocol "
                      "(`/ws/sessions/{token}/`) is in docs/protocol.md; its messages are the "
                      "same schemas as this API's bodies (maskweb.masking.protocol.schemas).")


def _answer_error(request: HttpRequest, exc: Exception) -> HttpResponseBase:
    response = error_for(exc)
    if response is None:
        raise exc  # Django's 500, turned into JSON by errors.ApiErrorMiddleware
    return response


for _exc in (editing.NotFound, editing.Forbidden, ProtocolError, NinjaValidationError,
             HttpError, UploadError, downloads.DownloadError, limits.LimitExceeded,
             download_jobs.Busy, RequestDataTooBig, redis.RedisError, Http404, Exception):
    api.add_exception_handler(_exc, _answer_error)  # type: ignore[arg-type]


async def in_thread(request: HttpRequest, token: str | None,
                    work: Callable[..., Any], *args: Any) -> HttpResponseBase:
    """``work(access, *args)`` (``work(*args)`` without a token) in a worker thread of its own
    (``thread_sensitive=False``): Django would run sync work on one shared thread, so one slow
    decode would hold up every other request (page loads, uploads) behind it. The token is
    resolved there, a write needs the edit token and is counted against the session's rate.
    ``work`` may return a ``download_jobs.Job``: it is then made in the download threads
    (bounded, cached; see that module)."""

    def run() -> Any:
        if token is None:
            return work(*args)
        access = editing.resolve(token)
        if request.method in WRITES:
            access.require_edit()
            limits.check_session_writes(access.session.pk)
        return work(access, *args)

    answer = await database_sync_to_async(run, thread_sensitive=False)()
    if isinstance(answer, download_jobs.Job):
        return await _download(request, answer)
    response: HttpResponseBase = answer
    return response


async def _download(request: HttpRequest, job: download_jobs.Job) -> HttpResponseBase:
    etag = f'"{job.key.rsplit(":", 1)[-1]}"'
    if request.headers.get("If-None-Match") == etag:
        response: HttpResponseBase = HttpResponse(status=304)
    else:
        data = await database_sync_to_async(download_jobs.cached, thread_sensitive=False)(
            job.key)
        if data is None:
            data = await download_jobs.run(job)
        response = _attachment(data, job.content_type, job.filename)
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"  # asks again, gets 304 when unchanged
    return response


# --- API -----------------------------------------------------------------------------------
# The statuses each route documents besides its success (all with the Error body): every
# /sessions/{token} route may answer 404 (no such session) and 503 (Redis unreachable; for a
# download also `busy`), a write also 403 (a view token) and 429 (the session's write rate).

SESSION = "/sessions/{token}"
READ_ERRORS = frozenset({404, 503})
WRITE_ERRORS = frozenset({400, 403, 404, 429, 503})
MASK = {200: schemas.MaskResult, 202: schemas.Waiting}
DOWNLOAD_ERRORS = frozenset({400, 404, 409, 503})


def _binary(media: str, description: str) -> dict[str, Any]:
    """openapi_extra: the success of a route answering a file (ninja documents JSON only)."""
    return {"responses": {200: {"description": description, "content": {
        media: {"schema": {"type": "string", "format": "binary"}}}}}}


@api.get("/models", response=schemas.ModelList,
         summary="The segmentation models a session can pick (those that answer clicks), "
                 "and the default")
async def models(request: HttpRequest) -> HttpResponseBase:
    return await in_thread(request, None, lambda: JsonResponse(
        {"models": editing.model_list(), "default": editing.default_model()}))


@api.post("/sessions", response={201: schemas.SessionState,
                                 frozenset({400, 413, 415, 429, 503, 507}): schemas.Error},
          summary="Upload a photo: a new session (and its encode job)",
          openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {
              "schema": {"type": "object", "required": ["photo"], "properties": {
                  "photo": {"type": "string", "format": "binary",
                            "description": "JPEG, PNG, WebP or TIFF"},
                  "model": {"type": "string", "description": "a model id; the default "
                            "otherwise"}}}}}}})
async def create_session(request: HttpRequest) -> HttpResponseBase:
    # The multipart body is read here, in the thread, after the limits (not by ninja).
    return await in_thread(request, None, _create_session, request)


def _create_session(request: HttpRequest) -> HttpResponseBase:
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


@api.get(SESSION, response={200: schemas.SessionState, READ_ERRORS: schemas.Error},
         summary="Session state (a lost encode job is queued again)")
async def session_detail(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _session_state)


def _session_state(access: editing.Access) -> HttpResponseBase:
    if access.session.status == Status.ENCODING:
        # A client that only polls over HTTP gets a lost encode job back too.
        access.session = editing.encode_status(access)
    return JsonResponse(editing.session_state(access))


@api.delete(SESSION, response={204: None, WRITE_ERRORS: schemas.Error},
            summary="Delete the session for good: its objects, and its photo, files and "
                    "embeddings unless another session uses them")
async def delete_session(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _no_content(editing.delete_session))


def _no_content(work: Callable[..., Any]) -> Callable[..., HttpResponseBase]:
    def run(*args: Any) -> HttpResponseBase:
        work(*args)
        return HttpResponse(status=204)
    return run


@api.get(f"{SESSION}/photo", response={200: None, READ_ERRORS: schemas.Error},
         summary="The upright preview picture",
         openapi_extra=_binary("image/jpeg", "The preview."))
async def photo(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _photo)


def _photo(access: editing.Access) -> HttpResponseBase:
    # From the storage (a local file, or streamed from the bucket by this web host).
    handle = storage.storage().open(access.session.photo.preview_name, "rb")
    response = FileResponse(handle, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


@api.get(f"{SESSION}/photo/crop", response={200: None, frozenset({400, 404, 503}): schemas.Error},
         summary="A region of the full-resolution photo, upright (the true 100 % view)",
         openapi_extra=_binary("image/jpeg", "The region at full resolution."))
async def photo_crop(request: HttpRequest, token: str,
                     query: Query[schemas.CropQuery]) -> HttpResponseBase:
    return await in_thread(request, token, _photo_crop, query)


def _photo_crop(access: editing.Access, query: schemas.CropQuery) -> HttpResponseBase:
    try:
        data = crops.crop_jpeg(access.session.photo, query.x, query.y, query.w, query.h)
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


def _then_mask(work: Callable[..., Any]) -> Callable[..., HttpResponseBase]:
    """``work(access, ...)``, then the current object's mask (or 202 while encoding)."""
    def run(access: editing.Access, *args: Any) -> HttpResponseBase:
        work(access, *args)
        return _mask_answer(access)
    return run


@api.post(f"{SESSION}/prompts", response={**MASK, WRITE_ERRORS: schemas.Error},
          summary="Add a prompt to the current object (upright full-resolution pixels)")
async def prompts(request: HttpRequest, token: str, body: schemas.Prompt) -> HttpResponseBase:
    return await in_thread(request, token, _then_mask(editing.add_prompt_and_render), body)


@api.get(f"{SESSION}/current", response={**MASK, READ_ERRORS: schemas.Error},
         summary="The current object's mask")
async def current(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _mask_answer)


@api.post(f"{SESSION}/undo", response={**MASK, WRITE_ERRORS: schemas.Error},
          summary="Take back the session's newest change")
async def undo(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _then_mask(editing.undo))


@api.post(f"{SESSION}/redo", response={**MASK, WRITE_ERRORS: schemas.Error},
          summary="Make the oldest undone change again")
async def redo(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _then_mask(editing.redo))


@api.post(f"{SESSION}/clear", response={**MASK, WRITE_ERRORS: schemas.Error},
          summary="Clear the current object (undoable)")
async def clear(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _then_mask(editing.clear))


@api.post(f"{SESSION}/candidate", response={**MASK, WRITE_ERRORS | {409}: schemas.Error},
          summary="Pick one of the model's candidate masks")
async def candidate(request: HttpRequest, token: str,
                    body: schemas.CandidateBody) -> HttpResponseBase:
    return await in_thread(request, token, _then_mask(editing.select_candidate), body.index)


def _object_result(access: editing.Access, obj: MaskObject) -> HttpResponseBase:
    session = editing.reload(access.session)
    token = session.edit_token
    return JsonResponse({"object": editing.object_dict(session, obj, token),
                         "objects": editing.objects_list(session, token)}, status=201)


@api.post(f"{SESSION}/apply", response={201: schemas.ObjectResult,
                                        WRITE_ERRORS | {409}: schemas.Error},
          summary="The current mask becomes an object; a new current object starts")
async def apply(request: HttpRequest, token: str,
                body: schemas.ApplyBody | None = None) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        return _object_result(access, editing.apply(access, body.name if body else None))
    return await in_thread(request, token, run)


@api.post(f"{SESSION}/combine", response={201: schemas.ObjectResult,
                                          WRITE_ERRORS | {409}: schemas.Error},
          summary="A new object from applied ones: union, difference (the first less the "
                  "others), intersection, or the inverse of one (undoable)")
async def combine(request: HttpRequest, token: str,
                  body: schemas.CombineBody) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        return _object_result(access, editing.combine_objects(access, body.op, body.objects,
                                                               body.name))
    return await in_thread(request, token, run)


@api.put(f"{SESSION}/model", response={200: schemas.SessionState, 202: schemas.SessionState,
                                       WRITE_ERRORS: schemas.Error},
         summary="Switch the model (re-encodes, replays the prompts); 200 when that photo was "
                 "already encoded with it")
async def model(request: HttpRequest, token: str, body: schemas.ModelBody) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        session = editing.switch_model(access, body.model)
        return JsonResponse(editing.session_state(editing.Access(session, access.role)),
                            status=202 if session.status != Status.READY else 200)
    return await in_thread(request, token, run)


@api.get(f"{SESSION}/objects", response={200: schemas.ObjectList, READ_ERRORS: schemas.Error},
         summary="The applied objects")
async def objects(request: HttpRequest, token: str) -> HttpResponseBase:
    return await in_thread(request, token, _objects)


def _objects(access: editing.Access) -> HttpResponseBase:
    token = access.session.edit_token if access.role == editing.EDIT else \
        access.session.view_token
    return JsonResponse({"objects": editing.objects_list(access.session, token)})


@api.patch(f"{SESSION}/objects/{{number}}",
           response={200: schemas.Object, WRITE_ERRORS: schemas.Error},
           summary="Rename, hide/show or colour an object (undoable)")
async def update_object(request: HttpRequest, token: str, number: int,
                        body: schemas.ObjectPatch) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        obj = editing.update_object(access, number, name=body.name, visible=body.visible,
                                     colour=body.colour)
        return JsonResponse(editing.object_dict(access.session, obj,
                                                 access.session.edit_token))
    return await in_thread(request, token, run)


@api.delete(f"{SESSION}/objects/{{number}}", response={204: None, WRITE_ERRORS: schemas.Error},
            summary="Delete an object (undoable)")
async def delete_object(request: HttpRequest, token: str, number: int) -> HttpResponseBase:
    return await in_thread(request, token, _no_content(editing.delete_object), number)


@api.post(f"{SESSION}/objects/{{number}}/reopen",
          response={200: schemas.SessionState, WRITE_ERRORS: schemas.Error},
          summary="Make an object the current one again")
async def reopen(request: HttpRequest, token: str, number: int) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        session = editing.reopen(access, number)
        return JsonResponse(editing.session_state(editing.Access(session, access.role)))
    return await in_thread(request, token, run)


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
         summary="One object's mask", openapi_extra=_binary("image/png", PNG_HELP))
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
         openapi_extra=_binary("image/svg+xml", "Bezier paths."))
async def object_svg(request: HttpRequest, token: str, number: int,
                     query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    return await in_thread(request, token, _object_svg, number, query)


def _object_svg(access: editing.Access, number: int,
                query: schemas.VectorQuery) -> download_jobs.Job:
    obj = editing.get_object(access.session, number)
    options, _ = downloads.vector_settings(query.model_dump())
    session = editing.reload(access.session)
    return download_jobs.Job(
        download_jobs.cache_key("object.svg", session, [obj], _params(query)),
        lambda: downloads.svg(session.photo, [(obj, _object_mask(session, obj))],
                              options).encode(),
        "image/svg+xml", _object_filename(access, obj, "svg"))


XMP_HELP = ("A darktable XMP sidecar (stored grid), named `<photo name>.xmp`, merged into the "
            "uploaded sidecar if there is one; 409 `invalid_sidecar` when that cannot be "
            "merged into.")


@api.get(f"{SESSION}/objects/{{number}}/sidecar.xmp", response=DOWNLOAD,
         summary="darktable XMP sidecar with one object as a drawn mask",
         openapi_extra=_binary("application/rdf+xml", XMP_HELP))
async def object_xmp(request: HttpRequest, token: str, number: int,
                     query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        obj = editing.get_object(access.session, number)
        session = editing.reload(access.session)
        return _sidecar_job(query, session, "object.xmp", [obj],
                            lambda: [(obj, _object_mask(session, obj))])
    return await in_thread(request, token, run)


def _params(query: schemas.VectorQuery) -> dict[str, float]:
    """The vector settings as the cache key sees them (validated, defaults filled in)."""
    options, feather = downloads.vector_settings(query.model_dump())
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
         openapi_extra=_binary("image/png", PNG_HELP))
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
         openapi_extra=_binary("image/svg+xml", "One path per object."))
async def all_svg(request: HttpRequest, token: str,
                  query: Query[schemas.VectorQuery]) -> HttpResponseBase:
    def run(access: editing.Access) -> download_jobs.Job:
        options, _ = downloads.vector_settings(query.model_dump())
        session = editing.reload(access.session)
        return download_jobs.Job(
            download_jobs.cache_key("all.svg", session, _visible(session), _params(query)),
            lambda: downloads.svg(session.photo, _all(session), options).encode(),
            "image/svg+xml", f"{_stem(access)}-masks.svg")
    return await in_thread(request, token, run)


@api.get(f"{SESSION}/sidecar.xmp", response=DOWNLOAD,
         summary="darktable XMP sidecar with the visible objects as drawn masks",
         openapi_extra=_binary("application/rdf+xml", XMP_HELP))
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

    return download_jobs.Job(download_jobs.cache_key(kind, session, objects, _params(query)),
                             make, "application/rdf+xml", filename)


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
    return await in_thread(request, token, _no_content(editing.remove_sidecar))
