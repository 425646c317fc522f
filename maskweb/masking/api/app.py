"""The HTTP API itself (docs/protocol.md, /api/v1/openapi.json): the django-ninja ``NinjaAPI``
its routes register with (session_routes, download_routes), how every error becomes JSON, and
how a route runs its work off the event loop.

Each route is a typed function whose body and query
models are maskweb.masking.protocol.schemas' (validated before the function runs; the OpenAPI
document is generated from the same declarations, with the response models). Thin: parse, call a
service off the event loop (``in_thread``), shape the answer. Errors are always
``{"error": {"code", "message"}}``, ninja's own included (``error_for`` and the handlers
below).
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import redis
from channels.db import database_sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser

from maskweb.masking import editing
from maskweb.masking.api import download_jobs
from maskweb.masking.api.errors import error
from maskweb.masking.editing import downloads, limits
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError
from maskweb.photos.ingest import UploadError

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
        response = attachment(data, job.content_type, job.filename)
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


def binary(media: str, description: str) -> dict[str, Any]:
    """openapi_extra: the success of a route answering a file (ninja documents JSON only)."""
    return {"responses": {200: {"description": description, "content": {
        media: {"schema": {"type": "string", "format": "binary"}}}}}}


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


def attachment(data: bytes | str, content_type: str, filename: str) -> HttpResponseBase:
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = attachment_disposition(filename)
    return response


def no_content(work: Callable[..., Any]) -> Callable[..., HttpResponseBase]:
    """``work(...)``, then 204 No Content (a DELETE)."""
    def run(*args: Any) -> HttpResponseBase:
        work(*args)
        return HttpResponse(status=204)
    return run
