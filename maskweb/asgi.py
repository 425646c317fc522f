"""ASGI entry point for Daphne: HTTP (Django, static files included) and the session sockets.

Static files are served by Django's own ASGIStaticFilesHandler straight from frontend/: no
collectstatic step, no extra dependency, and the page's few small files need nothing more on
one machine (behind a reverse proxy, let the proxy serve /static/ instead).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from maskweb.masking.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": ASGIStaticFilesHandler(django_http),
    # Origin checked against ALLOWED_HOSTS: another site cannot drive a session from a
    # visitor's browser.
    "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
})
