from django.urls import path, re_path

from maskweb.masking.api import views

API = "api/v1/sessions/<str:token>"

urlpatterns = [
    path("", views.upload_page, name="upload-page"),
    re_path(r"^s/(?P<token>[A-Za-z0-9_-]{1,64})/$", views.session_page, name="session-page"),
    path("api/v1/openapi.json", views.openapi, name="openapi"),
    path("api/v1/models", views.models, name="models"),
    path("api/v1/sessions", views.create_session, name="sessions"),
    path(f"{API}", views.session_detail, name="session"),
    path(f"{API}/photo", views.photo, name="photo"),
    path(f"{API}/photo/crop", views.photo_crop, name="photo-crop"),
    path(f"{API}/prompts", views.prompts, name="prompts"),
    path(f"{API}/current", views.current, name="current"),
    path(f"{API}/undo", views.undo, name="undo"),
    path(f"{API}/redo", views.redo, name="redo"),
    path(f"{API}/clear", views.clear, name="clear"),
    path(f"{API}/candidate", views.candidate, name="candidate"),
    path(f"{API}/apply", views.apply, name="apply"),
    path(f"{API}/combine", views.combine, name="combine"),
    path(f"{API}/model", views.model, name="model"),
    path(f"{API}/objects", views.objects, name="objects"),
    path(f"{API}/objects/<int:number>", views.object_detail, name="object"),
    path(f"{API}/objects/<int:number>/reopen", views.reopen, name="reopen"),
    path(f"{API}/objects/<int:number>/mask.png", views.object_png, name="object-png"),
    path(f"{API}/objects/<int:number>/mask.svg", views.object_svg, name="object-svg"),
    path(f"{API}/objects/<int:number>/sidecar.xmp", views.object_xmp, name="object-xmp"),
    path(f"{API}/mask.png", views.all_png, name="all-png"),
    path(f"{API}/masks.svg", views.all_svg, name="all-svg"),
    path(f"{API}/sidecar.xmp", views.sidecar_xmp, name="sidecar-xmp"),
    path(f"{API}/sidecar", views.upload_sidecar, name="sidecar"),
]
