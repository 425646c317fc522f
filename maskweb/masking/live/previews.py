"""Hover previews for one socket: the mask a click under the resting pointer would give.

A preview is worth less than any click: it has its own allowance (PREVIEW_RATE a second, past
it skipped, never an error), one is drawn at a time, a newer one replaces one that waits,
and it decodes only on a core nobody waits for (editing.preview), so previews never make
clicks wait longer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from maskweb.masking import editing
from maskweb.masking.live.throttle import TokenBucket
from maskweb.masking.plumbing import pools
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError

log = logging.getLogger(__name__)

# Hover previews a socket may ask for a second (and at once); past it they are skipped.
PREVIEW_RATE = 10.0


class Socket(Protocol):
    """What previews need of their socket."""

    access: editing.Access | None

    async def error(self, code: str, message: str, request_id: Any = None) -> None: ...

    async def send_json(self, message: dict[str, Any]) -> None: ...

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                   close: bool = False) -> None: ...


class Previews:
    # The newest preview asked for and not yet started, and the task drawing them.
    _next: tuple[schemas.Prompt, Any] | None = None
    _drawer: asyncio.Future[None] | None = None

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        # Their own allowance: previews never eat into the clicks'.
        self.bucket = TokenBucket(PREVIEW_RATE, int(PREVIEW_RATE))

    def busy(self) -> bool:
        return self._drawer is not None and not self._drawer.done()

    def drawing(self) -> asyncio.Future[None] | None:
        """The preview being drawn, if any (a closing socket lets it finish)."""
        return self._drawer if self.busy() else None

    def ask(self, prompt: schemas.Prompt, request_id: Any) -> None:
        """The mask a click there would give (editing.preview), to this socket only. A
        preview asked for while one is drawn replaces any that waits: the pointer moved on."""
        self._next = (prompt, request_id)
        if not self.busy():
            self._drawer = asyncio.ensure_future(self._draw())

    async def _draw(self) -> None:
        while self._next is not None:
            prompt, request_id = self._next
            self._next = None
            assert self.socket.access is not None
            try:
                frame = await pools.renders.run(editing.preview, self.socket.access, prompt,
                                                request_id)
            except ProtocolError as exc:
                await self.socket.error(exc.code, exc.message, request_id)
                continue
            except editing.Forbidden as exc:
                await self.socket.error("forbidden", str(exc), request_id)
                continue
            except Exception:
                log.warning("a hover preview failed", exc_info=True)
                frame = None
            if frame is None:
                await self.socket.send_json({"type": "preview", "id": request_id, "skipped": True})
            else:
                await self.socket.send(bytes_data=frame)
