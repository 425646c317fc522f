from django.urls import include, path

urlpatterns = [
    path("", include("maskweb.masking.api.urls")),
]
