"""A session as the pages and the API show it: its state, and each object's summary."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from maskweb.masking.decoding.grids import to_upright
from maskweb.masking.editing import downloads, history
from maskweb.masking.editing.access import EDIT, Access
from maskweb.masking.editing.encodes import model_list
from maskweb.masking.models import MaskObject, MaskSession

log = logging.getLogger(__name__)


def object_dict(session: MaskSession, obj: MaskObject, token: str) -> dict[str, Any]:
    base = f"/api/v1/sessions/{token}/objects/{obj.number}"
    return {"id": obj.number, "name": obj.name, "visible": obj.visible, "area": obj.area,
            "colour": obj.colour or None,
            "combination": obj.recipe["op"] if obj.recipe else None,
            "png_url": f"{base}/mask.png", "svg_url": f"{base}/mask.svg",
            "xmp_url": f"{base}/sidecar.xmp"}


def objects_list(session: MaskSession, token: str) -> list[dict[str, Any]]:
    return [object_dict(session, o, token)
            for o in session.mask_objects.filter(applied=True).order_by("number")]


def session_state(access: Access, *, scores: list[float | None] | None = None) -> dict[str, Any]:
    session = access.session
    token = session.edit_token if access.role == EDIT else session.view_token
    photo = session.photo
    current = session.current
    api = f"/api/v1/sessions/{token}"
    try:
        models = model_list()
    except Exception:  # the engine failing to list must not hide the session
        log.exception("listing models failed")
        models = []
    state: dict[str, Any] = {
        "role": access.role,
        "view_url": f"/s/{session.view_token}/",
        "view_token": session.view_token,
        "photo": {"name": session.photo_name, "width": photo.upright_width,
                  "height": photo.upright_height, "stored_width": photo.stored_width,
                  "stored_height": photo.stored_height, "orientation": photo.orientation,
                  "preview_url": f"{api}/photo", "preview_width": photo.work_width,
                  "preview_height": photo.work_height},
        "model": session.model_id, "models": models,
        "status": session.status, "progress": session.progress, "message": session.message,
        "revision": session.revision,
        "current": {
            "object_id": current.number if current else None,
            "prompts": [to_upright(p, photo) for p in current.effective_prompts()]
            if current else [],
            "candidate": current.candidate if current else 0,
            "scores": scores or [],
            "can_undo": history.can_undo(session, current),
            "can_redo": history.can_redo(session, current),
        },
        "objects": objects_list(session, token),
        "downloads": {"png": f"{api}/mask.png", "svg": f"{api}/masks.svg",
                      "xmp": f"{api}/sidecar.xmp"},
        "sidecar": ({"name": session.sidecar_name or "sidecar.xmp",
                     "bytes": session.sidecar_bytes} if session.sidecar_file else None),
        "vectorize": downloads.vector_defaults(),
        "vectorize_bounds": downloads.vector_bounds(),
        "limits": {"max_stroke_points": settings.WS_MAX_STROKE_POINTS,
                   "max_prompts": settings.WS_MAX_PROMPTS,
                   "max_message_bytes": settings.WS_MAX_MESSAGE_BYTES},
    }
    if access.role == EDIT:
        state["edit_url"] = f"/s/{session.edit_token}/"
        state["edit_token"] = session.edit_token
    return state
