"""Every message a client sends and every JSON answer the HTTP API gives, as typed pydantic
models: the one source of truth for the HTTP API (django-ninja validates its bodies and query
strings with them and generates /api/v1/openapi.json from them) and for the websocket protocol
(the consumer validates each message with ``Message``). docs/protocol.md describes both.

Input goes through two steps, each in one place:

1. ``json_object``: the raw JSON text, before any model sees it. Nesting deeper than
   ``MAX_DEPTH``, NaN and Infinity, integers of thousands of digits and anything but an
   object are refused (``bad_json``).
2. A model (``Message``, ``Prompt``, a request body): wrong types, missing fields, numbers that
   are not finite, bad names or colours... ``ProtocolError`` from ``protocol_error``, which
   turns pydantic's errors into the protocol's error codes (``bad_field``, ``unknown_type``,
   ``too_many_points``) with a message naming the field.

Checks that need a session (a point inside the photo, a candidate index below the number the
model gave, an installed model, an existing object) stay in the services, which raise
``ProtocolError`` the same way. Nothing here touches the database or Redis: a refused input
never changed anything. Numbers are strict: ``true`` is not 1 and ``"1"`` is not a number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from maskweb.segment.vectorize import VectorizeOptions

# Deeper than any message of the protocol needs (a stroke is 3 levels): refused before any
# code walks it. json.loads itself raises RecursionError near 1000 levels.
MAX_DEPTH = 16
NAME_LENGTH = 100
ID_LENGTH = 64
MODEL_ID_LENGTH = 128
MAX_OPERANDS = 16


class ProtocolError(Exception):
    """Bad input from a client: ``code`` is the protocol's error code (docs/protocol.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- step 1: JSON ---------------------------------------------------------------------------

def json_object(text: str | bytes, what: str = "A message") -> dict[str, Any]:
    """Parses a JSON object; NaN, Infinity, numbers beyond a float's range or of thousands of
    digits and nesting deeper than MAX_DEPTH are refused like malformed JSON (``bad_json``)."""
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ProtocolError("bad_json", f"{what} is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ProtocolError("bad_json", f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", f"{what} must be a JSON object.")
    if _depth(data) > MAX_DEPTH:
        raise ProtocolError("bad_json", f"{what} is nested too deeply (at most {MAX_DEPTH} "
                            "levels).")
    return data


def body_object(body: bytes) -> dict[str, Any]:
    """An HTTP request's JSON body; an empty body is an empty object."""
    if not body:
        return {}
    return json_object(body, "The body")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


# --- field types ----------------------------------------------------------------------------

Coordinate = Annotated[float, Field(strict=True, allow_inf_nan=False,
                                    description="upright full-resolution pixels")]
ObjectNumber = Annotated[int, Field(strict=True, gt=0, lt=2**31,
                                   description="an object's id within its session")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                        max_length=NAME_LENGTH), Field(strict=True)]
Colour = Annotated[str, Field(strict=True, pattern=r"^(#[0-9a-fA-F]{6})?$",
                              description="#rrggbb, or \"\" for the page's own palette"),
                   AfterValidator(str.lower)]
ModelId = Annotated[str, Field(strict=True, min_length=1, max_length=MODEL_ID_LENGTH,
                               description="an installed model's id (GET /api/v1/models)")]
RequestId = Annotated[str, Field(strict=True, max_length=ID_LENGTH,
                                 description="echoed in the replies this message causes")]
CandidateIndex = Annotated[int, Field(strict=True, ge=0,
                                      description="below the number of the mask's scores")]
CombineOp = Literal["union", "difference", "intersection", "invert"]


