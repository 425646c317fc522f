"""The HTTP API's routes of a session: the models, uploading a photo, the session's state,
its photo, its current object's prompts and mask, its objects. Each route is thin: the typed
request in, the session domain (maskweb.masking.editing) called off the event loop, JSON out.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from ninja import Query

from maskweb.masking import editing
from maskweb.masking.api.app import (
    MASK,
    READ_ERRORS,
    SESSION,
    WRITE_ERRORS,
    api,
    binary,
    in_thread,
    no_content,
)
from maskweb.masking.editing import limits
from maskweb.masking.models import MaskObject, Status
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos import crops, storage
from maskweb.photos.ingest import UploadError, ingest


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
    return await in_thread(request, token, no_content(editing.delete_session))


@api.get(f"{SESSION}/photo", response={200: None, READ_ERRORS: schemas.Error},
         summary="The upright preview picture",
         openapi_extra=binary("image/jpeg", "The preview."))
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
         openapi_extra=binary("image/jpeg", "The region at full resolution."))
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
    return await in_thread(request, token, no_content(editing.delete_object), number)


@api.post(f"{SESSION}/objects/{{number}}/reopen",
          response={200: schemas.SessionState, WRITE_ERRORS: schemas.Error},
          summary="Make an object the current one again")
async def reopen(request: HttpRequest, token: str, number: int) -> HttpResponseBase:
    def run(access: editing.Access) -> HttpResponseBase:
        session = editing.reopen(access, number)
        return JsonResponse(editing.session_state(editing.Access(session, access.role)))
    return await in_thread(request, token, run)
