"""WSGI entry point (HTTP API only; the live socket needs ASGI: use maskweb.asgi with Daphne)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "maskweb.settings")
application = get_wsgi_application()
