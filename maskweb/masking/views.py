"""The HTTP API (docs/protocol.md, /api/v1/openapi.json) and the two pages. Thin: parse, call a
service, shape the answer. Errors are always ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
from channels.db import database_sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from maskweb.masking import downloads, services
from maskweb.masking.models import Status
from maskweb.masking.openapi import openapi_document
from maskweb.masking.prompts import ProtocolError
from maskweb.photos.ingest import UploadError, ingest

log = logging.getLogger(__name__)

STATUS_OF = {"internal": 500, "bad_field": 400, "bad_json": 400, "out_of_bounds": 400,
             "too_many_points": 400, "not_found": 404, "empty": 409, "not_ready": 409,
             "forbidden": 403, "unknown_type": 400, "too_large": 413}


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


View = Callable[..., HttpResponseBase]


def api(methods: list[str]) -> Callable[[View], Callable[..., Any]]:
    """Method check, token resolution (``token`` kwarg -> ``access``) and error mapping.

    The view runs in a worker thread of its own (``thread_sensitive=False``): Django would run
    every sync view on one shared thread, so one slow decode or 50 MP vectorization would hold
    up every other request (page loads, uploads, downloads) behind it.
    """

    def wrap(view: View) -> Callable[..., Any]:
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if "token" in kwargs:
                    kwargs["access"] = services.resolve(kwargs.pop("token"))
                return view(request, *args, **kwargs)
            except services.NotFound:
                return error(404, "not_found", "No session has this link.")
            except services.Forbidden as exc:
                return error(403, "forbidden", str(exc))
            except ProtocolError as exc:
                return error(STATUS_OF.get(exc.code, 400), exc.code, exc.message)
            except UploadError as exc:
                return error(exc.status, exc.code, exc.message)
            except downloads.DownloadError as exc:
                return error(exc.status, exc.code, exc.message)
            except RequestDataTooBig:
                return error(413, "too_large", "The request body is too large.")
            except redis.RedisError:
                log.exception("Redis is unreachable")
                return error(503, "unavailable", "The server's Redis is unreachable; try again "
                             "in a moment.")

        @csrf_exempt
        @require_http_methods(methods)
        @functools.wraps(view)
        async def in_thread(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response: HttpResponseBase = await database_sync_to_async(
                inner, thread_sensitive=False)(request, *args, **kwargs)
            return response

        return in_thread

    return wrap


def json_body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body, parse_constant=_refuse)
    except ValueError as exc:
        raise ProtocolError("bad_json", f"The body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "The body must be a JSON object.")
    return data


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


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
        services.resolve(token)
    except services.NotFound:
        raise Http404("No session has this link.") from None
    response = _page("session.html")
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never leak it
    return response


# --- API -----------------------------------------------------------------------------------

@api(["GET"])
def openapi(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse(openapi_document())


@api(["GET"])
def models(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse({"models": services.model_list(),
                         "default": services.engine.default_model()})


@api(["POST"])
def create_session(request: HttpRequest) -> HttpResponseBase:
    content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    if content_length > settings.MAX_UPLOAD_BYTES + 1024 * 1024:
        # Refused before Django reads the body into a temp file.
        raise UploadError(413, "too_large", f"The upload is {content_length:,} bytes; at most "
                          f"{settings.MAX_UPLOAD_BYTES:,} are accepted.")
    upload = request.FILES.get("photo")
    if upload is None:
        raise UploadError(400, "invalid_image", "Send the photo as the multipart field 'photo'.")
    model = request.POST.get("model") or None
    if model is not None:
        services.check_model(model)
    photo = ingest(upload, upload.name, upload.size)
    session = services.create_session(photo, model, upload.name)
    state = services.session_state(services.Access(services.reload(session), services.EDIT))
    return JsonResponse(state, status=201)


@api(["GET"])
def session_detail(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    return JsonResponse(services.session_state(access))


@api(["GET"])
def photo(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    path = access.session.photo.preview_path
    response = FileResponse(path.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


def _mask_answer(access: services.Access, request_id: str | None = None) -> HttpResponseBase:
    rendered = services.render_current(access.session, request_id)
    if rendered.header is None:
        session = rendered.session
        return JsonResponse({"status": session.status, "progress": session.progress,
                             "message": session.message}, status=202)
    png = rendered.frame[4 + len(json.dumps(rendered.header, separators=(",", ":")).encode()):] \
        if rendered.frame else b""
    return JsonResponse({**rendered.header, "png_base64": base64.b64encode(png).decode()})


@api(["POST"])
def prompts(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    services.add_prompt_and_render(access, json_body(request))
    return _mask_answer(access)


@api(["GET"])
def current(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    return _mask_answer(access)


@api(["POST"])
def undo(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    services.undo(access)
    return _mask_answer(access)


@api(["POST"])
def redo(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    services.redo(access)
    return _mask_answer(access)


@api(["POST"])
def clear(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    services.clear(access)
    return _mask_answer(access)


@api(["POST"])
def candidate(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    services.select_candidate(access, json_body(request).get("index"))
    return _mask_answer(access)


@api(["POST"])
def apply(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    obj = services.apply(access, json_body(request).get("name"))
    session = services.reload(access.session)
    token = session.edit_token
    return JsonResponse({"object": services.object_dict(session, obj, token),
                         "objects": services.objects_list(session, token)}, status=201)


@api(["PUT"])
def model(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    session = services.switch_model(access, json_body(request).get("model"))
    return JsonResponse(services.session_state(services.Access(session, access.role)),
                        status=202 if session.status != Status.READY else 200)


@api(["GET"])
def objects(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    token = access.session.edit_token if access.role == services.EDIT else \
        access.session.view_token
    return JsonResponse({"objects": services.objects_list(access.session, token)})


@api(["PATCH", "DELETE"])
def object_detail(request: HttpRequest, access: services.Access, number: int) -> HttpResponseBase:
    if request.method == "DELETE":
        access.require_edit()
        services.delete_object(access, number)
        return HttpResponse(status=204)
    body = json_body(request)
    if "name" not in body and "visible" not in body:
        raise ProtocolError("bad_field", "send 'name' and/or 'visible'")
    obj = services.update_object(access, number, name=body.get("name"),
                                 visible=body.get("visible"))
    return JsonResponse(services.object_dict(access.session, obj, access.session.edit_token))


@api(["POST"])
def reopen(request: HttpRequest, access: services.Access, number: int) -> HttpResponseBase:
    session = services.reopen(access, number)
    return JsonResponse(services.session_state(services.Access(session, access.role)))


def _attachment(data: bytes | str, content_type: str, filename: str) -> HttpResponseBase:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _stem(access: services.Access) -> str:
    return Path(access.session.photo_name).stem or "photo"


@api(["GET"])
def object_png(request: HttpRequest, access: services.Access, number: int) -> HttpResponseBase:
    obj = services.get_object(access.session, number)
    mask = _object_mask(access, obj)
    soft = request.GET.get("soft") in ("1", "true", "yes")
    return _attachment(downloads.png(access.session.photo, [mask], soft=soft), "image/png",
                       f"{_stem(access)}-{obj.number}.png")


@api(["GET"])
def object_svg(request: HttpRequest, access: services.Access, number: int) -> HttpResponseBase:
    obj = services.get_object(access.session, number)
    options, _ = downloads.vector_settings(request.GET)
    mask = _object_mask(access, obj)
    return _attachment(downloads.svg(access.session.photo, [(obj, mask)], options),
                       "image/svg+xml",
                       f"{_stem(access)}-{obj.number}.svg")


@api(["GET"])
def object_xmp(request: HttpRequest, access: services.Access, number: int) -> HttpResponseBase:
    obj = services.get_object(access.session, number)
    return _sidecar_answer(request, access, lambda: [(obj, _object_mask(access, obj))])


def _object_mask(access: services.Access, obj: Any) -> np.ndarray:
    mask = services.object_work_mask(access.session, obj)
    if mask is None or not mask.any():
        raise ProtocolError("empty", "This object has no mask yet.")
    return mask


def _all(access: services.Access) -> list[tuple[Any, np.ndarray]]:
    items = services.visible_objects(services.reload(access.session))
    if not items:
        raise ProtocolError("empty", "There is no visible mask to download yet.")
    return items


@api(["GET"])
def all_png(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    items = _all(access)
    soft = request.GET.get("soft") in ("1", "true", "yes")
    return _attachment(downloads.png(access.session.photo, [m for _, m in items], soft=soft),
                       "image/png", f"{_stem(access)}-mask.png")


@api(["GET"])
def all_svg(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    options, _ = downloads.vector_settings(request.GET)
    return _attachment(downloads.svg(access.session.photo, _all(access), options),
                       "image/svg+xml",
                       f"{_stem(access)}-masks.svg")


@api(["GET"])
def sidecar_xmp(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    return _sidecar_answer(request, access, lambda: _all(access))


def _sidecar_answer(request: HttpRequest, access: services.Access,
                    items: Callable[[], list[tuple[Any, np.ndarray]]]) -> HttpResponseBase:
    """The XMP download of ``items()``, merged into the session's uploaded sidecar if any.

    The settings are read before ``items()`` makes the masks, so a bad parameter is a 400
    without a mask (maybe a decode) being made for nothing. The file is named as darktable
    looks for it (``<photo name>.xmp``) for one object too: under any other name darktable
    would not read it.
    """
    session = services.reload(access.session)
    options, feather = downloads.vector_settings(request.GET)
    data, filename = downloads.xmp(session, items(), options, feather)
    return _attachment(data, "application/rdf+xml", filename)


@api(["POST"])
def upload_sidecar(request: HttpRequest, access: services.Access) -> HttpResponseBase:
    access.require_edit()
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("sidecar")
        data = upload.read(4 * 1024 * 1024 + 1) if upload is not None else b""
    else:
        data = request.body
    downloads.store_sidecar(access.session, data)
    return JsonResponse({"sidecar": True, "bytes": len(data)})
