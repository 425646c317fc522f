"""darktable sidecar writer: structure, merging, and every kind of bad upload."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from defusedxml.ElementTree import fromstring

from maskweb.export import MaskObject, NothingToExport
from maskweb.export.xmp import (
    NS_DT,
    NS_RDF,
    SidecarError,
    darktable_sidecar,
    decode_blob,
    encode_blob,
    sidecar_name,
    validate_sidecar,
)

W, H = 120, 80
DT = "{" + NS_DT + "}"
LI = "{" + NS_RDF + "}li"


def ring() -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    r2 = (xx + 0.5 - 60) ** 2 + (yy + 0.5 - 40) ** 2
    return (r2 <= 30**2) & (r2 > 12**2)


def box() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:30, 80:110] = True
    return m


def parts(data: bytes) -> tuple[Any, list[Any], list[Any]]:
    """The rdf:Description, its history items and its mask items."""
    root = fromstring(data)
    desc = root.find(f".//{{{NS_RDF}}}Description")
    assert desc is not None, "no rdf:Description"
    hist = desc.findall(f"{DT}history/{{{NS_RDF}}}Seq/{LI}")
    masks = desc.findall(f"{DT}masks_history/{{{NS_RDF}}}Seq/{LI}")
    return desc, hist, masks


def test_sidecar_name_is_the_photo_name_plus_xmp() -> None:
    assert sidecar_name("IMG_1234.JPG") == "IMG_1234.JPG.xmp"
    assert sidecar_name("/uploads/x/DSC_1.NEF") == "DSC_1.NEF.xmp"
    assert sidecar_name("C:\\photos\\a b.jpg") == "a b.jpg.xmp"
    with pytest.raises(ValueError):
        sidecar_name("")
    with pytest.raises(ValueError):
        sidecar_name("photos/")


@pytest.mark.parametrize("raw", [b"\x01\x02", bytes(range(256)) * 3])
def test_blobs_round_trip_in_lowercase_hex_or_gz(raw: bytes) -> None:
    text = encode_blob(raw)
    assert decode_blob(text) == raw
    if len(raw) > 100:
        assert text.startswith("gz")
        assert int(text[2:4]) >= 1
    else:
        assert text == text.lower()


def test_each_object_is_a_group_of_paths_carried_by_its_own_exposure_instance() -> None:
    data = darktable_sidecar([MaskObject("ring", ring()), MaskObject("box", box())], W, H,
                             exposure_ev=1.5)
    desc, hist, masks = parts(data)
    assert desc.get(f"{DT}history_end") == "2"
    assert [h.get(f"{DT}operation") for h in hist] == ["exposure", "exposure"]
    assert [h.get(f"{DT}multi_priority") for h in hist] == ["0", "1"]
    assert [h.get(f"{DT}multi_name") for h in hist] == ["ring", "box"]
    # A second instance needs the order list, with both instances in it.
    assert "exposure,0,exposure,1" in desc.get(f"{DT}iop_order_list")
    for h in hist:
        assert h.get(f"{DT}blendop_version") == "11"
        assert h.get(f"{DT}modversion") == "6"
        params = decode_blob(h.get(f"{DT}params"))
        assert struct.unpack("<iffffi", params)[2] == pytest.approx(1.5)

    last = [m for m in masks if m.get(f"{DT}mask_num") == "1"]
    groups = [m for m in last if m.get(f"{DT}mask_type") == "4"]
    assert len(groups) == 2  # the last item carries every form in force
    ids = {int(m.get(f"{DT}mask_id")) for m in masks}
    assert 0 not in ids and -1 not in ids
    for m in masks:
        assert m.get(f"{DT}mask_src") == "0" * 16
        assert m.get(f"{DT}mask_version") == "6"

    # The ring's group: the outer path (first, not a difference) then the hole (35).
    blend = decode_blob(hist[0].get(f"{DT}blendop_params"))
    assert len(blend) == 420
    mask_mode, group_id = struct.unpack_from("<I", blend, 0)[0], struct.unpack_from(
        "<i", blend, 24)[0]
    assert mask_mode == 3
    group = next(m for m in masks if int(m.get(f"{DT}mask_id")) == group_id)
    members = decode_blob(group.get(f"{DT}mask_points"))
    states = [struct.unpack_from("<iiif", members, 16 * i)[2] for i in range(len(members) // 16)]
    assert states == [3, 35]


def test_the_same_masks_give_the_same_sidecar_bytes_and_other_masks_other_ids() -> None:
    """A download is a function of the masks (it can be cached and compared), not of the
    clock: darktable's own GUI numbers new forms by the time, which made every download of
    the same object differ whenever a second ticked between two of them."""
    first = darktable_sidecar([MaskObject("box", box())], W, H)
    assert darktable_sidecar([MaskObject("box", box())], W, H) == first
    moved = np.roll(box(), 7, axis=1)
    ids = [{m.get(f"{DT}mask_id") for m in fromstring(data).iter(LI)
            if m.get(f"{DT}mask_id")}
           for data in (first, darktable_sidecar([MaskObject("box", moved)], W, H))]
    assert ids[0] and ids[1] and not ids[0] & ids[1]


def test_path_points_are_normalized_in_the_stored_grid() -> None:
    data = darktable_sidecar([MaskObject("box", box())], W, H)
    _, _, masks = parts(data)
    path = next(m for m in masks if m.get(f"{DT}mask_type") == "2")
    raw = decode_blob(path.get(f"{DT}mask_points"))
    nb = int(path.get(f"{DT}mask_nb"))
    assert len(raw) == 36 * nb
    pts = np.array([struct.unpack_from("<8fi", raw, 36 * i)[:8] for i in range(nb)])
    states = [struct.unpack_from("<8fi", raw, 36 * i)[8] for i in range(nb)]
    assert set(states) == {2}
    xs, ys = pts[:, 0] * W, pts[:, 1] * H
    # Box covers x 80..110, y 10..30 (within darktable's one-pixel fill correction).
    assert 79 <= xs.min() <= 82 and 107 <= xs.max() <= 110
    assert 9 <= ys.min() <= 12 and 27 <= ys.max() <= 30
    assert np.all(pts[:, 6:8] == 0)  # no feather


def test_feather_is_a_fraction_of_the_short_side() -> None:
    data = darktable_sidecar([MaskObject("box", box())], W, H, feather=8.0)
    _, _, masks = parts(data)
    path = next(m for m in masks if m.get(f"{DT}mask_type") == "2")
    raw = decode_blob(path.get(f"{DT}mask_points"))
    assert struct.unpack_from("<8fi", raw, 0)[6] == pytest.approx(8.0 / 80)


def test_empty_masks_are_left_out_and_all_empty_is_an_error() -> None:
    data = darktable_sidecar([MaskObject("none", np.zeros((H, W), bool)),
                              MaskObject("box", box())], W, H)
    _, hist, _ = parts(data)
    assert [h.get(f"{DT}multi_name") for h in hist] == ["box"]
    with pytest.raises(NothingToExport):
        darktable_sidecar([MaskObject("none", np.zeros((H, W), bool))], W, H)
    with pytest.raises(NothingToExport):
        darktable_sidecar([], W, H)


def test_full_frame_mask_is_one_path_on_the_frame() -> None:
    data = darktable_sidecar([MaskObject("all", np.ones((H, W), bool))], W, H)
    _, _, masks = parts(data)
    assert sum(m.get(f"{DT}mask_type") == "2" for m in masks) == 1


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_thin_objects_survive_the_darktable_shrink(rows: int) -> None:
    # Paths are shrunk by a pixel for darktable's wide fill; a thin line must not vanish.
    line = np.zeros((H, W), bool)
    line[40:40 + rows, 10:110] = True
    _, hist, masks = parts(darktable_sidecar([MaskObject("line", line)], W, H))
    assert len(hist) == 1
    path = next(m for m in masks if m.get(f"{DT}mask_type") == "2")
    raw = decode_blob(path.get(f"{DT}mask_points"))
    ys = [struct.unpack_from("<8fi", raw, 36 * i)[1] * H for i in range(len(raw) // 36)]
    assert 38 <= min(ys) <= max(ys) <= 40 + rows + 1


def test_wrong_mask_size_and_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="stored grid"):
        darktable_sidecar([MaskObject("box", box().T)], W, H)
    with pytest.raises(ValueError, match="exposure_ev"):
        darktable_sidecar([MaskObject("box", box())], W, H, exposure_ev=float("nan"))
    with pytest.raises(ValueError, match="feather"):
        darktable_sidecar([MaskObject("box", box())], W, H, feather=-1)


def test_names_with_markup_are_escaped() -> None:
    data = darktable_sidecar([MaskObject('a "<b>" & c', box())], W, H)
    _, hist, _ = parts(data)
    assert hist[0].get(f"{DT}multi_name") == 'a "<b>" & c'


EXISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="4" darktable:xmp_version="5" darktable:raw_params="0"
   darktable:auto_presets_applied="1" darktable:history_end="2"
   darktable:iop_order_version="2">
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
   <darktable:masks_history>
    <rdf:Seq>
     <rdf:li darktable:mask_num="1" darktable:mask_id="1700000001" darktable:mask_type="1"
       darktable:mask_name="circle #1" darktable:mask_version="6"
       darktable:mask_points="0000003f0000003fcdcccc3dcdcc4c3d" darktable:mask_nb="1"
       darktable:mask_src="0000000000000000"/>
     <rdf:li darktable:mask_num="1" darktable:mask_id="1700000000" darktable:mask_type="4"
       darktable:mask_name="grp" darktable:mask_version="6"
       darktable:mask_points="c1a7536500a7536503000000" darktable:mask_nb="1"
       darktable:mask_src="0000000000000000"/>
     <rdf:li darktable:mask_num="2" darktable:mask_id="1700000009" darktable:mask_type="1"
       darktable:mask_name="undone" darktable:mask_version="6"
       darktable:mask_points="0000003f0000003fcdcccc3dcdcc4c3d" darktable:mask_nb="1"
       darktable:mask_src="0000000000000000"/>
    </rdf:Seq>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
       darktable:modversion="6" darktable:params="00000000000000000000803f0000484200008000000000"
       darktable:multi_name="" darktable:multi_priority="0" darktable:blendop_version="11"
       darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAYY0QVwggZ7CB6pfNoAAE6CBSM="/>
     <rdf:li darktable:num="1" darktable:operation="colorbalancergb" darktable:enabled="1"
       darktable:modversion="5" darktable:params="00" darktable:multi_name=""
       darktable:multi_priority="0" darktable:blendop_version="11"
       darktable:blendop_params="00"/>
     <rdf:li darktable:num="2" darktable:operation="sharpen" darktable:enabled="1"
       darktable:modversion="1" darktable:params="00" darktable:multi_name=""
       darktable:multi_priority="0" darktable:blendop_version="11"
       darktable:blendop_params="00"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def test_merge_adds_a_history_item_and_keeps_what_was_applied() -> None:
    merged = darktable_sidecar([MaskObject("box", box())], W, H, existing=EXISTING)
    desc, hist, masks = parts(merged)
    old_desc, old_hist, _ = parts(EXISTING)
    # Applied items unchanged, the undone one (num 2 >= history_end 2) dropped, ours is num 2.
    assert [h.get(f"{DT}num") for h in hist] == ["0", "1", "2"]
    for old, new in zip(old_hist[:2], hist[:2], strict=True):
        assert old.attrib == new.attrib
    assert hist[2].get(f"{DT}operation") == "exposure"
    assert hist[2].get(f"{DT}multi_priority") == "1"  # the user's exposure stays instance 0
    assert desc.get(f"{DT}history_end") == "3"
    # The user's metadata survives.
    assert desc.get("{http://ns.adobe.com/xap/1.0/}Rating") == "4"
    assert b"holiday" in merged
    # The forms in force (snapshot of item 1) are carried to item 2, next to ours.
    by_num: dict[str, set[str]] = {}
    for m in masks:
        by_num.setdefault(m.get(f"{DT}mask_num"), set()).add(m.get(f"{DT}mask_id"))
    assert by_num["1"] == {"1700000001", "1700000000"}
    assert {"1700000001", "1700000000"} < by_num["2"]
    assert "1700000009" not in {m.get(f"{DT}mask_id") for m in masks}
    # Raw order (version 2) with a second exposure instance: the list is written.
    assert "exposure,0,exposure,1" in desc.get(f"{DT}iop_order_list")
    assert desc.get(f"{DT}iop_order_version") == "2"
    validate_sidecar(merged)  # what we write can be merged into again
    again = darktable_sidecar([MaskObject("ring", ring())], W, H, existing=merged)
    _, hist2, _ = parts(again)
    assert [h.get(f"{DT}multi_priority") for h in hist2][-1] == "2"


def test_merge_into_a_darktable_sidecar_without_masks_or_history() -> None:
    bare = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
            b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5"/>'
            b"</rdf:RDF></x:xmpmeta>")
    validate_sidecar(bare)
    desc, hist, masks = parts(darktable_sidecar([MaskObject("box", box())], W, H,
                                                existing=bare))
    assert len(hist) == 1 and desc.get(f"{DT}history_end") == "1"
    assert len(masks) == 2  # one path, one group


def test_merge_into_a_history_without_masks() -> None:
    start = EXISTING.index(b"<darktable:masks_history>")
    end = EXISTING.index(b"</darktable:masks_history>") + len(b"</darktable:masks_history>")
    no_masks = EXISTING[:start] + EXISTING[end:]
    validate_sidecar(no_masks)
    _, hist, masks = parts(darktable_sidecar([MaskObject("box", box())], W, H,
                                             existing=no_masks))
    assert [h.get(f"{DT}num") for h in hist] == ["0", "1", "2"]
    assert {m.get(f"{DT}mask_num") for m in masks} == {"2"}
    assert len(masks) == 2


BAD = {
    "not xml": b"this is not xml at all",
    "empty": b"   ",
    "truncated": EXISTING[:400],
    "not xmp": b"<html><body>hi</body></html>",
    "lightroom": (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
                  b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
                  b'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:Exposure2012='
                  b'"+0.50"/></rdf:RDF></x:xmpmeta>'),
    "billion laughs": (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                       b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                       b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                       b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&lol3;</x:xmpmeta>'),
    "external entity": (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM '
                        b'"file:///etc/passwd">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;'
                        b"</x:xmpmeta>"),
    "history item without params": EXISTING.replace(
        b'darktable:params="00" darktable:multi_name=""\n       darktable:multi_priority="0"'
        b' darktable:blendop_version="11"\n       darktable:blendop_params="00"/>\n     '
        b'<rdf:li darktable:num="2"', b'darktable:multi_name=""\n       '
        b'darktable:multi_priority="0" darktable:blendop_version="11"\n       '
        b'darktable:blendop_params="00"/>\n     <rdf:li darktable:num="2"'),
    "bad history_end": EXISTING.replace(b'history_end="2"', b'history_end="two"'),
    "duplicate num": EXISTING.replace(b'darktable:num="2"', b'darktable:num="1"'),
    "mask row without id": EXISTING.replace(b'darktable:mask_id="1700000009" ', b""),
    "bad order list": EXISTING.replace(b'darktable:iop_order_version="2"',
                                       b'darktable:iop_order_version="2" '
                                       b'darktable:iop_order_list="exposure"'),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_uploads_are_refused_with_a_clear_error_and_nothing_written(name: str) -> None:
    data = BAD[name]
    if name != "bad order list":  # well-formed until we need the list (at merge time)
        with pytest.raises(SidecarError) as info:
            validate_sidecar(data)
        assert str(info.value)
    with pytest.raises(SidecarError):
        darktable_sidecar([MaskObject("box", box())], W, H, existing=data)


def test_oversized_upload_is_refused_before_parsing() -> None:
    with pytest.raises(SidecarError, match="bytes"):
        validate_sidecar(b"<x/>" + b" " * (17 * 1024 * 1024))


def test_huge_mask_is_written(tmp_path: object) -> None:
    # 24 MP (stored 6000x4000): the writer handles camera-size masks in one go.
    mask = np.zeros((4000, 6000), bool)
    mask[500:3500, 1000:5000] = True
    data = darktable_sidecar([MaskObject("big", mask)], 6000, 4000)
    _, hist, masks = parts(data)
    assert len(hist) == 1 and len(masks) == 2
