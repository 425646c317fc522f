"""The page's routes and the HTTP API's mount point (/api/v1/, django-ninja)."""

from django.urls import path, re_path

from maskweb.masking.api import download_routes, pages, session_routes
from maskweb.masking.api.app import api

# The route modules register their routes with ``api`` as they are imported.
ROUTES = (session_routes, download_routes)

urlpatterns = [
    path("", pages.upload_page, name="upload-page"),
    re_path(r"^s/(?P<token>[A-Za-z0-9_-]{1,64})/$", pages.session_page, name="session-page"),
    # The HTTP API (django-ninja), its OpenAPI document at api/v1/openapi.json.
    path("api/v1/", api.urls),
]
