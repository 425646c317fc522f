"""darktable XMP sidecar: every object becomes an editable drawn mask in darktable.

Each object is a darktable *group* form of *path* forms (outer boundaries united, holes as
DIFFERENCE members, each outer shape before the holes it cuts), carried by its own
``exposure`` module instance (0 EV by default, so nothing changes until the user picks it
up). The format facts (blob layouts, flags, versions darktable 4.2 accepts) are in
docs/darktable-xmp.md of the shared docs; the comments here say where they bite.

A sidecar the user already has can be merged into: the new forms, one history item per
object and ``history_end`` are added, and everything that was applied before stays as it
was. Uploaded XML is parsed with defusedxml (no entities, no DTD) and size-capped.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeET
import numpy as np
from defusedxml import DefusedXmlException

from maskweb.export import MaskObject, NothingToExport, check_objects, iop_order
from maskweb.segment.orientation import stored_to_upright_xy
from maskweb.segment.vectorize import BezierPath, Region, VectorizeOptions, vectorize

__all__ = [
    "SidecarError",
    "darktable_sidecar",
    "decode_blob",
    "encode_blob",
    "sidecar_name",
    "validate_sidecar",
]

NS_X = "adobe:ns:meta/"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_DT = "http://darktable.sf.net/"
# Prefixes as darktable/exiv2 write them, so a merged sidecar reads like the original.
_PREFIXES = {
    "x": NS_X,
    "rdf": NS_RDF,
    "darktable": NS_DT,
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "exifEX": "http://cipa.jp/exif/1.0/",
}
for _prefix, _uri in _PREFIXES.items():
    ET.register_namespace(_prefix, _uri)

#: An uploaded sidecar larger than this is refused (darktable's own are kilobytes).
MAX_SIDECAR_BYTES = 16 * 1024 * 1024

# darktable's mask type flags and group member states (src/develop/masks.h).
MASK_PATH = 2
MASK_GROUP = 4
STATE_USE, STATE_SHOW, STATE_INVERSE, STATE_UNION = 1, 2, 4, 8
STATE_INTERSECTION, STATE_DIFFERENCE = 16, 32
#: The group member mode each combination gives its operands after the first (the first
#: has none: it is where the group starts); an inverse is one member marked INVERSE.
COMBINE_MODE = {"union": STATE_UNION, "difference": STATE_DIFFERENCE,
                "intersection": STATE_INTERSECTION, "invert": STATE_INVERSE}
MASK_VERSION = 6
#: darktable's fill leans half a pixel towards -x/-y of the image *as its pipeline sees it*
#: (after the flip module, so upright): paths are moved back by this, in upright pixels.
DT_FILL_SHIFT = (0.5, 0.5)
#: With a 90-degree orientation, darktable's flip lands one pixel further along the axis it
#: mirrors (measured with darktable-cli 4.2 on orientations 6 and 8; 3 has no such offset).
DT_TURN_SHIFT = {5: (0.0, 0.0), 6: (1.0, 0.0), 7: (1.0, 1.0), 8: (0.0, 1.0)}
DT_GROW = -1.0
PATH_STATE_USER = 2  # handles set by the user: darktable must not recompute them
EXPOSURE_MODVERSION = 6
BLENDOP_VERSION = 11  # darktable 4.2 reads <= 11 only; newer versions upgrade 11 themselves
# iop_order_version: darktable's default pipeline order for the file type (v3.0 / v3.0 JPEG).
IOP_ORDER_RAW, IOP_ORDER_JPG = 2, 3
RAW_EXTENSIONS = frozenset({
    "3fr", "ari", "arw", "bay", "cr2", "cr3", "crw", "dcr", "dcs", "dng", "erf", "fff", "iiq",
    "k25", "kdc", "mdc", "mef", "mos", "mrw", "nef", "nrw", "orf", "ori", "pef", "raf", "raw",
    "rw2", "rwl", "sr2", "srf", "srw", "x3f",
})


class SidecarError(ValueError):
    """An uploaded XMP that cannot be merged into (not XML, unsafe, not darktable's...)."""


@dataclass
class _Shape:
    """An object as the sidecar draws it: its own paths, or (``op``) a combination of
    ``parts``, written as a group of their groups with darktable's member modes."""

    name: str
    regions: list[Region]
    op: str | None = None
    parts: list[_Shape] = dataclasses.field(default_factory=list)

    def has_paths(self) -> bool:
        """Whether it draws anything (specks below turdsize are no paths)."""
        if self.op is None:
            return bool(self.regions)
        drawn = [part.has_paths() for part in self.parts]
        if self.op == "intersection":
            return all(drawn)
        if self.op == "difference":
            return drawn[0]
        return any(drawn)  # union; invert (of one object, never empty)

    def paths(self) -> list[BezierPath]:
        own = [path for region in self.regions for path in (region.outer, *region.holes)]
        return own + [path for part in self.parts for path in part.paths()]


def _shape(obj: MaskObject, opts: VectorizeOptions) -> _Shape:
    if obj.combination is None:
        return _Shape(obj.name, vectorize(obj.mask, opts))
    return _Shape(obj.name, [], obj.combination.op,
                  [_shape(part, opts) for part in obj.combination.operands])


def sidecar_name(photo_name: str) -> str:
    """The sidecar file name darktable looks for: ``IMG_1234.JPG`` -> ``IMG_1234.JPG.xmp``.

    Any directory part (``/`` or ``\\``) of ``photo_name`` is dropped.
    """
    base = photo_name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not base or base in (".", ".."):
        raise ValueError(f"not a photo file name: {photo_name!r}")
    return base + ".xmp"


# --- blobs ------------------------------------------------------------------------------

def encode_blob(raw: bytes) -> str:
    """darktable's text form of a binary blob: lowercase hex, or ``gz<NN><base64 zlib>``.

    darktable writes the compressed form above 100 bytes (and reads both everywhere);
    uppercase hex crashes darktable 4.2.
    """
    if len(raw) <= 100:
        return raw.hex()
    packed = zlib.compress(raw, 9)
    factor = min(len(raw) // len(packed) + 1, 99)
    return f"gz{factor:02d}" + base64.b64encode(packed).decode("ascii")


def decode_blob(text: str) -> bytes:
    """Inverse of :func:`encode_blob` (raises ValueError on garbage)."""
    if text.startswith("gz"):
        try:
            return zlib.decompress(base64.b64decode(text[4:], validate=True))
        except (zlib.error, ValueError) as exc:
            raise ValueError(f"bad compressed blob: {exc}") from None
    return bytes.fromhex(text)


def _path_points(path: BezierPath, width: int, height: int, border: float,
                 shift: np.ndarray) -> bytes:
    """36 bytes a node: corner, ctrl1 (incoming), ctrl2 (outgoing), border, state.

    ``shift`` (stored pixels) is added before normalizing against the stored grid.
    """
    pts = (path.points + shift) / np.array([float(width), float(height)])
    out = bytearray()
    for corner, ctrl_in, ctrl_out in pts:
        out += struct.pack("<8fi", corner[0], corner[1], ctrl_in[0], ctrl_in[1],
                           ctrl_out[0], ctrl_out[1], border, border, PATH_STATE_USER)
    return bytes(out)


def _fill_shift(width: int, height: int, orientation: int) -> np.ndarray:
    """DT_FILL_SHIFT undone, as a stored-grid vector (the orientation map is affine)."""
    o = np.array(stored_to_upright_xy(0.0, 0.0, width, height, orientation))
    ex = np.array(stored_to_upright_xy(1.0, 0.0, width, height, orientation)) - o
    ey = np.array(stored_to_upright_xy(0.0, 1.0, width, height, orientation)) - o
    linear = np.stack([ex, ey], axis=1)  # upright = o + linear @ stored
    wanted = -(np.array(DT_FILL_SHIFT) + np.array(DT_TURN_SHIFT.get(orientation, (0.0, 0.0))))
    return np.linalg.solve(linear, wanted)


def _group_points(members: Sequence[tuple[int, int]], group_id: int) -> bytes:
    """16 bytes a member: formid, parentid, state, opacity."""
    return b"".join(struct.pack("<iiif", fid, group_id, state, 1.0) for fid, state in members)


def _exposure_params(ev: float) -> bytes:
    """exposure v6: mode (manual), black, exposure EV, percentile, target, compensate."""
    return struct.pack("<iffffi", 0, 0.0, ev, 50.0, -4.0, 0)


def _blendop_params(group_id: int) -> bytes:
    """blend params v11 (420 bytes): normal blending through the drawn mask ``group_id``."""
    head = struct.pack("<IIIffIiIfIffff3i",
                       3,  # mask_mode: enabled | drawn mask
                       4,  # blend_cst: scene-referred RGB
                       0x18,  # blend_mode: normal
                       0.0, 100.0,  # blend_parameter, opacity
                       0,  # mask_combine
                       group_id,  # mask_id: the group, not a path
                       0, 0.0, 5,  # blendif, feathering_radius, feathering_guide
                       0.0, 0.0, 0.0, 0.0,  # blur_radius, contrast, brightness, details
                       0, 0, 0)  # reserved
    blendif = struct.pack("<64f", *([0.0, 0.0, 1.0, 1.0] * 16))
    boost = struct.pack("<16f", *([0.0] * 16))
    raster = bytes(20) + struct.pack("<iii", 0, 0, 0)
    blob = head + blendif + boost + raster
    assert len(blob) == 420
    return blob


# --- reading an uploaded sidecar ---------------------------------------------------------

def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


@dataclass
class _Sidecar:
    """The parts of a darktable sidecar the merge touches."""

    root: ET.Element
    description: ET.Element
    history_seq: ET.Element
    masks_seq: ET.Element


def _prop(elem: ET.Element, name: str) -> str | None:
    """A darktable property written as attribute (usual) or as child element (also XMP)."""
    value = elem.get(_q(NS_DT, name))
    if value is not None:
        return value
    child = elem.find(_q(NS_DT, name))
    return None if child is None else (child.text or "").strip()


def _set_prop(elem: ET.Element, name: str, value: str) -> None:
    child = elem.find(_q(NS_DT, name))
    if child is not None and elem.get(_q(NS_DT, name)) is None:
        child.text = value
    else:
        elem.set(_q(NS_DT, name), value)


def _int_prop(elem: ET.Element, name: str, what: str) -> int:
    value = _prop(elem, name)
    if value is None:
        raise SidecarError(f"{what} has no darktable:{name}")
    try:
        return int(value)
    except ValueError:
        raise SidecarError(f"{what} has a non-integer darktable:{name}={value!r}") from None


def _seq(parent: ET.Element, name: str) -> ET.Element:
    """The rdf:Seq under darktable:<name>, created (empty) when missing."""
    holder = parent.find(_q(NS_DT, name))
    if holder is None:
        holder = ET.SubElement(parent, _q(NS_DT, name))
    seq = holder.find(_q(NS_RDF, "Seq"))
    if seq is None:
        seq = ET.SubElement(holder, _q(NS_RDF, "Seq"))
    return seq


def _parse(data: bytes) -> _Sidecar:
    if not isinstance(data, bytes | bytearray):
        raise SidecarError("the sidecar must be given as bytes")
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"the sidecar is {len(data)} bytes, more than any darktable "
                           f"sidecar ({MAX_SIDECAR_BYTES} at most)")
    if not data.strip():
        raise SidecarError("the sidecar is empty")
    try:
        root = SafeET.fromstring(bytes(data), forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException as exc:
        raise SidecarError(f"unsafe XML refused (DTD or entities): {type(exc).__name__}") \
            from None
    except ET.ParseError as exc:
        raise SidecarError(f"not an XMP file (XML error: {exc})") from None
    if root.tag == _q(NS_X, "xmpmeta"):
        rdf = root.find(_q(NS_RDF, "RDF"))
    elif root.tag == _q(NS_RDF, "RDF"):
        rdf = root
    else:
        raise SidecarError(f"not an XMP file (root element {root.tag!r})")
    if rdf is None:
        raise SidecarError("not an XMP file (no rdf:RDF)")
    descriptions = rdf.findall(_q(NS_RDF, "Description"))
    if not descriptions:
        raise SidecarError("not an XMP file (no rdf:Description)")
    for desc in descriptions:
        if any(k.startswith("{" + NS_DT) for k in desc.attrib) or any(
                c.tag.startswith("{" + NS_DT) for c in desc):
            description = desc
            break
    else:
        raise SidecarError("this XMP holds no darktable edit (no darktable namespace): "
                           "only sidecars written by darktable can be merged into")
    if root.tag != _q(NS_X, "xmpmeta"):
        # darktable expects the x:xmpmeta wrapper; add it around a bare rdf:RDF.
        wrapper = ET.Element(_q(NS_X, "xmpmeta"))
        wrapper.append(root)
        root = wrapper
    side = _Sidecar(root=root, description=description,
                    history_seq=_seq(description, "history"),
                    masks_seq=_seq(description, "masks_history"))
    _check(side)
    return side


def _check(side: _Sidecar) -> None:
    """Everything the merge relies on is there and well-formed."""
    nums = []
    for i, li in enumerate(side.history_seq.findall(_q(NS_RDF, "li"))):
        what = f"history item {i}"
        nums.append(_int_prop(li, "num", what))
        for name in ("operation", "params", "modversion"):
            if not _prop(li, name):
                # darktable silently drops the whole history when one item lacks these.
                raise SidecarError(f"{what} has no darktable:{name}: the sidecar is broken")
        _int_prop(li, "modversion", what)
        if _prop(li, "multi_priority") is not None:
            _int_prop(li, "multi_priority", what)
    if len(set(nums)) != len(nums):
        raise SidecarError("two history items share one darktable:num")
    if _prop(side.description, "history_end") is not None:
        end = _int_prop(side.description, "history_end", "the sidecar")
        if end < 0:
            raise SidecarError(f"negative darktable:history_end {end}")
    for i, li in enumerate(side.masks_seq.findall(_q(NS_RDF, "li"))):
        what = f"mask row {i}"
        _int_prop(li, "mask_num", what)
        _int_prop(li, "mask_id", what)
        _int_prop(li, "mask_type", what)


def validate_sidecar(data: bytes) -> None:
    """Raise :class:`SidecarError` unless ``data`` is a darktable sidecar we can merge into.

    Call it at upload time, so the user hears about a bad file before asking for a
    download. Refused: not XML, XML with a DTD or entities (XMP bombs), no rdf:Description
    with darktable properties (a foreign XMP, e.g. Lightroom's), broken history items or
    mask rows. A darktable sidecar without masks, or without any history, is fine.
    """
    _parse(data)


# --- writing ------------------------------------------------------------------------------

def _skeleton(iop_order_version: int) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:darktable="http://darktable.sf.net/" '
        'darktable:xmp_version="5" darktable:raw_params="0" '
        'darktable:auto_presets_applied="1" darktable:history_end="0" '
        f'darktable:iop_order_version="{iop_order_version}">'
        "<darktable:masks_history><rdf:Seq/></darktable:masks_history>"
        "<darktable:history><rdf:Seq/></darktable:history>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def _li(parent: ET.Element, attrs: dict[str, str]) -> ET.Element:
    return ET.SubElement(parent, _q(NS_RDF, "li"), {_q(NS_DT, k): v for k, v in attrs.items()})


def darktable_sidecar(objects: Sequence[MaskObject], stored_width: int, stored_height: int, *,
                      existing: bytes | None = None, exposure_ev: float = 0.0,
                      feather: float = 0.0, options: VectorizeOptions | None = None,
                      photo_name: str | None = None, orientation: int = 1) -> bytes:
    """Write (or merge into ``existing``) a darktable sidecar carrying the objects as masks.

    - ``objects``: masks in the stored pixel grid, ``stored_height`` x ``stored_width``;
      coordinates are normalized against that grid, as darktable needs (so no EXIF
      orientation enters here).
    - each object with any shape becomes one ``exposure`` instance (``exposure_ev`` EV,
      named after the object) masked by a group of path forms; objects whose mask is
      empty are left out; :class:`~maskweb.export.NothingToExport` when none is left.
    - ``feather``: feather width in stored pixels (darktable's path border), 0 = hard.
    - ``existing``: the user's sidecar; its history up to ``history_end`` is kept as is,
      undone items beyond it are discarded (as darktable does on a new edit), the forms
      in force are carried over to the new items, and ``history_end`` points past them.
      :class:`SidecarError` when it cannot be merged into (see :func:`validate_sidecar`).
    - ``photo_name``: only used for a fresh sidecar, to pick darktable's default pipeline
      order for raw files or for JPEG/PNG/TIFF.
    - ``orientation``: the photo's EXIF orientation. Coordinates stay in the stored grid;
      it only steers a sub-pixel correction: darktable's path fill is biased towards the
      top-left of the picture as it displays it (one pixel off on a 300x200 test image).
    """
    check_objects(objects, stored_width, stored_height)
    if not math.isfinite(exposure_ev) or abs(exposure_ev) > 18:
        raise ValueError(f"exposure_ev must be within -18..18 EV, got {exposure_ev}")
    if not math.isfinite(feather) or feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")
    # darktable's path fill takes in about a pixel more than the path encloses (it marks
    # the outline and its -x/-y neighbours, measured with darktable-cli): shrink by that.
    opts = dataclasses.replace(options or VectorizeOptions(), grow=DT_GROW)
    # A combined object whose own mask is empty draws nothing, whatever its operands hold.
    shapes = [_shape(obj, opts) for obj in objects
              if obj.combination is None or obj.mask.any()]
    shapes = [shape for shape in shapes if shape.has_paths()]
    if not shapes:
        raise NothingToExport("every mask is empty: there is nothing to put in a sidecar")

    if existing is None:
        ext = (photo_name or "").rsplit(".", 1)[-1].lower() if photo_name else ""
        side = _parse(_skeleton(IOP_ORDER_RAW if ext in RAW_EXTENSIONS else IOP_ORDER_JPG))
    else:
        side = _parse(existing)
    border = feather / min(stored_width, stored_height)
    shift = _fill_shift(stored_width, stored_height, orientation)
    _merge(side, shapes, stored_width, stored_height, exposure_ev, border, shift)
    ET.indent(side.root, space=" ")
    body = ET.tostring(side.root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode("utf-8")


def _id_base(shapes: list[_Shape]) -> int:
    """Where new form ids start: a digest of the shapes, so the same masks always give the
    same sidecar bytes (a download can be cached and compared), where darktable's own habit, the
    clock, made every download differ. Ids only need to be unique within the sidecar, which
    ``new_id`` ensures against the ids already there."""
    digest = hashlib.blake2b(digest_size=4)
    for shape in shapes:
        digest.update(shape.name.encode())
        for path in shape.paths():
            digest.update(np.ascontiguousarray(path.points).tobytes())
    return int.from_bytes(digest.digest(), "big") & 0x3FFFFFFF


def _merge(side: _Sidecar, shapes: list[_Shape], width: int,
           height: int, ev: float, border: float, shift: np.ndarray) -> None:
    desc = side.description
    items = side.history_seq.findall(_q(NS_RDF, "li"))
    end_text = _prop(desc, "history_end")
    end = int(end_text) if end_text is not None else len(items)
    # Undone items (num >= history_end) are dropped, with their mask snapshots: darktable
    # itself discards the redo tail when a new edit is made.
    for li in items:
        if _int_prop(li, "num", "history item") >= end:
            side.history_seq.remove(li)
    rows = side.masks_seq.findall(_q(NS_RDF, "li"))
    for li in rows:
        if _int_prop(li, "mask_num", "mask row") >= end:
            side.masks_seq.remove(li)
    items = side.history_seq.findall(_q(NS_RDF, "li"))
    rows = side.masks_seq.findall(_q(NS_RDF, "li"))
    nums = [_int_prop(li, "num", "history item") for li in items]
    first_num = max([end - 1, *nums]) + 1

    # darktable uses the forms of the latest history item that has any: that snapshot is
    # what the earlier edit's masks need, so every new item carries it on.
    snap_nums = [int(_prop(li, "mask_num") or 0) for li in rows]
    active = max(snap_nums) if snap_nums else None
    carried = [li for li, n in zip(rows, snap_nums, strict=True) if n == active]

    used_ids = {int(_prop(li, "mask_id") or 0) for li in rows}
    next_id = max([_id_base(shapes), *used_ids]) + 1

    def new_id() -> int:
        nonlocal next_id
        while next_id in used_ids or next_id in (0, -1):
            next_id += 1
        used_ids.add(next_id)
        next_id += 1
        return next_id - 1

    priorities = [int(_prop(li, "multi_priority") or 0) for li in items
                  if _prop(li, "operation") == "exposure"]
    next_priority = max(priorities) + 1 if priorities else 0

    _add_exposure_instances(desc, priorities,
                            list(range(next_priority, next_priority + len(shapes))))

    snapshot: list[dict[str, str]] = []  # our forms so far, as mask row attributes

    def emit(shape: _Shape) -> int:
        """Writes the shape's forms into ``snapshot``; its group's id."""
        group_id = new_id()
        members: list[tuple[int, int]] = []
        for r, region in enumerate(shape.regions):  # largest first: containers first
            for h, path in enumerate(region.paths()):
                fid = new_id()
                if path.is_hole:
                    state = STATE_USE | STATE_SHOW | STATE_DIFFERENCE
                    label = f"{shape.name} hole {r + 1}.{h}"
                else:
                    state = STATE_USE | STATE_SHOW | (STATE_UNION if members else 0)
                    label = f"{shape.name} path {r + 1}"
                members.append((fid, state))
                snapshot.append(_form_row(fid, MASK_PATH, label,
                                          _path_points(path, width, height, border, shift),
                                          path.node_count))
        for part in shape.parts:
            # An operand with no paths adds nothing to a union, takes nothing away from a
            # difference (it is never the first: the result would be empty, and left out).
            if not part.has_paths():
                continue
            mode = COMBINE_MODE[shape.op or "union"]
            if shape.op != "invert" and not members:
                mode = 0  # the first member starts the group
            members.append((emit(part), STATE_USE | STATE_SHOW | mode))
        snapshot.append(_form_row(group_id, MASK_GROUP, f"grp {shape.name}",
                                  _group_points(members, group_id), len(members)))
        return group_id

    for k, shape in enumerate(shapes):
        num = first_num + k
        group_id = emit(shape)
        for old in carried:
            row = copy.deepcopy(old)
            _set_prop(row, "mask_num", str(num))
            side.masks_seq.append(row)
        for attrs in snapshot:
            _li(side.masks_seq, {"mask_num": str(num), **attrs})
        _li(side.history_seq, {
            "num": str(num),
            "operation": "exposure",
            "enabled": "1",
            "modversion": str(EXPOSURE_MODVERSION),
            "params": encode_blob(_exposure_params(ev)),
            "multi_name": _instance_name(shape.name),
            "multi_priority": str(next_priority + k),
            "blendop_version": str(BLENDOP_VERSION),
            "blendop_params": encode_blob(_blendop_params(group_id)),
        })
    _set_prop(desc, "history_end", str(first_num + len(shapes)))


def _add_exposure_instances(desc: ET.Element, existing: list[int], new: list[int]) -> None:
    """Make darktable's order list know every exposure instance (see iop_order.py)."""
    text = _prop(desc, "iop_order_list")
    if text is None and max([*existing, *new]) == 0:
        return  # one instance only: the built-in order list covers it
    if text is not None:
        try:
            entries = iop_order.parse(text)
        except ValueError as exc:
            raise SidecarError(f"unreadable darktable:iop_order_list ({exc})") from None
    else:
        version_text = _prop(desc, "iop_order_version")
        try:
            version = int(version_text) if version_text is not None else iop_order.LEGACY
        except ValueError:
            raise SidecarError(f"bad darktable:iop_order_version {version_text!r}") from None
        builtin = iop_order.builtin(version)
        if builtin is None:
            raise SidecarError(f"darktable:iop_order_version {version} without a module "
                               "order list: cannot place another exposure instance")
        entries = [e for e in builtin if e[0] != "exposure"]
        at = [op for op, _ in builtin].index("exposure")
        entries[at:at] = [("exposure", p) for p in sorted(set(existing) or {0})]
    try:
        entries = iop_order.with_instances(entries, "exposure", new)
    except ValueError as exc:
        raise SidecarError(f"darktable:iop_order_list: {exc}") from None
    _set_prop(desc, "iop_order_list", iop_order.serialize(entries))


def _instance_name(name: str) -> str:
    """darktable keeps an instance name in 128 bytes: cut at a character boundary."""
    return name.encode("utf-8")[:120].decode("utf-8", errors="ignore")


def _form_row(form_id: int, mask_type: int, name: str, points: bytes, count: int
              ) -> dict[str, str]:
    return {
        "mask_id": str(form_id),
        "mask_type": str(mask_type),
        "mask_name": name,
        "mask_version": str(MASK_VERSION),
        "mask_points": encode_blob(points),
        "mask_nb": str(count),
        "mask_src": "0" * 16,  # float[2] zeros; leaving it out crashes darktable-cli 4.2
    }
