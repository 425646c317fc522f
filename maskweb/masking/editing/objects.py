"""The session's applied objects: apply the current mask, combine, rename, hide, colour,
delete, reopen; and each object's mask for the downloads. Each change is undoable (history).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from maskweb.masking.decoding import render
from maskweb.masking.editing import combine, history
from maskweb.masking.editing.access import Access, reload
from maskweb.masking.editing.current import (
    bump_revision,
    locked_current,
    new_object,
    shown_current,
)
from maskweb.masking.editing.encodes import request_encode
from maskweb.masking.editing.masks import render_current
from maskweb.masking.models import MaskObject, MaskSession, Status
from maskweb.masking.plumbing import notify
from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError


def apply(access: Access, name: Any = None) -> MaskObject:
    access.require_edit()
    name = _name(name)
    session, obj = shown_current(access, "apply", "to apply")
    applied = session.mask_objects.filter(applied=True).count()
    if applied >= settings.MAX_OBJECTS:
        raise ProtocolError("too_many_objects", f"A session holds at most "
                            f"{settings.MAX_OBJECTS} objects; delete one first.")
    try:
        current = render.current_mask(session, obj)
    except render.EmbeddingMissing:
        with transaction.atomic():
            request_encode(session, lost=True)
        raise ProtocolError("not_ready", "The photo is being analysed again; apply in a "
                            "moment.") from None
    if current.mask is None or not current.mask.any():
        raise ProtocolError("empty", "The current mask is empty: nothing to apply.")
    with transaction.atomic():
        locked = MaskSession.objects.select_for_update().get(pk=session.pk)
        if locked.current_id != obj.pk:
            raise ProtocolError("bad_field", "The current object changed meanwhile; try again.")
        obj.refresh_from_db()
        name_before = obj.name
        obj.actions = obj.actions[: obj.cursor]  # its undone prompts are older than the apply
        obj.applied = True
        obj.candidate = current.candidate
        obj.mask_png = render.png_bytes(current.mask)
        obj.area = render.stored_area(session.photo, current.mask)
        if name is not None:
            obj.name = name
        obj.save()
        new = new_object(locked)
        bump_revision(locked)
        history.record(locked, "apply", {"object": obj.number, "next": new.number,
                                         "name": [name_before, obj.name]})
    # The (empty) mask of the new current object first, then the list: a page that sees the
    # new list has already been told that the current mask is gone.
    render_current(reload(session))
    notify.objects(session.pk)
    return obj


def combine_objects(access: Access, op: Any, numbers: Any, name: Any = None) -> MaskObject:
    """A new applied object from applied ones: the union of all, the first less the others,
    what they all share, or the inverse of one (maskweb.masking.editing.combine). The operands stay
    as they are; undo deletes the new object."""
    access.require_edit()
    request = schemas.check(schemas.CombineBody, {"op": op, "objects": numbers, "name": name},
                            "")
    op, numbers, name = request.op, request.objects, request.name
    with transaction.atomic():
        session, _ = locked_current(access)
        operands = [get_object(session, number) for number in numbers]
        for obj in operands:
            if not obj.applied or not obj.mask_png:
                raise ProtocolError("bad_field", f"{obj.name} is not applied yet: apply it "
                                    "first, then combine it.")
        if session.mask_objects.filter(applied=True).count() >= settings.MAX_OBJECTS:
            raise ProtocolError("too_many_objects", f"A session holds at most "
                                f"{settings.MAX_OBJECTS} objects; delete one first.")
        recipe = combine.make_recipe(op, [
            combine.operand(obj.name, bytes(obj.mask_png or b""), obj.recipe)
            for obj in operands])
        mask = combine.work_mask(recipe)
        png = render.png_bytes(mask)
        if not mask.any():
            raise ProtocolError("empty", "The combination is empty (nothing is in "
                                f"{'all of them' if op == 'intersection' else 'it'}); "
                                "no object was made.")
        last = session.mask_objects.order_by("-number").first()
        number = (last.number if last else 0) + 1
        new = MaskObject.objects.create(
            session=session, number=number,
            name=name or combine.default_name(op, [o.name for o in operands]),
            applied=True, mask_png=png, area=render.stored_area(session.photo, mask),
            recipe=recipe)
        bump_revision(session)
        history.record(session, "combine", {"object": history.snapshot(new)}, png)
        transaction.on_commit(lambda: notify.objects(session.pk))
    # A frame with the new revision: every page learns that undo can take this back.
    render_current(reload(session))
    return new


def _name(name: Any) -> str | None:
    """An object's new name, trimmed (schemas.Name), or None for none."""
    result: str | None = schemas.check(schemas.Name | None, name, "name")
    return result


