"""Combine and invert objects (maskweb.masking.editing.combine): a new object whose downloads are
exactly the combination of its operands' downloads, whose XMP nests their shapes in
darktable's mask group modes, and which undo takes back."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from django.test import Client
from PIL import Image

from maskweb.export import combine_masks
from maskweb.masking import editing
from maskweb.masking.decoding import render
from maskweb.masking.models import MaskObject
from maskweb.masking.protocol.schemas import ProtocolError
from tests.web.conftest import edit, make_session, view
from tests.web.editing.test_full_resolution_download import ellipse_photo

pytestmark = pytest.mark.django_db(transaction=True)

OPS = ("union", "difference", "intersection", "invert")


def work_disc(session, cx: float, cy: float, r: float) -> np.ndarray:
    h, w = session.photo.work_height, session.photo.work_width
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def applied(session, name: str, mask: np.ndarray) -> MaskObject:
    """An applied object with this work mask (as an apply would leave it)."""
    last = session.mask_objects.order_by("-number").first()
    return MaskObject.objects.create(
        session=session, number=(last.number if last else 0) + 1, name=name, applied=True,
        mask_png=render.png_bytes(mask), area=render.stored_area(session.photo, mask))


def download(url: str) -> np.ndarray:
    response = Client().get(url)
    assert response.status_code == 200, response.content
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("L")) >= 128


@pytest.fixture
def two_objects(settings):
    settings.WORK_MAX_SIDE = 300  # downloads are brought up 4x, along the photo's edges
    data, _ = ellipse_photo()
    session = make_session(data, "big.png")
    applied(session, "Left", work_disc(session, 130, 100, 70))
    applied(session, "Right", work_disc(session, 180, 100, 70))
    return session


@pytest.mark.parametrize("op", OPS)
def test_a_combinations_png_is_exactly_that_of_its_operands_pngs(two_objects, op):
    session = two_objects
    numbers = [2] if op == "invert" else [2, 3]
    obj = editing.combine_objects(edit(session), op, numbers)
    assert obj.applied and obj.recipe["op"] == op
    base = f"/api/v1/sessions/{session.edit_token}/objects"
    operands = [download(f"{base}/{n}/mask.png") for n in numbers]
    got = download(f"{base}/{obj.number}/mask.png")
    assert got.shape == (800, 1200)
    expected = combine_masks(op, operands)
    assert np.array_equal(got, expected), int(np.count_nonzero(got != expected))
    # What the pages draw: the same combination at the work size.
    work = render.png_to_mask(bytes(obj.mask_png))
    masks = [render.png_to_mask(bytes(MaskObject.objects.get(session=session, number=n)
                                      .mask_png)) for n in numbers]
    assert np.array_equal(work, combine_masks(op, masks))


def test_names_say_what_was_combined_and_a_name_can_be_given(two_objects):
    session = two_objects
    assert editing.combine_objects(edit(session), "union", [2, 3]).name == "Left + Right"
    assert editing.combine_objects(edit(session), "difference", [3, 2]).name == \
        "Right − Left"
    assert editing.combine_objects(edit(session), "invert", [2]).name == "Inverse of Left"
    assert editing.combine_objects(edit(session), "intersection", [2, 3],
                                    "Overlap").name == "Overlap"


def test_the_xmp_nests_the_operands_in_darktables_group_modes(two_objects):
    """difference of (Left + Right) and Left: the group of the difference holds the union's
    group (which holds Left's and Right's) and Left's group with DIFFERENCE (state 35)."""
    from maskweb.export.xmp import decode_blob

    session = two_objects
    union = editing.combine_objects(edit(session), "union", [2, 3])
    diff = editing.combine_objects(edit(session), "difference", [union.number, 2])
    response = Client().get(f"/api/v1/sessions/{session.edit_token}/objects/"
                            f"{diff.number}/sidecar.xmp")
    assert response.status_code == 200
    text = response.content.decode()
    rows = re.findall(r'mask_id="(\d+)"\s+darktable:mask_type="(\d+)"\s+'
                      r'darktable:mask_name="([^"]*)"[^>]*?darktable:mask_points="([^"]*)"',
                      text)
    assert rows, text[:2000]
    forms = {int(mid): (kind, name, decode_blob(points)) for mid, kind, name, points in rows}

    def tree(form_id: int) -> object:
        """A group as (name, [(member tree, state)...]); a path as its name."""
        kind, name, blob = forms[form_id]
        if kind != "4":
            return "path"
        members = [np.frombuffer(blob[k:k + 16], dtype="<i4,<i4,<i4,<f4")[0]
                   for k in range(0, len(blob), 16)]
        return (name, [(tree(int(m[0])), int(m[2])) for m in members])

    (top,) = [mid for mid, (kind, name, _) in forms.items()
              if name == "grp Left + Right − Left"]
    # USE|SHOW = 3 starts a group, +UNION (8) = 11, +DIFFERENCE (32) = 35.
    assert tree(top) == ("grp Left + Right − Left", [
        (("grp Left + Right", [(("grp Left", [("path", 3)]), 3),
                               (("grp Right", [("path", 3)]), 11)]), 3),
        (("grp Left", [("path", 3)]), 35)])


