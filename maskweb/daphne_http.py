"""Daphne's HTTP and websocket connections, made safe against slow, large and flooding clients.

Daphne (on Twisted) reads a whole request before the application sees any of it, and had no
deadline a client could not stretch: Twisted's idle timeout starts again with every byte, so
3000 connections sending a byte now and then were held for as long as their senders liked,
and a request declaring a 330 MB body was read in full (Daphne's memory grew by 337 MB and
stayed) before the view answered 413. ``install()`` adds, in the web process only:

- a deadline for a request's line and headers (MASKWEB_HTTP_HEADER_TIMEOUT, from the moment
  the connection is ready for the request), and the idle timeout between requests and within
  a body (MASKWEB_HTTP_IDLE_TIMEOUT) instead of Twisted's minute;
- a minimum average rate for a body (MASKWEB_HTTP_MIN_BODY_RATE bytes a second, checked once
  the idle timeout has passed since the headers): a trickle is cut with 408;
- a body larger than the limit (MASKWEB_MAX_UPLOAD_BYTES plus 1 MB of multipart framing for an
  upload, MASKWEB_MAX_REQUEST_BYTES otherwise) refused with 413 from its declared length,
  before any of it is read, and a chunked body refused as soon as it passes the limit;
- a chunked body that arrived whole is handed on with its length, so Django parses it (it read
  a missing Content-Length as an empty body: "send the photo as the multipart field");
- the body handed to the application in chunks of 1 MB rather than 8 KB, each its own block
  of memory that goes back to the system when the application has read it;
- Twisted's own form parsing skipped (see skip_twisted_form_parsing);
- a websocket whose unread messages reach MASKWEB_WS_QUEUE stops being read from (TCP
  back-pressure) until the application has caught up, so a flooding page cannot grow the
  process's memory: its messages wait in its own send buffer.

Each refusal is a JSON error like the API's. These hook into Daphne's and Twisted's classes
(Daphne 4.2, Twisted 25-26); tests/web/test_http_limits.py drives them over real sockets.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, cast

from django.conf import settings

from maskweb.masking.api.errors import error_body

log = logging.getLogger(__name__)

_MARK = "_maskweb_installed"
UPLOAD_PATH = b"/api/v1/sessions"
MULTIPART_SLACK = 1024 * 1024
BODY_CHUNK = 1024 * 1024
LINGER_SECONDS = 2.0  # after a refusal, how long the client may read the answer
REASONS = {408: b"Request Timeout", 413: b"Payload Too Large"}


def body_limit(path: bytes) -> int:
    if path.split(b"?", 1)[0].rstrip(b"/") == UPLOAD_PATH:
        return int(settings.MAX_UPLOAD_BYTES) + MULTIPART_SLACK
    return int(settings.MAX_REQUEST_BYTES)


def install() -> None:
    """Installs every guard above in this process (idempotent)."""
    skip_twisted_form_parsing()
    _guard_http_channels()
    _guard_request_bodies()
    _guard_websockets()


def skip_twisted_form_parsing() -> None:
    """Twisted's Request parses every multipart POST body into ``request.args`` with the
    ``email`` package, on the event loop, before Daphne hands the raw body to Django, which
    parses it again; ``request.args`` is never read. For a 5.5 MB photo that took 196 ms,
    during which no socket of the process was served, and a body Twisted could not parse got
    Twisted's bare 400 page instead of the API's JSON error. Twisted's Request takes
    ``parsePOSTFormSubmission=False`` for this; Daphne does not pass it, so it is passed
    here."""
    from daphne.http_protocol import WebRequest

    original = WebRequest.__init__
    if getattr(original, _MARK, False):
        return

    def __init__(self: WebRequest, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    setattr(__init__, _MARK, True)
    WebRequest.__init__ = __init__


# --- connections: deadlines and size limits -------------------------------------------------

def _guarded_channel_class() -> type:
    from twisted.internet.protocol import connectionDone
    from twisted.python.failure import Failure
    from twisted.web import http

    class GuardedHTTPChannel(http.HTTPChannel):
        """Twisted's HTTP/1.1 channel with a header deadline, a body rate and size limit."""

        _header_call: Any = None
        _body_call: Any = None
        _body_started = 0.0
        _body_last = 0.0  # when the body's latest bytes came
        _body_bytes = 0  # the body's bytes so far, as decoded (see count_body)
        _body_limit = 0
        _in_body = False
        _refused = False
        _idle = True  # no byte of the awaited request has come yet

        def connectionMade(self) -> None:
            super().connectionMade()
            self._arm_header_deadline()

        def _later(self, delay: float, func: Any, *args: Any) -> Any:
            return cast(Any, self).callLater(delay, func, *args)

        def _arm_header_deadline(self) -> None:
            self._idle = True
            self._cancel("_header_call")
            self._header_call = self._later(settings.HTTP_HEADER_TIMEOUT, self._too_slow,
                                            "headers")

        def _cancel(self, name: str) -> None:
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)

        def dataReceived(self, data: bytes) -> None:
            if self._refused:
                return  # read and dropped until the connection closes
            self._idle = False
            super().dataReceived(data)

        def rawDataReceived(self, data: bytes) -> None:
            if self._in_body:
                self._body_last = time.monotonic()
            if not self._refused:
                super().rawDataReceived(data)

        def count_body(self, size: int) -> bool:
            """A request's decoded body grew by ``size`` bytes; False once it is refused."""
            if self._refused:
                return False
            self._body_bytes += size
            if self._body_bytes > self._body_limit:  # a chunked body, past the limit
                self._refuse(413)
                return False
            return True

        def allHeadersReceived(self) -> None:
            self._cancel("_header_call")
            self._body_limit = body_limit(getattr(self, "_path", b""))
            if self.length is not None and self.length > self._body_limit:
                # Before Twisted reads (or asks for, with 100-continue) a byte of it.
                self._refuse(413)
                return
            if self.length != 0:
                self._in_body, self._body_bytes = True, 0
                self._body_started = self._body_last = time.monotonic()
                self._body_call = self._later(1.0, self._check_body_rate)
                # The body's own clock below answers 408; Twisted's idle timer would close
                # without a word.
                self.setTimeout(None)
            super().allHeadersReceived()

        def _check_body_rate(self) -> None:
            self._body_call = None
            if not self._in_body or self._refused:
                return
            now = time.monotonic()
            elapsed = now - self._body_started
            stalled = now - self._body_last >= settings.HTTP_IDLE_TIMEOUT
            trickling = elapsed >= settings.HTTP_IDLE_TIMEOUT and \
                self._body_bytes < settings.HTTP_MIN_BODY_RATE * elapsed
            if stalled or trickling:
                self._too_slow("body")
                return
            self._body_call = self._later(1.0, self._check_body_rate)

        def allContentReceived(self) -> None:
            if self._in_body:
                self._in_body = False
                self._cancel("_body_call")
                self.setTimeout(self.timeOut)  # Twisted keeps it for between requests
            super().allContentReceived()

        def requestDone(self, request: Any) -> None:
            super().requestDone(request)
            if self.persistent and self.transport is not None:
                self._arm_header_deadline()  # the next request's clock

        def connectionLost(self, reason: Failure = connectionDone) -> None:
            self._cancel("_header_call")
            self._cancel("_body_call")
            super().connectionLost(reason)

        def _too_slow(self, what: str) -> None:
            self._header_call = None
            if self._handlingRequest and what == "headers":
                return  # a request is being answered; its successor's clock starts later
            if what == "headers" and self._idle:
                # A kept-alive connection nobody used: closed without an answer, which a
                # client would take for the answer to a request it sent just then.
                self.loseConnection()
                return
            peer = cast(Any, self.transport).getPeer() if self.transport else "?"
            log.info("closing a connection from %s: its %s came too slowly", peer, what)
            self._refuse(408)

        def _refuse(self, status: int) -> None:
            """Answers ``status`` with a JSON error and closes the connection; what the
            client still sends meanwhile is dropped."""
            if self._refused or self.transport is None:
                return
            self._refused, self._in_body = True, False
            self._cancel("_body_call")
            self._cancel("_header_call")
            body = error_body(status)
            head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n"
                    b"X-Content-Type-Options: nosniff\r\n\r\n"
                    % (status, REASONS[status], len(body)))
            transport = cast(Any, self.transport)
            transport.write(head + body)
            # Closing at once with unread data would reset the connection, and the client
            # might never see the answer: stop writing, read and drop a little longer.
            with contextlib.suppress(AttributeError):
                transport.loseWriteConnection()
            self._later(LINGER_SECONDS, self._close)

        def _close(self) -> None:
            if self.transport is not None:
                cast(Any, self.transport).abortConnection()

    return GuardedHTTPChannel