def get_object(session: MaskSession, number: Any) -> MaskObject:
    number = schemas.check(schemas.ObjectNumber, number, "object_id")
    obj = session.mask_objects.filter(number=number).first()
    if obj is None:
        raise ProtocolError("not_found", f"no object {number} in this session")
    return obj


def update_object(access: Access, number: Any, *, name: Any = None,
                  visible: Any = None, colour: Any = None) -> MaskObject:
    access.require_edit()
    name = _name(name)
    visible = schemas.check(bool | None, visible, "visible")
    colour = schemas.check(schemas.Colour | None, colour, "colour")
    with transaction.atomic():
        session, _ = locked_current(access)
        obj = get_object(session, number)
        changed = {field: [getattr(obj, field), value]
                   for field, value in (("name", name), ("visible", visible),
                                        ("colour", colour))
                   if value is not None and getattr(obj, field) != value}
        if not changed:
            return obj
        for field, (_, value) in changed.items():
            setattr(obj, field, value)
        obj.save(update_fields=list(changed))
        bump_revision(session)
        history.record(session, "update", {"object": obj.number, "fields": changed})
        transaction.on_commit(lambda: notify.objects(session.pk))
    # A frame with the new revision: every page learns that undo can take this back.
    render_current(reload(session))
    return obj


def delete_object(access: Access, number: Any) -> None:
    access.require_edit()
    with transaction.atomic():
        session, _ = locked_current(access)
        obj = get_object(session, number)
        data: dict[str, Any] = {"object": history.snapshot(obj)}
        if obj.pk == session.current_id:
            data["current"] = True
            obj.actions, obj.cursor, obj.candidate = [], 0, 0  # deleting the current: empty it
            obj.save(update_fields=["actions", "cursor", "candidate"])
        else:
            obj.delete()
        bump_revision(session)
        history.record(session, "delete", data,
                       bytes(obj.mask_png) if obj.mask_png and not data.get("current") else None)
        transaction.on_commit(lambda: notify.objects(session.pk))
    render_current(reload(session))


def reopen(access: Access, number: Any) -> MaskSession:
    """The object becomes current again; a current object with prompts is applied first."""
    access.require_edit()
    obj = get_object(access.session, number)
    if obj.recipe:
        raise ProtocolError("bad_field", f"{obj.name} was made by combining objects: it has "
                            "no prompts to refine. Reopen one of its operands instead.")
    session = reload(access.session)
    current = session.current
    if current is not None and current.pk != obj.pk and current.effective_prompts():
        apply(access)
    with transaction.atomic():
        session = MaskSession.objects.select_for_update().get(pk=session.pk)
        leftover = (MaskObject.objects.filter(pk=session.current_id).first()
               if session.current_id else None)
        if leftover is not None and leftover.pk == obj.pk:
            return reload(session)  # already the current object: nothing to do
        change: dict[str, Any] = {"object": obj.number,
                                  "previous": leftover.number if leftover else None}
        if leftover is not None and not leftover.applied and not leftover.actions:
            leftover.delete()  # the empty "next object" is not worth keeping
        MaskObject.objects.filter(pk=obj.pk).update(applied=False)
        session.current_id = obj.pk
        session.save(update_fields=["current"])
        bump_revision(session)
        history.record(session, "reopen", change)
        pk = session.pk

        def tell() -> None:
            notify.objects(pk)
            notify.state(pk)
        transaction.on_commit(tell)
    fresh = reload(session)
    render_current(fresh)
    return fresh


def object_work_mask(session: MaskSession, obj: MaskObject) -> Any:
    """The object's mask at the work size (upright), or None when it has none."""
    if obj.applied and obj.mask_png:
        return render.png_to_mask(bytes(obj.mask_png))
    if obj.pk == session.current_id and obj.effective_prompts() \
            and session.status == Status.READY:
        try:
            return render.current_mask(session, obj).mask
        except render.EmbeddingMissing:
            return None
    return None


def visible_objects(session: MaskSession) -> list[tuple[MaskObject, Any]]:
    out = []
    for obj in session.mask_objects.order_by("number"):
        if obj.applied and not obj.visible:
            continue
        mask = object_work_mask(session, obj)
        if mask is not None and mask.any():
            out.append((obj, mask))
    return out
