"""Undo and redo of the whole session (maskweb.masking.editing.history): apply, delete, rename,
visibility and reopen, in one linear history with the current object's prompts."""

from __future__ import annotations

import pytest

from maskweb.masking import editing
from maskweb.masking.models import MaskObject, SessionChange
from tests.web.conftest import edit, make_session

pytestmark = pytest.mark.django_db(transaction=True)

INSIDE = {"kind": "point", "x": 240, "y": 180}
CORNER = {"kind": "point", "x": 30, "y": 30}


def objects(session) -> dict[int, tuple[str, bool, bool]]:
    """number -> (name, visible, applied) of every object row."""
    return {o.number: (o.name, o.visible, o.applied)
            for o in MaskObject.objects.filter(session=session)}


def applied_one(name: str = "Lemon"):
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    editing.apply(edit(session), name)
    return session


def test_undo_takes_an_apply_back_and_redo_makes_it_again():
    session = applied_one()
    mask_before = bytes(MaskObject.objects.get(session=session, number=1).mask_png)
    assert editing.session_state(edit(session))["current"]["can_undo"]
    editing.undo(edit(session))
    fresh = editing.reload(session)
    assert fresh.current.number == 1 and not fresh.current.applied
    assert fresh.current.name == "Object 1", "the name given at apply goes back too"
    assert len(fresh.current.effective_prompts()) == 1
    assert objects(session) == {1: ("Object 1", True, False)}, "the empty next object is gone"
    assert editing.session_state(edit(session))["objects"] == []
    editing.redo(edit(session))
    fresh = editing.reload(session)
    assert objects(session) == {1: ("Lemon", True, True), 2: ("Object 2", True, False)}
    assert fresh.current.number == 2
    assert bytes(MaskObject.objects.get(session=session, number=1).mask_png) == mask_before


def test_undo_walks_back_prompts_and_object_changes_newest_first():
    session = applied_one()
    editing.add_prompt(edit(session), CORNER)  # a prompt of object 2
    editing.update_object(edit(session), 1, name="Sign")  # newer than that prompt
    editing.undo(edit(session))  # the rename
    assert objects(session)[1][0] == "Lemon"
    assert len(editing.reload(session).current.effective_prompts()) == 1
    editing.undo(edit(session))  # object 2's prompt
    fresh = editing.reload(session)
    assert fresh.current.number == 2 and fresh.current.effective_prompts() == []
    editing.undo(edit(session))  # the apply
    assert editing.reload(session).current.number == 1
    editing.undo(edit(session))  # object 1's prompt
    assert editing.reload(session).current.effective_prompts() == []
    revision = editing.reload(session).revision
    editing.undo(edit(session))  # nothing left: nothing changes
    assert editing.reload(session).revision == revision
    # Redo goes forward in the same order, oldest first.
    for _ in range(4):
        editing.redo(edit(session))
    fresh = editing.reload(session)
    assert objects(session) == {1: ("Sign", True, True), 2: ("Object 2", True, False)}
    assert fresh.current.number == 2 and len(fresh.current.effective_prompts()) == 1
    assert not editing.session_state(edit(session))["current"]["can_redo"]


def test_a_deleted_object_comes_back_with_its_mask():
    session = applied_one()
    row = MaskObject.objects.get(session=session, number=1)
    mask, area = bytes(row.mask_png), row.area
    editing.delete_object(edit(session), 1)
    assert 1 not in objects(session)
    editing.undo(edit(session))
    back = MaskObject.objects.get(session=session, number=1)
    assert (back.name, back.applied, bytes(back.mask_png), back.area) == \
        ("Lemon", True, mask, area)
    assert len(back.effective_prompts()) == 1
    editing.redo(edit(session))
    assert 1 not in objects(session)


def test_deleting_the_current_object_is_undone_with_its_prompts():
    session = make_session()
    editing.add_prompt(edit(session), INSIDE)
    editing.add_prompt(edit(session), CORNER)
    editing.delete_object(edit(session), 1)
    assert editing.reload(session).current.effective_prompts() == []
    editing.undo(edit(session))
    assert len(editing.reload(session).current.effective_prompts()) == 2


def test_visibility_and_rename_are_undone_one_step_each():
    session = applied_one()
    editing.update_object(edit(session), 1, visible=False)
    editing.update_object(edit(session), 1, name="Sign")
    editing.undo(edit(session))
    assert objects(session)[1] == ("Lemon", False, True)
    editing.undo(edit(session))
    assert objects(session)[1] == ("Lemon", True, True)
    # Setting what is already there is no change: nothing to undo for it.
    changes = SessionChange.objects.filter(session=session).count()
    editing.update_object(edit(session), 1, name="Lemon")
    assert SessionChange.objects.filter(session=session).count() == changes


