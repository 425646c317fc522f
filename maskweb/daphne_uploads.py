"""Daphne's HTTP requests skip Twisted's form parsing.

Twisted's Request parses every multipart POST body into ``request.args`` with the ``email``
package, on the event loop, before Daphne hands the raw body to Django, which parses it again;
``request.args`` is never read. For a 5.5 MB photo that took 196 ms, during which no socket of
the process was served (a click's mask waited), and a body Twisted could not parse got Twisted's
bare 400 page instead of the API's JSON error. Twisted's Request takes
``parsePOSTFormSubmission=False`` for this; Daphne does not pass it, so it is passed here.
"""

from __future__ import annotations

from typing import Any

_MARK = "_maskweb_skips_form_parsing"


def skip_twisted_form_parsing() -> None:
    """Makes every Daphne request of this process leave POST bodies to Django (idempotent)."""
    from daphne.http_protocol import WebRequest

    original = WebRequest.__init__
    if getattr(original, _MARK, False):
        return

    def __init__(self: WebRequest, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("parsePOSTFormSubmission", False)
        original(self, *args, **kwargs)

    setattr(__init__, _MARK, True)
    WebRequest.__init__ = __init__
