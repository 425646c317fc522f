"""The session's undo history beyond the current object's prompt log: apply, delete, rename,
visibility, reopen and combine, each a SessionChange that can be taken back and made again.

One linear history: the current object's prompt actions and these changes carry the session
revision that made them, undo takes back the newest of either kind and redo makes again the
oldest undone one. A new change of either kind drops what was undone (as in every editor).
Every function here runs inside the caller's transaction, with the session row locked.
"""

from __future__ import annotations

from typing import Any

from maskweb.masking.models import MaskObject, MaskSession, SessionChange
from maskweb.masking.protocol.schemas import ProtocolError

# Changes kept per session; the oldest go first. A delete keeps the deleted mask (tens of KB).
MAX_CHANGES = 100

# The fields a snapshot of an object keeps (besides its mask), to bring it back as it was.
SNAPSHOT_FIELDS = ("number", "name", "visible", "colour", "applied", "actions", "cursor",
                   "candidate", "area", "recipe")


def _revision(session: MaskSession) -> int:
    """The session's revision as stored (the caller has just bumped it in this transaction)."""
    return MaskSession.objects.filter(pk=session.pk).values_list("revision", flat=True).get()


def forget_undone(session: MaskSession) -> None:
    """A new change: what was undone can no longer be made again."""
    if session.changes_undone:
        SessionChange.objects.filter(session=session, undone=True).delete()
        MaskSession.objects.filter(pk=session.pk).update(changes_undone=0)
        session.changes_undone = 0


def record(session: MaskSession, op: str, data: dict[str, Any],
           mask_png: bytes | None = None) -> SessionChange:
    """Records a change just made (after the caller bumped the revision)."""
    forget_undone(session)
    # The current object's undone prompts are older than this change: they go too.
    current = session.mask_objects.filter(pk=session.current_id).first() \
        if session.current_id else None
    if current is not None and current.can_redo:
        current.actions = current.actions[: current.cursor]
        current.save(update_fields=["actions"])
    change = SessionChange.objects.create(session=session, revision=_revision(session), op=op,
                                          data=data, mask_png=mask_png)
    done = session.changes_done + 1
    if done > MAX_CHANGES:
        old = SessionChange.objects.filter(session=session, undone=False) \
            .order_by("revision").values_list("pk", flat=True)[: done - MAX_CHANGES]
        SessionChange.objects.filter(pk__in=list(old)).delete()
        done = MAX_CHANGES
    MaskSession.objects.filter(pk=session.pk).update(changes_done=done)
    session.changes_done = done
    return change


def snapshot(obj: MaskObject) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in SNAPSHOT_FIELDS}


def restore(session: MaskSession, data: dict[str, Any], mask_png: Any) -> MaskObject:
    """Brings back an object from its snapshot, under its own number."""
    if session.mask_objects.filter(number=data["number"]).exists():
        raise ProtocolError("conflict", f"Object {data['number']} exists again; this change "
                            "cannot be undone.")
    fields = {name: data[name] for name in SNAPSHOT_FIELDS if name in data}
    return MaskObject.objects.create(session=session, mask_png=mask_png, **fields)


def prompt_rev(obj: MaskObject | None, forward: bool) -> int | None:
    """The revision of the prompt action that undo (redo with ``forward``) would move over, or
    None when there is none."""
    if obj is None:
        return None
    if forward:
        return obj.actions[obj.cursor].get("rev", 0) if obj.can_redo else None
    return obj.actions[obj.cursor - 1].get("rev", 0) if obj.can_undo else None


def next_change(session: MaskSession, forward: bool) -> SessionChange | None:
    """The change undo takes back (the newest in effect) or redo makes again (the oldest
    undone)."""
    if forward:
        if not session.changes_undone:
            return None
        return SessionChange.objects.filter(session=session, undone=True) \
            .order_by("revision").first()
    if not session.changes_done:
        return None
    return SessionChange.objects.filter(session=session, undone=False) \
        .order_by("-revision").first()


def _object(session: MaskSession, number: int) -> MaskObject:
    obj = session.mask_objects.filter(number=number).first()
    if obj is None:
        raise ProtocolError("conflict", f"Object {number} is gone; this change cannot be "
                            "undone.")
    return obj


def _make_current(session: MaskSession, obj: MaskObject) -> None:
    session.current = obj
    session.save(update_fields=["current"])