class Input(BaseModel):
    """What a client sends: strict types; fields the protocol does not know are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


# --- prompts --------------------------------------------------------------------------------

class PointPrompt(Input):
    kind: Literal["point"]
    x: Coordinate
    y: Coordinate
    positive: bool = True


class BoxPrompt(Input):
    """A box replaces an earlier box of the same object."""

    kind: Literal["box"]
    x0: Coordinate
    y0: Coordinate
    x1: Coordinate
    y1: Coordinate

    @model_validator(mode="after")
    def _has_area(self) -> BoxPrompt:
        if self.x0 == self.x1 or self.y0 == self.y1:
            raise PydanticCustomError("bad_field", "the box has no area")
        return self


StrokePoint = Annotated[list[Coordinate], Field(min_length=2, max_length=2,
                                                description="[x, y]")]


class StrokePrompt(Input):
    kind: Literal["stroke"]
    points: list[StrokePoint] = Field(min_length=1, description="at most "
                                      "MASKWEB_WS_MAX_STROKE_POINTS (state.limits)")
    radius: Coordinate = Field(gt=0)
    positive: bool = True

    @field_validator("points", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        """Counted before the points are read one by one."""
        limit = settings.WS_MAX_STROKE_POINTS
        if isinstance(value, list) and len(value) > limit:
            raise PydanticCustomError("too_many_points",
                                      "a stroke has at most {limit} points, not {count}",
                                      {"limit": limit, "count": len(value)})
        return value


PROMPT_KINDS = ("point", "box", "stroke")
Prompt = Annotated[PointPrompt | BoxPrompt | StrokePrompt, Field(discriminator="kind")]
PROMPT: TypeAdapter[PointPrompt | BoxPrompt | StrokePrompt] = TypeAdapter(Prompt)


# --- HTTP request bodies (the socket's messages below carry the same fields) -----------------

class CandidateBody(Input):
    index: CandidateIndex


class ApplyBody(Input):
    name: Name | None = None


class CombineBody(Input):
    op: CombineOp
    objects: list[ObjectNumber] = Field(min_length=1, max_length=MAX_OPERANDS,
                                        description="invert: exactly 1; else 2..16")
    name: Name | None = None

    @model_validator(mode="after")
    def _operands(self) -> CombineBody:
        if len(set(self.objects)) != len(self.objects):
            raise PydanticCustomError("bad_field", "'objects' names an object twice")
        if self.op == "invert" and len(self.objects) != 1:
            raise PydanticCustomError("bad_field", "invert takes exactly one object")
        if self.op != "invert" and not 2 <= len(self.objects) <= MAX_OPERANDS:
            raise PydanticCustomError("bad_field", "{op} takes 2 to {most} objects",
                                      {"op": self.op, "most": MAX_OPERANDS})
        return self


class ModelBody(Input):
    model: ModelId


class ObjectPatch(Input):
    """Any of them; each is one undoable change."""

    name: Name | None = None
    visible: bool | None = None
    colour: Colour | None = None

    @model_validator(mode="after")
    def _something(self) -> ObjectPatch:
        if not {"name", "visible", "colour"} & self.model_fields_set:
            raise PydanticCustomError("bad_field", "send 'name', 'visible' and/or 'colour'")
        return self


# --- socket messages ------------------------------------------------------------------------

class SocketMessage(Input):
    id: RequestId | None = None


class PromptMessage(SocketMessage):
    type: Literal["prompt"]
    prompt: Prompt


class PreviewMessage(SocketMessage):
    """The hover preview: the mask a click there would give."""

    type: Literal["preview"]
    prompt: PointPrompt


class UndoMessage(SocketMessage):
    type: Literal["undo"]


class RedoMessage(SocketMessage):
    type: Literal["redo"]


class ClearMessage(SocketMessage):
    type: Literal["clear"]


class CandidateMessage(SocketMessage):
    type: Literal["candidate"]
    index: CandidateIndex


class ApplyMessage(SocketMessage):
    type: Literal["apply"]
    name: Name | None = None


class ReopenMessage(SocketMessage):
    type: Literal["reopen"]
    object_id: ObjectNumber


class RenameMessage(SocketMessage):
    type: Literal["rename"]
    object_id: ObjectNumber
    name: Name


class VisibilityMessage(SocketMessage):
    type: Literal["visibility"]
    object_id: ObjectNumber
    visible: bool


class ColourMessage(SocketMessage):
    type: Literal["colour"]
    object_id: ObjectNumber
    colour: Colour


class CombineMessage(CombineBody, SocketMessage):
    type: Literal["combine"]


class DeleteMessage(SocketMessage):
    type: Literal["delete"]
    object_id: ObjectNumber


class ModelMessage(SocketMessage):
    type: Literal["model"]
    model: ModelId


class PingMessage(SocketMessage):
    type: Literal["ping"]


class StatusMessage(SocketMessage):
    type: Literal["status"]


AnyMessage = (PromptMessage | PreviewMessage | UndoMessage | RedoMessage | ClearMessage
              | CandidateMessage | ApplyMessage | ReopenMessage | RenameMessage
              | VisibilityMessage | ColourMessage | CombineMessage | DeleteMessage
              | ModelMessage | PingMessage | StatusMessage)
Message = Annotated[AnyMessage, Field(discriminator="type")]
MESSAGE: TypeAdapter[AnyMessage] = TypeAdapter(Message)
MESSAGE_TYPES = ("prompt", "preview", "undo", "redo", "clear", "candidate", "apply", "reopen",
                 "rename", "visibility", "colour", "combine", "delete", "model", "ping",
                 "status")


def message(data: dict[str, Any]) -> AnyMessage:
    """One socket message (already through json_object), typed; ProtocolError otherwise."""
    try:
        return MESSAGE.validate_python(data)
    except ValidationError as exc:
        raise protocol_error(exc.errors(include_url=False), tagged=True) from None


def request_id(data: dict[str, Any]) -> str | None:
    """The message's ``id`` alone, so that a message refused for another field still gets
    its id echoed."""
    result: str | None = check(RequestId | None, data.get("id"), "id")
    return result


# --- validating one value, and pydantic's errors as the protocol's ----------------------------

@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def check(kind: Any, value: Any, field: str) -> Any:
    """``value`` validated as ``kind`` (a model or an annotated type above); ``field`` names it
    in the error."""
    try:
        result = _adapter(kind).validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": (field, *e["loc"]) if field else e["loc"]}
                  for e in exc.errors(include_url=False)]
        raise protocol_error(errors) from None
    return result


def candidate_index(value: int, count: int) -> int:
    """A candidate mask's index, below ``count`` (the candidates the model gave)."""
    if not 0 <= value < max(count, 1):
        raise ProtocolError("bad_field", f"'index' must be a candidate number from 0 to "
                            f"{max(count, 1) - 1}")
    return value