def test_a_new_change_drops_what_was_undone():
    session = applied_one()
    editing.update_object(edit(session), 1, name="Sign")
    editing.undo(edit(session))
    assert editing.session_state(edit(session))["current"]["can_redo"]
    editing.add_prompt(edit(session), CORNER)
    assert not editing.session_state(edit(session))["current"]["can_redo"]
    assert not SessionChange.objects.filter(session=session, undone=True).exists()
    editing.redo(edit(session))
    assert objects(session)[1][0] == "Lemon"


def test_reopen_is_undone_and_the_object_applied_again():
    session = applied_one()
    editing.add_prompt(edit(session), CORNER)
    editing.reopen(edit(session), 1)  # applies object 2 first, then reopens 1
    assert editing.reload(session).current.number == 1
    editing.undo(edit(session))  # the reopen
    fresh = editing.reload(session)
    assert objects(session)[1][2] and objects(session)[2][2]
    assert fresh.current.number not in (1, 2) and fresh.current.effective_prompts() == []
    editing.undo(edit(session))  # the apply of object 2
    fresh = editing.reload(session)
    assert fresh.current.number == 2 and len(fresh.current.effective_prompts()) == 1
    assert not objects(session)[2][2]
    editing.redo(edit(session))
    editing.redo(edit(session))
    assert editing.reload(session).current.number == 1


def test_undo_survives_a_reload_of_the_session():
    """The history is in the database, not in a socket: a new access (another page, after a
    restart) undoes what an earlier one did."""
    session = applied_one()
    editing.delete_object(edit(session), 1)
    again = editing.resolve(session.edit_token)
    editing.undo(again)
    assert 1 in objects(session)


def test_the_view_link_cannot_undo():
    from tests.web.conftest import view

    session = applied_one()
    with pytest.raises(editing.Forbidden):
        editing.undo(view(session))
    assert objects(session)[1][2]


def test_undo_over_the_socket_brings_a_deleted_object_back_on_every_page():
    """One page deletes and undoes over its socket; the other page (a view link) is told of
    both changes live: objects lists without and with the object again, and a mask frame that
    says undo / redo can act."""
    import asyncio
    import json

    from tests.web.live.test_consumer import connect, is_mask, recv, recv_until, run

    session = applied_one()

    async def scenario() -> tuple[list[int], list[int], dict]:
        editor = await connect(session.edit_token)
        viewer = await connect(session.view_token)
        await recv(editor)
        await recv(viewer)
        await editor.send_to(text_data=json.dumps({"v": 1, "type": "delete", "object_id": 1}))
        gone = await recv_until(viewer, lambda i: isinstance(i, dict) and i["type"] == "objects")
        await editor.send_to(text_data=json.dumps({"v": 1, "type": "undo", "id": "u"}))
        back = await recv_until(viewer, lambda i: isinstance(i, dict)
                                and i["type"] == "objects" and i["objects"])
        header, _ = await recv_until(editor, lambda i: is_mask(i) and i[0]["id"] == "u")
        await asyncio.gather(editor.disconnect(), viewer.disconnect())
        return ([o["id"] for o in gone["objects"]], [o["id"] for o in back["objects"]], header)

    gone, back, header = run(scenario())
    assert gone == [] and back == [1]
    assert header["can_redo"] and header["can_undo"]


def test_an_objects_colour_is_checked_kept_and_undone():
    from django.test import Client

    session = applied_one()
    base = f"/api/v1/sessions/{session.edit_token}/objects/1"
    client = Client()
    for bad in ("red", "#12345", "#gggggg", 7):
        response = client.patch(base, {"colour": bad}, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_field"
    assert MaskObject.objects.get(session=session, number=1).colour == ""
    ok = client.patch(base, {"colour": "#FF8800"}, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["colour"] == "#ff8800"
    editing.undo(edit(session))
    assert MaskObject.objects.get(session=session, number=1).colour == ""
    assert editing.session_state(edit(session))["objects"][0]["colour"] is None
    editing.redo(edit(session))
    assert MaskObject.objects.get(session=session, number=1).colour == "#ff8800"
    # A deleted object comes back in its colour.
    editing.delete_object(edit(session), 1)
    editing.undo(edit(session))
    assert MaskObject.objects.get(session=session, number=1).colour == "#ff8800"
