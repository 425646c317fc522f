"""Security headers on every HTTP answer, static files and Daphne-level errors included.

Django's SecurityMiddleware and XFrameOptionsMiddleware set these on the answers Django makes;
static files (served by the ASGI static handler, which skips the middleware) had none. This
ASGI wrapper adds any that an answer lacks:

- ``Content-Security-Policy``: settings.CONTENT_SECURITY_POLICY. Only the app's own origin:
  the pages load their scripts, styles and images from /static/ and the API, open their socket
  to the same host, and use no inline script or style attribute (tests/e2e checks that the
  pages raise no violation);
- ``Referrer-Policy: no-referrer``: tokens are in URLs, and no Referer may carry them away;
- ``X-Frame-Options: DENY`` (with the CSP's ``frame-ancestors 'none'``): no framing, so no
  click-jacking of the edit page;
- ``X-Content-Type-Options: nosniff``;
- ``Cross-Origin-Opener-Policy: same-origin``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[..., Awaitable[None]]


def security_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", settings.CONTENT_SECURITY_POLICY.encode()),
        (b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()),
        (b"x-frame-options", settings.X_FRAME_OPTIONS.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


class SecurityHeaders:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers += [(name, value) for name, value in security_headers()
                            if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
