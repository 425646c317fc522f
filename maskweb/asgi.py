"""ASGI entry point for Daphne: HTTP (Django, static files included) and the session sockets.

Static files are served by Django's own ASGIStaticFilesHandler straight from frontend/: no
collectstatic step, no extra dependency, and the page's few small files need nothing more on
one machine (behind a reverse proxy, let the proxy serve /static/ instead). Every HTTP answer
gets the security headers (maskweb.headers); Daphne's connections get their deadlines and
size limits (maskweb.daphne_http).
"""

from __future__ import annotations

import gc
import os
import threading
from typing import Any
from urllib.parse import ParseResult

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.exceptions import SuspiciousOperation  # noqa: E402
from django.http import Http404, HttpRequest  # noqa: E402

from maskweb import daphne_http  # noqa: E402
from maskweb.headers import SecurityHeaders  # noqa: E402
from maskweb.masking.decoding import decode_procs, engine, render  # noqa: E402
from maskweb.masking.live.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """A browser always sends Origin: it must be one of ALLOWED_HOSTS, so another site cannot
    drive a session from a visitor's browser. Scripts send none and are let through (the
    token in the path is their credential)."""

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


class StaticFiles(ASGIStaticFilesHandler):
    """A path that leaves the static folder (``/static/../settings.py``, encoded or not) is
    simply not found: Django raises SuspiciousFileOperation for it, which the handler answered
    with a 500."""

    def serve(self, request: HttpRequest) -> Any:
        try:
            return super().serve(request)
        except SuspiciousOperation:
            raise Http404("No such file.") from None


daphne_http.install()  # under Daphne only (the hooks touch Daphne's classes)


def settle_in() -> None:
    """The web process's start, off the main thread: the decoder (in the decode processes, or
    here without them) is warmed up (the first click should not wait for its slow first runs,
    see engine), then everything loaded so far is moved out of the garbage collector's sight.

    Django, numpy, onnxruntime and the decoder live as long as the process. A full
    collection walked all of them, holding the GIL while every click's Python code waited:
    116,000 objects, 21 ms on an idle machine, 48 ms once during a 4-session bench run.
    Frozen (gc.freeze), they are skipped; a collection walks only what came since.
    """
    if decode_procs.start(render.CORES) is None:
        engine.warm_up_default("decoder")
    # else the decode processes warm up their own decoder: this process decodes only if
    # they keep dying (decode_procs.Pool.decode), and would load the model then.
    gc.freeze()


engine.one_thread_per_decode()
threading.Thread(target=settle_in, name="warm-up", daemon=True).start()

application = ProtocolTypeRouter({
    "http": SecurityHeaders(StaticFiles(django_http)),
    "websocket": BrowserOriginValidator(URLRouter(websocket_urlpatterns),
                                        settings.ALLOWED_HOSTS),
})
