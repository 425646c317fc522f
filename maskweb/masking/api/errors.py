"""The API answers in JSON, its errors included.

The views map every error they know to ``{"error": {"code", "message"}}`` (views.error_for).
What reaches Django's own error handling instead (an unknown API path, a method a route does
not take (django-ninja answers it with Django's 405 and its ``Allow``), an
exception nobody expected, a host not allowed) would be answered with Django's HTML pages: on
a path under /api/ this middleware turns any such answer into the JSON shape with the same
status, so a script always gets JSON. The pages keep Django's HTML.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.utils.deprecation import MiddlewareMixin

API_PREFIX = "/api/"

# The code and message of each status Django answers with its own page.
DJANGO_ERRORS = {
    400: ("bad_request", "The request is malformed."),
    403: ("forbidden", "This request is not allowed."),
    404: ("not_found", "There is no such API path; see /api/v1/openapi.json."),
    405: ("method_not_allowed", "This method is not allowed here."),
    408: ("timeout", "The request came too slowly and was cut off; send it again."),
    413: ("too_large", "The request body is too large."),
    500: ("internal", "Something went wrong on the server; nothing changed."),
}


def error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _is_json(response: HttpResponseBase) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


class ApiErrorMiddleware(MiddlewareMixin):
    def process_response(self, request: HttpRequest,
                         response: HttpResponseBase) -> HttpResponseBase:
        if response.status_code < 400 or not request.path.startswith(API_PREFIX) \
                or _is_json(response):
            return response
        code, message = DJANGO_ERRORS.get(
            response.status_code, ("error", f"The request failed ({response.status_code})."))
        if response.status_code == 405 and "Allow" in response:
            message = f"Use {', '.join(sorted(response['Allow'].split(', ')))} on this path."
        answer = error(response.status_code, code, message)
        for header in ("Allow", "Retry-After"):
            if header in response:
                answer[header] = response[header]
        return answer


def error_body(status: int) -> bytes:
    """The JSON error body for ``status`` (for answers made outside Django, see daphne_http)."""
    code, message = DJANGO_ERRORS.get(status, ("error", "The request failed."))
    return json.dumps({"error": {"code": code, "message": message}}).encode()