def _empty_current(session: MaskSession, number: int, actions: list[Any]) -> MaskObject:
    """A new current object (after an apply is made again, a reopen taken back), with the
    prompts it had and that were all undone (its redo tail)."""
    if session.mask_objects.filter(number=number).exists():
        last = session.mask_objects.order_by("-number").first()
        number = (last.number if last else 0) + 1
    obj = MaskObject.objects.create(session=session, number=number, name=f"Object {number}",
                                    actions=actions, cursor=0)
    _make_current(session, obj)
    return obj


def _leave_current(session: MaskSession, change: SessionChange, key: str) -> None:
    """Deletes the current object the change made (the empty "next object" after an apply,
    or the one a reopen took over), keeping its undone prompts in ``change.data[key]``."""
    current = session.mask_objects.filter(pk=session.current_id).first() \
        if session.current_id else None
    if current is None:
        return
    if current.effective_prompts():
        raise ProtocolError("conflict", "The current object has prompts; undo them first.")
    change.data[key] = current.actions
    current.delete()


def revert(session: MaskSession, change: SessionChange) -> None:
    """Takes the change back."""
    data, op = change.data, change.op
    if op == "apply":
        obj = _object(session, data["object"])
        if session.current_id != obj.pk:
            _leave_current(session, change, "next_actions")
        obj.applied = False
        obj.name = data["name"][0]
        obj.save(update_fields=["applied", "name"])
        _make_current(session, obj)
    elif op == "update":
        obj = _object(session, data["object"])
        for field, (before, _) in data["fields"].items():
            setattr(obj, field, before)
        obj.save(update_fields=list(data["fields"]))
    elif op == "delete":
        if data.get("current"):  # the current object was emptied, not deleted
            obj = _object(session, data["object"]["number"])
            obj.actions, obj.cursor = data["object"]["actions"], data["object"]["cursor"]
            obj.candidate = data["object"]["candidate"]
            obj.save(update_fields=["actions", "cursor", "candidate"])
        else:
            restore(session, data["object"], change.mask_png)
    elif op == "combine":
        _object(session, data["object"]["number"]).delete()
    elif op == "reopen":
        obj = _object(session, data["object"])
        MaskObject.objects.filter(pk=obj.pk).update(applied=True)
        previous = data.get("previous")
        found = session.mask_objects.filter(number=previous).first() if previous else None
        if found is not None and not found.applied:
            _make_current(session, found)
        else:
            _empty_current(session, previous or obj.number + 1, data.get("previous_actions", []))
    else:
        raise ProtocolError("conflict", f"unknown change {op!r}")
    change.undone = True
    change.save(update_fields=["data", "undone"])
    _count(session, -1)


def replay(session: MaskSession, change: SessionChange) -> None:
    """Makes an undone change again."""
    data, op = change.data, change.op
    if op == "apply":
        obj = _object(session, data["object"])
        obj.applied = True
        obj.name = data["name"][1]
        obj.save(update_fields=["applied", "name"])
        new = _empty_current(session, data["next"], data.get("next_actions", []))
        data["next"] = new.number
    elif op == "update":
        obj = _object(session, data["object"])
        for field, (_, after) in data["fields"].items():
            setattr(obj, field, after)
        obj.save(update_fields=list(data["fields"]))
    elif op == "delete":
        obj = _object(session, data["object"]["number"])
        if data.get("current"):
            obj.actions, obj.cursor, obj.candidate = [], 0, 0
            obj.save(update_fields=["actions", "cursor", "candidate"])
        else:
            obj.delete()
    elif op == "combine":
        restore(session, data["object"], change.mask_png)
    elif op == "reopen":
        obj = _object(session, data["object"])
        if session.current_id != obj.pk:
            _leave_current(session, change, "previous_actions")
        MaskObject.objects.filter(pk=obj.pk).update(applied=False)
        _make_current(session, obj)
    else:
        raise ProtocolError("conflict", f"unknown change {op!r}")
    change.undone = False
    change.save(update_fields=["data", "undone"])
    _count(session, +1)


def _count(session: MaskSession, step: int) -> None:
    session.changes_done += step
    session.changes_undone -= step
    MaskSession.objects.filter(pk=session.pk).update(changes_done=session.changes_done,
                                                     changes_undone=session.changes_undone)


def can_undo(session: MaskSession, obj: MaskObject | None) -> bool:
    return bool(session.changes_done or (obj is not None and obj.can_undo))


def can_redo(session: MaskSession, obj: MaskObject | None) -> bool:
    return bool(session.changes_undone or (obj is not None and obj.can_redo))
