"""The page's routes and the HTTP API's mount point (/api/v1/, django-ninja)."""

from django.urls import path, re_path

from maskweb.masking.api import pages, views

urlpatterns = [
    path("", pages.upload_page, name="upload-page"),
    re_path(r"^s/(?P<token>[A-Za-z0-9_-]{1,64})/$", pages.session_page, name="session-page"),
    # The HTTP API (django-ninja), its OpenAPI document at api/v1/openapi.json.
    path("api/v1/", views.api.urls),
]
