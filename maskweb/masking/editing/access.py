"""Who is asking: a share link resolved to its session and role (edit or view).

The edit link reads and changes the session; the view link only reads it. Every opening of a
link counts as activity, which keeps the session from expiring (see retention).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from maskweb.masking.models import MaskSession

EDIT, VIEW = "edit", "view"
# last_active is written at most this often per session (a read of the session is not worth
# a write each time).
ACTIVE_PRECISION = dt.timedelta(minutes=10)


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


@dataclass
class Access:
    session: MaskSession
    role: str

    def require_edit(self) -> None:
        if self.role != EDIT:
            raise Forbidden("This is a view link: it cannot change the session.")


def resolve(token: str) -> Access:
    """The session this link opens, with its role; each opening counts as activity (idle
    sessions expire, see maskweb.masking.editing.retention)."""
    if not token or len(token) > 64:
        raise NotFound(token)
    session = (MaskSession.objects.select_related("photo", "current")
               .filter(edit_token=token).first())
    role = EDIT
    if session is None:
        session = (MaskSession.objects.select_related("photo", "current")
                   .filter(view_token=token).first())
        role = VIEW
    if session is None:
        raise NotFound(token)
    now = timezone.now()
    if session.last_active < now - ACTIVE_PRECISION:
        MaskSession.objects.filter(pk=session.pk).update(last_active=now)
        session.last_active = now
    return Access(session, role)


def reload(session: MaskSession) -> MaskSession:
    return MaskSession.objects.select_related("photo", "current").get(pk=session.pk)


def revision(session: MaskSession) -> int | None:
    """The session's revision in the database now (None: deleted)."""
    return MaskSession.objects.filter(pk=session.pk).values_list("revision", flat=True).first()
