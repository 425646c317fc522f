"""ASGI entry point for Daphne: HTTP (Django, static files included) and the session sockets.

Static files are served by Django's own ASGIStaticFilesHandler straight from frontend/: no
collectstatic step, no extra dependency, and the page's few small files need nothing more on
one machine (behind a reverse proxy, let the proxy serve /static/ instead).
"""

from __future__ import annotations

import gc
import os
import threading
from urllib.parse import ParseResult

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from maskweb.daphne_uploads import skip_twisted_form_parsing  # noqa: E402
from maskweb.masking import engine  # noqa: E402
from maskweb.masking.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """A browser always sends Origin: it must be one of ALLOWED_HOSTS, so another site cannot
    drive a session from a visitor's browser. Scripts send none and are let through (the
    token in the path is their credential)."""

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)


skip_twisted_form_parsing()  # under Daphne only; Django parses the uploads itself

def settle_in() -> None:
    """The web process's start, off the main thread: the decoder is warmed up (the first
    click should not wait for its slow first runs, see engine), then everything loaded so far
    is moved out of the garbage collector's sight.

    Django, numpy, onnxruntime and the decoder live as long as the process. A full
    collection walked all of them, holding the GIL while every click's Python code waited:
    116,000 objects, 21 ms on an idle machine, 48 ms once during a 4-session bench run.
    Frozen (gc.freeze), they are skipped; a collection walks only what came since.
    """
    engine.warm_up_default("decoder")
    gc.freeze()


threading.Thread(target=settle_in, name="warm-up", daemon=True).start()

application = ProtocolTypeRouter({
    "http": ASGIStaticFilesHandler(django_http),
    "websocket": BrowserOriginValidator(URLRouter(websocket_urlpatterns),
                                        settings.ALLOWED_HOSTS),
})