def field_name(loc: Sequence[Any], *, tagged: bool = False) -> str:
    """pydantic's location as the protocol names the field: ``prompt.x``, ``points.3.1``.
    The tags pydantic puts in (a message's type, a prompt's kind) are left out."""
    parts = list(loc)
    if tagged and parts and parts[0] in MESSAGE_TYPES:
        parts = parts[1:]
    kept: list[str] = []
    for i, part in enumerate(parts):
        if part in PROMPT_KINDS and (i == 0 or parts[i - 1] == "prompt"):
            continue
        kept.append(str(part))
    return ".".join(kept)


# pydantic's error types for which the message says it better than pydantic's text.
_PLAIN = {
    "finite_number": "must be finite (no NaN or Infinity)",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_pattern_mismatch": "must be #rrggbb (or \"\" for the default)",
}


def protocol_error(errors: Sequence[Any], *, tagged: bool = False) -> ProtocolError:
    """The ProtocolError for pydantic's (or django-ninja's) first error, with the protocol's
    code: ``unknown_type`` for a message's type, the code a validator above raised
    (``too_many_points``), ``bad_field`` for everything else. ``tagged``: the errors are of
    ``Message``, whose first location is the message's type."""
    error = errors[0]
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    field = field_name(loc, tagged=tagged)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if ctx.get("discriminator") == "'type'":
            tag = error.get("input", {}).get("type") if isinstance(error.get("input"), dict) \
                else None
            if not isinstance(tag, str):
                return ProtocolError("unknown_type", "'type' must be a string naming the "
                                     "message.")
            return ProtocolError("unknown_type", f"Unknown message type {tag[:40]!r}.")
        where = f"{field}.kind" if field else "kind"
        return ProtocolError("bad_field", f"'{where}' must be 'point', 'box' or 'stroke'")
    if kind in ("too_many_points", "bad_field", "out_of_bounds"):
        return ProtocolError(kind, error["msg"])
    if kind == "missing":
        return ProtocolError("bad_field", f"'{field}' is missing")
    if kind == "float_type" and isinstance(error.get("input"), int) \
            and not isinstance(error.get("input"), bool):
        return ProtocolError("bad_field", f"'{field}' is far too large")
    if kind == "float_type":
        return ProtocolError("bad_field", f"'{field}' must be a number")
    if kind in _PLAIN:
        return ProtocolError("bad_field", f"'{field}' {_PLAIN[kind]}")
    message = error["msg"]
    return ProtocolError("bad_field", f"'{field}': {message[0].lower()}{message[1:]}"
                         if field else message)