def _guard_http_channels() -> None:
    from daphne.http_protocol import HTTPFactory
    from twisted.web import http

    if getattr(HTTPFactory, _MARK, False):
        return
    channel_class = _guarded_channel_class()

    def protocol(factory: Any) -> Any:
        return http._GenericHTTPChannelProtocol(channel_class())

    HTTPFactory.protocol = protocol
    original_init = HTTPFactory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.timeOut = settings.HTTP_IDLE_TIMEOUT  # Twisted's idle timeout (a minute)

    HTTPFactory.__init__ = __init__
    setattr(HTTPFactory, _MARK, True)


def _guard_request_bodies() -> None:
    """A chunked body gets its length; bodies go to the application in 1 MB chunks."""
    from daphne.http_protocol import WebRequest

    original = WebRequest.process
    if getattr(original, _MARK, False):
        return

    original_chunk = WebRequest.handleContentChunk

    def handleContentChunk(self: WebRequest, data: bytes) -> None:
        channel = self.channel
        if channel is not None and hasattr(channel, "count_body") and \
                not channel.count_body(len(data)):
            return  # refused: dropped
        original_chunk(self, data)

    WebRequest.handleContentChunk = handleContentChunk

    def process(self: WebRequest) -> Any:
        content = getattr(self, "content", None)
        if content is not None and not self.requestHeaders.hasHeader(b"content-length"):
            size = content.seek(0, 2)
            content.seek(0)
            if size or self.requestHeaders.hasHeader(b"transfer-encoding"):
                self.requestHeaders.removeHeader(b"transfer-encoding")
                self.requestHeaders.setRawHeaders(b"content-length", [str(size).encode()])
        server = self.channel.factory.server if self.channel is not None else None
        if server is not None and server.request_buffer_size < BODY_CHUNK:
            server.request_buffer_size = BODY_CHUNK
        return original(self)

    setattr(process, _MARK, True)
    WebRequest.process = process


# --- websockets: back-pressure ----------------------------------------------------------------

def _guard_websockets() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.onMessage
    if getattr(original, _MARK, False):
        return

    def onMessage(self: Any, payload: bytes, isBinary: bool) -> None:
        original(self, payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if queue is not None and queue.qsize() >= settings.WS_QUEUE and \
                not getattr(self, "_maskweb_paused", False) and self.transport is not None:
            self._maskweb_paused = True
            self.transport.pauseProducing()
            _resume_when_read(self)

    setattr(onMessage, _MARK, True)
    WebSocketProtocol.onMessage = onMessage


def _resume_when_read(protocol: Any) -> None:
    from twisted.internet import reactor as installed

    reactor = cast(Any, installed)

    def check() -> None:
        if protocol.transport is None:
            return
        if protocol.application_queue.qsize() <= settings.WS_QUEUE // 2:
            protocol._maskweb_paused = False
            protocol.transport.resumeProducing()
        else:
            reactor.callLater(0.02, check)

    reactor.callLater(0.02, check)
