"""The socket's route: /ws/sessions/<edit or view token>/."""

from django.urls import re_path

from maskweb.masking.live.consumers import SessionConsumer

websocket_urlpatterns = [
    re_path(r"^ws/sessions/(?P<token>[A-Za-z0-9_-]{1,64})/$", SessionConsumer.as_asgi()),
]