# --- HTTP query strings ---------------------------------------------------------------------

# The vectorization settings a download may carry (?turdsize=&alphamax=&opttolerance=, XMP
# also &feather=): name -> (default, minimum, maximum, whole number). The session state
# advertises the defaults as ``vectorize`` (the page shows a slider only for a setting the
# server takes) and the ranges as ``vectorize_bounds`` (so it never sends one that is refused).
# opttolerance stops at 5 pixels: past about 2 the curves are already as few as a shape
# allows (every run turning under 120 degrees joined), more only lets them stray further.
VECTOR_PARAMS: dict[str, tuple[float, float, float, bool]] = {
    "turdsize": (VectorizeOptions.turdsize, 0, 100_000, True),
    "alphamax": (VectorizeOptions.alphamax, 0.0, 4.0 / 3.0, False),
    "opttolerance": (VectorizeOptions.opttolerance, 0.0, 5.0, False),
    "feather": (0.0, 0.0, 1000.0, False),
}


def _setting(name: str, description: str) -> Any:
    default, low, high, _ = VECTOR_PARAMS[name]
    return Field(default, ge=low, le=high, allow_inf_nan=False, description=description)


class VectorQuery(Input):
    """An SVG or XMP download's vectorization settings (potrace's names, and the XMP's
    feather, which an SVG download checks but has no use for)."""

    model_config = ConfigDict(strict=False, extra="ignore")
    turdsize: int = _setting("turdsize", "drop regions and holes of at most this many pixels")
    alphamax: float = _setting("alphamax", "corner threshold: 0 = polygon, 4/3 = no corners")
    opttolerance: float = _setting(
        "opttolerance", "how far (pixels) a curve joined from several may stray from them; "
        "larger = fewer nodes, 0 = no joining")
    feather: float = _setting("feather", "XMP only: darktable's path border in stored "
                              "pixels, 0 = hard edge")


class PngQuery(Input):
    """A PNG download's options."""

    model_config = ConfigDict(strict=False, extra="ignore")
    soft: str = Field("", description="1 (or true, yes): anti-aliased edges; anything else: "
                      "hard")
    grid: Literal["upright", "stored"] = Field(
        "upright", description="stored: the photo's stored grid (a raw's sensor orientation), "
        "as darktable's external raster masks read it")
    depth: Literal["8", "16"] = Field("8", description="bits per pixel")


PixelQuery = Annotated[int, Field(ge=0, lt=10**6)]


class RegionQuery(PngQuery):
    """One object's PNG: ``x``, ``y``, ``w``, ``h`` (all four or none) ask for only that
    region of the upright full-resolution mask (the page's 100 % view), at most 2048 px a side.
    """

    x: PixelQuery | None = Field(None, description="a region's left column")
    y: PixelQuery | None = Field(None, description="its top row")
    w: PixelQuery | None = Field(None, description="its width, 1..2048")
    h: PixelQuery | None = Field(None, description="its height, 1..2048")


