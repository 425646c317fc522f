"""The two HTML pages: the upload page and a session's page (edit or view link). The page is
the same for every session; it loads the session's state over the API. An unknown link is
Django's 404 page, as any page that does not exist.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.http.response import HttpResponseBase

from maskweb.masking import editing


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