def test_bad_requests_are_refused_and_make_nothing(two_objects):
    session = two_objects
    before = MaskObject.objects.filter(session=session).count()
    for op, numbers, code in (("xor", [2, 3], "bad_field"), ("union", [2], "bad_field"),
                              ("invert", [2, 3], "bad_field"), ("union", [2, 2], "bad_field"),
                              ("union", "2,3", "bad_field"), ("union", [2, 99], "not_found"),
                              ("union", [2, 1], "bad_field")):  # 1: the current, not applied
        with pytest.raises(ProtocolError) as err:
            editing.combine_objects(edit(session), op, numbers)
        assert err.value.code == code, (op, numbers)
    far = applied(session, "Far", work_disc(session, 30, 30, 10))
    with pytest.raises(ProtocolError) as err:
        editing.combine_objects(edit(session), "intersection", [2, far.number])
    assert err.value.code == "empty"
    assert MaskObject.objects.filter(session=session).count() == before + 1  # just Far
    with pytest.raises(editing.Forbidden):
        editing.combine_objects(view(session), "union", [2, 3])


def test_combine_is_undone_and_redone_and_survives_its_operands(two_objects):
    session = two_objects
    obj = editing.combine_objects(edit(session), "union", [2, 3])
    editing.undo(edit(session))
    assert not MaskObject.objects.filter(session=session, number=obj.number).exists()
    editing.redo(edit(session))
    back = MaskObject.objects.get(session=session, number=obj.number)
    assert back.recipe == obj.recipe and bytes(back.mask_png) == bytes(obj.mask_png)
    # Deleting the operands changes nothing in the combination's downloads.
    url = f"/api/v1/sessions/{session.edit_token}/objects/{obj.number}/mask.png"
    before = download(url)
    editing.delete_object(edit(session), 2)
    editing.delete_object(edit(session), 3)
    assert np.array_equal(download(url), before)


def test_the_http_api_combines(two_objects):
    session = two_objects
    response = Client().post(f"/api/v1/sessions/{session.edit_token}/combine",
                             {"op": "invert", "objects": [3]},
                             content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert body["object"]["name"] == "Inverse of Right"
    assert [o["name"] for o in body["objects"]][-1] == "Inverse of Right"
    refused = Client().post(f"/api/v1/sessions/{session.edit_token}/combine",
                            {"op": "union", "objects": [3]}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_field"


def test_a_combined_object_cannot_be_reopened(two_objects):
    session = two_objects
    obj = editing.combine_objects(edit(session), "union", [2, 3])
    current = editing.reload(session).current_id
    with pytest.raises(ProtocolError) as err:
        editing.reopen(edit(session), obj.number)
    assert err.value.code == "bad_field"
    fresh = editing.reload(session)
    assert fresh.current_id == current and MaskObject.objects.get(pk=obj.pk).applied