class CropQuery(Input):
    model_config = ConfigDict(strict=False, extra="ignore")
    x: PixelQuery = Field(description="left column, upright full-resolution pixels")
    y: PixelQuery = Field(description="top row")
    w: PixelQuery = Field(description="width, 1..2048")
    h: PixelQuery = Field(description="height, 1..2048")


# --- answers (the OpenAPI document's response schemas) --------------------------------------

class Output(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorDetail(Output):
    code: str = Field(description="the protocol's error code (docs/protocol.md)")
    message: str = Field(description="what went wrong, for a person")


class Error(Output):
    error: ErrorDetail


class Model(Output):
    id: str
    name: str
    default: bool
    prompts: list[Literal["click", "box", "stroke"]] = Field(
        default_factory=list, description="what the model does well")


class ModelList(Output):
    models: list[Model]
    default: str


class Object(Output):
    id: int
    name: str
    visible: bool
    area: int = Field(description="pixels in the stored grid")
    colour: str | None = Field(None, description="#rrggbb the pages draw it in; null: the "
                               "page's own palette")
    combination: CombineOp | None = Field(None, description="how it was made from other "
                                          "objects, or null")
    png_url: str
    svg_url: str
    xmp_url: str


class ObjectList(Output):
    objects: list[Object]


class ObjectResult(Output):
    object: Object
    objects: list[Object]


class Photo(Output):
    name: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    orientation: int = Field(ge=1, le=8)
    preview_url: str
    preview_width: int
    preview_height: int


class Current(Output):
    object_id: int | None
    prompts: list[Prompt]
    candidate: int
    scores: list[float | None]
    can_undo: bool
    can_redo: bool


class Downloads(Output):
    png: str
    svg: str
    xmp: str


class Sidecar(Output):
    name: str
    bytes: int


class Vectorize(Output):
    """The defaults of the SVG/XMP download query parameters."""

    turdsize: float
    alphamax: float
    opttolerance: float
    feather: float


class Bounds(Output):
    min: float
    max: float
    integer: bool = Field(description="whole numbers only")


class VectorizeBounds(Output):
    """The range each of those parameters accepts (outside it: 400 ``bad_field``)."""

    turdsize: Bounds
    alphamax: Bounds
    opttolerance: Bounds
    feather: Bounds


class Limits(Output):
    max_stroke_points: int
    max_prompts: int
    max_message_bytes: int


class SessionState(Output):
    role: Literal["edit", "view"]
    edit_url: str | None = Field(None, description="only for the edit role")
    edit_token: str | None = Field(None, description="only for the edit role")
    view_url: str
    view_token: str
    photo: Photo
    model: str
    models: list[Model]
    status: Literal["encoding", "ready", "failed"]
    progress: float = Field(ge=0, le=1)
    message: str
    revision: int
    current: Current
    objects: list[Object]
    downloads: Downloads
    sidecar: Sidecar | None = Field(description="the uploaded darktable XMP that XMP "
                                    "downloads merge into, or null")
    vectorize: Vectorize
    vectorize_bounds: VectorizeBounds
    limits: Limits


class MaskResult(Output):
    """The current object's mask: the socket's mask frame header, and its PNG."""

    type: Literal["mask"]
    v: Literal[1] = 1
    seq: int
    id: str | None = None
    object_id: int
    width: int
    height: int
    candidate: int
    scores: list[float | None]
    bbox: Annotated[list[int], Field(min_length=4, max_length=4)] | None
    prompts: list[Prompt]
    can_undo: bool
    can_redo: bool
    empty: bool
    png_base64: str = Field(description="1-bit greyscale PNG at the preview size, upright; "
                            "empty when the object has no mask")


class Waiting(Output):
    """The photo is being (re-)encoded; the mask follows."""

    status: Literal["encoding", "failed"]
    progress: float
    message: str


class SidecarStored(Output):
    sidecar: Literal[True]
    bytes: int
    name: str
