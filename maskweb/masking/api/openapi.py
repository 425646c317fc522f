"""The OpenAPI 3.1 document of the HTTP API, written by hand next to the views it describes.

Hand-written rather than generated (drf-spectacular) because the API is plain Django views:
multipart uploads, binary downloads and one error shape are stated here exactly once, and a
test checks that every route is documented and that real responses validate against these
schemas (OpenAPI 3.1 schemas are JSON Schema 2020-12).
"""

from __future__ import annotations

from typing import Any

TOKEN = {"name": "token", "in": "path", "required": True,
         "description": "The session's edit token (read and write) or view token (read only).",
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
NUMBER = {"name": "number", "in": "path", "required": True,
          "description": "The object's id within its session.",
          "schema": {"type": "integer", "minimum": 1}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _file(media: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {media: {"schema": {"type": "string", "format": "binary"}}}}


PNG_OPTIONS = [
    {"name": "soft", "in": "query", "required": False, "schema": {"enum": ["0", "1"]},
     "description": "1: anti-aliased edges"},
    {"name": "grid", "in": "query", "required": False,
     "schema": {"enum": ["upright", "stored"]},
     "description": "stored: the photo's stored grid (a raw's sensor orientation), as "
                    "darktable's external raster masks read it; default upright"},
    {"name": "depth", "in": "query", "required": False, "schema": {"enum": ["8", "16"]},
     "description": "bits per pixel (default 8)"},
]
REGION = [{"name": n, "in": "query", "required": False, "schema": {"type": "integer",
                                                                    "minimum": 0},
           "description": d}
          for n, d in (("x", "one object's mask only: a region's left column (upright "
                             "full-resolution pixels; all four or none)"),
                       ("y", "the region's top row"), ("w", "its width, 1..2048"),
                       ("h", "its height, 1..2048"))]
PNG_BAD = _error("`bad_field`: a `grid` or `depth` the download does not offer.")

VECTOR = [
    {"name": "turdsize", "in": "query", "required": False,
     "description": "potrace turdsize: drop regions and holes of at most this many pixels",
     "schema": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 4}},
    {"name": "alphamax", "in": "query", "required": False,
     "description": "potrace alphamax: 0 = polygon corners, 4/3 = no corners",
     "schema": {"type": "number", "minimum": 0, "maximum": 1.3334, "default": 1.0}},
    {"name": "opttolerance", "in": "query", "required": False,
     "description": "potrace opttolerance: how far (pixels) a curve joined from several may "
                    "stray from them; larger = fewer nodes, 0 = no joining",
     "schema": {"type": "number", "minimum": 0, "maximum": 5, "default": 0.2}},
]
FEATHER = {"name": "feather", "in": "query", "required": False,
           "description": "feather (darktable path border) in stored pixels, 0 = hard edge",
           "schema": {"type": "number", "minimum": 0, "maximum": 1000, "default": 0}}

VECTOR_NAMES = ("turdsize", "alphamax", "opttolerance", "feather")

XMP_CONFLICT = _error("`empty`: nothing to download; `invalid_sidecar`: the uploaded sidecar "
                      "cannot be merged into.")
NOT_FOUND = _error("No session has this token (`not_found`), or no such object.")
FORBIDDEN = _error("A view token cannot change the session (`forbidden`).")
BAD = _error("Bad input: `bad_json`, `bad_field`, `out_of_bounds`, `too_many_points`.")
MASK_OR_WAIT = {
    "200": _json(_ref("MaskResult"), "The current object's mask."),
    "202": _json(_ref("Waiting"), "The photo is being (re-)encoded; the mask follows."),
}


def _mask_op(summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": [TOKEN],
                          "responses": {**MASK_OR_WAIT, "400": BAD, "403": FORBIDDEN,
                                        "404": NOT_FOUND}}
    if body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": body}}}
    return op


COORD = {"type": "number"}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
    "Prompt": {"oneOf": [
        {"type": "object", "required": ["kind", "x", "y"], "properties": {
            "kind": {"const": "point"}, "x": COORD, "y": COORD,
            "positive": {"type": "boolean", "default": True}}},
        {"type": "object", "required": ["kind", "x0", "y0", "x1", "y1"], "properties": {
            "kind": {"const": "box"}, "x0": COORD, "y0": COORD, "x1": COORD, "y1": COORD}},
        {"type": "object", "required": ["kind", "points", "radius"], "properties": {
            "kind": {"const": "stroke"},
            "points": {"type": "array", "minItems": 1, "maxItems": 2000,
                       "items": {"type": "array", "items": COORD, "minItems": 2,
                                 "maxItems": 2}},
            "radius": {"type": "number", "exclusiveMinimum": 0},
            "positive": {"type": "boolean", "default": True}}},
    ], "description": "Upright, full-resolution pixel coordinates (docs/protocol.md)."},
    "Model": {"type": "object", "required": ["id", "name", "default"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "default": {"type": "boolean"},
        "prompts": {"type": "array", "items": {"enum": ["click", "box", "stroke"]},
                    "description": "what the model does well"}}},
    "Object": {"type": "object", "required": ["id", "name", "visible", "area", "png_url",
                                              "svg_url", "xmp_url"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "visible": {"type": "boolean"},
        "colour": {"type": ["string", "null"], "description": "#rrggbb the pages draw it "
                   "in; null: the page's own palette"},
        "combination": {"enum": ["union", "difference", "intersection", "invert", None],
                        "description": "how it was made from other objects, or null"},
        "area": {"type": "integer", "description": "pixels in the stored grid"},
        "png_url": {"type": "string"}, "svg_url": {"type": "string"},
        "xmp_url": {"type": "string"}}},
    "SessionState": {"type": "object", "required": [
        "role", "view_url", "view_token", "photo", "model", "models", "status", "progress",
        "message", "revision", "current", "objects", "downloads", "vectorize",
        "vectorize_bounds", "limits"],
        "properties": {
        "role": {"enum": ["edit", "view"]},
        "edit_url": {"type": "string", "description": "only for the edit role"},
        "edit_token": {"type": "string", "description": "only for the edit role"},
        "view_url": {"type": "string"}, "view_token": {"type": "string"},
        "photo": {"type": "object", "required": [
            "name", "width", "height", "stored_width", "stored_height", "orientation",
            "preview_url", "preview_width", "preview_height"], "properties": {
            "name": {"type": "string"}, "width": {"type": "integer"},
            "height": {"type": "integer"}, "stored_width": {"type": "integer"},
            "stored_height": {"type": "integer"},
            "orientation": {"type": "integer", "minimum": 1, "maximum": 8},
            "preview_url": {"type": "string"}, "preview_width": {"type": "integer"},
            "preview_height": {"type": "integer"}}},
        "model": {"type": "string"}, "models": {"type": "array", "items": _ref("Model")},
        "status": {"enum": ["encoding", "ready", "failed"]},
        "progress": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"}, "revision": {"type": "integer"},
        "current": {"type": "object", "required": [
            "object_id", "prompts", "candidate", "scores", "can_undo", "can_redo"],
            "properties": {
                "object_id": {"type": ["integer", "null"]},
                "prompts": {"type": "array", "items": _ref("Prompt")},
                "candidate": {"type": "integer"},
                "scores": {"type": "array", "items": {"type": ["number", "null"]}},
                "can_undo": {"type": "boolean"}, "can_redo": {"type": "boolean"}}},
        "objects": {"type": "array", "items": _ref("Object")},
        "sidecar": {"type": ["object", "null"], "description": "the uploaded darktable XMP "
                    "that XMP downloads merge into, or null", "properties": {
                        "name": {"type": "string"}, "bytes": {"type": "integer"}}},
        "downloads": {"type": "object", "required": ["png", "svg", "xmp"], "properties": {
            "png": {"type": "string"}, "svg": {"type": "string"}, "xmp": {"type": "string"}}},
        "vectorize": {"type": "object", "description": "defaults of the SVG/XMP download "
                      "query parameters", "required": list(VECTOR_NAMES),
                      "properties": {n: {"type": "number"} for n in VECTOR_NAMES}},
        "vectorize_bounds": {"type": "object", "description": "the range each of those "
                             "parameters accepts (outside it: 400 `bad_field`)",
                             "required": list(VECTOR_NAMES),
                             "properties": {n: _ref("Bounds") for n in VECTOR_NAMES}},
        "limits": {"type": "object"}}},
    "MaskResult": {"type": "object", "required": [
        "type", "seq", "object_id", "width", "height", "candidate", "scores", "bbox",
        "prompts", "can_undo", "can_redo", "empty", "png_base64"], "properties": {
        "type": {"const": "mask"}, "v": {"const": 1}, "seq": {"type": "integer"},
        "id": {"type": ["string", "null"]}, "object_id": {"type": "integer"},
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "candidate": {"type": "integer"},
        "scores": {"type": "array", "items": {"type": ["number", "null"]}},
        "bbox": {"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "integer"},
                                              "minItems": 4, "maxItems": 4}]},
        "prompts": {"type": "array", "items": _ref("Prompt")},
        "can_undo": {"type": "boolean"}, "can_redo": {"type": "boolean"},
        "empty": {"type": "boolean"},
        "png_base64": {"type": "string", "description": "1-bit greyscale PNG at the preview "
                       "size, upright; empty when the object has no mask"}}},
    "Bounds": {"type": "object", "required": ["min", "max", "integer"], "properties": {
        "min": {"type": "number"}, "max": {"type": "number"},
        "integer": {"type": "boolean", "description": "whole numbers only"}}},
    "Waiting": {"type": "object", "required": ["status", "progress", "message"], "properties": {
        "status": {"enum": ["encoding", "failed"]}, "progress": {"type": "number"},
        "message": {"type": "string"}}},
}

API = "/api/v1/sessions/{token}"

PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {
        "200": _json({"type": "object"}, "The OpenAPI document.")}}},
    "/api/v1/models": {"get": {"summary": "The segmentation models a session can pick: those "
                             "that answer clicks, and the default", "responses": {
        "200": _json({"type": "object", "required": ["models", "default"], "properties": {
            "models": {"type": "array", "items": _ref("Model")},
            "default": {"type": "string"}}}, "The models and the default one.")}}},
    "/api/v1/sessions": {"post": {
        "summary": "Upload a photo: a new session (and its encode job)",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["photo"], "properties": {
                "photo": {"type": "string", "format": "binary",
                          "description": "JPEG, PNG, WebP or TIFF"},
                "model": {"type": "string", "description": "a model id; default otherwise"}}}}}},
        "responses": {
            "201": _json(_ref("SessionState"), "The session (role edit)."),
            "400": _error("`invalid_image` (empty, truncated, undecodable, no `photo` field) "
                          "or `bad_field` (unknown model)."),
            "413": _error("`too_large`: too many bytes or pixels (decompression bombs); a body "
                          "declared larger than the limit is refused before it is read."),
            "415": _error("`unsupported_type`: not JPEG, PNG, WebP or TIFF."),
            "429": _error("`rate_limited`: too many uploads from this address (see "
                          "Retry-After)."),
            "507": _error("`quota_exceeded`: this address's photos take its whole disk "
                          "quota; `insufficient_storage`: the server is short of disk.")}}},
    API: {
        "get": {"summary": "Session state (a lost encode job is queued again)",
                "parameters": [TOKEN], "responses": {
                    "200": _json(_ref("SessionState"), "The state."), "404": NOT_FOUND}},
        "delete": {"summary": "Delete the session for good: its objects, and its photo, files "
                              "and embeddings unless another session uses them",
                   "parameters": [TOKEN],
                   "responses": {"204": {"description": "Deleted; open pages are closed."},
                                 "403": FORBIDDEN, "404": NOT_FOUND}}},
    f"{API}/photo": {"get": {"summary": "The upright preview picture", "parameters": [TOKEN],
                             "responses": {"200": _file("image/jpeg", "The preview."),
                                           "404": NOT_FOUND}}},
    f"{API}/photo/crop": {"get": {
        "summary": "A region of the full-resolution photo, upright (the true 100 % view)",
        "parameters": [TOKEN, *[
            {"name": n, "in": "query", "required": True, "description": d,
             "schema": {"type": "integer", "minimum": 0}}
            for n, d in (("x", "left column, upright full-resolution pixels"),
                         ("y", "top row"), ("w", "width, 1..2048"), ("h", "height, 1..2048"))]],
        "responses": {"200": _file("image/jpeg", "The region at full resolution."),
                      "400": _error("`bad_field`: not whole numbers, outside the photo, "
                                    "empty, or over 2048 pixels a side."),
                      "404": NOT_FOUND}}},
    f"{API}/prompts": {"post": _mask_op("Add a prompt to the current object", _ref("Prompt"))},
    f"{API}/current": {"get": {"summary": "The current object's mask", "parameters": [TOKEN],
                               "responses": {**MASK_OR_WAIT, "404": NOT_FOUND}}},
    f"{API}/undo": {"post": _mask_op("Undo the last prompt or clear")},
    f"{API}/redo": {"post": _mask_op("Redo")},
    f"{API}/clear": {"post": _mask_op("Clear the current object (undoable)")},
    f"{API}/candidate": {"post": _mask_op("Pick one of the model's candidate masks", {
        "type": "object", "required": ["index"],
        "properties": {"index": {"type": "integer", "minimum": 0}}})},
    f"{API}/apply": {"post": {
        "summary": "The current mask becomes an object; a new current object starts",
        "parameters": [TOKEN],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}}}}},
        "responses": {
            "201": _json({"type": "object", "required": ["object", "objects"], "properties": {
                "object": _ref("Object"),
                "objects": {"type": "array", "items": _ref("Object")}}}, "Applied."),
            "403": FORBIDDEN, "404": NOT_FOUND,
            "409": _error("`empty`: no mask to apply; `not_ready`: still encoding; "
                          "`too_many_objects`: the session holds MASKWEB_MAX_OBJECTS.")}}},
    f"{API}/combine": {"post": {
        "summary": "A new object from applied ones: union, difference (the first less the "
                   "others), intersection, or the inverse of one (undoable)",
        "parameters": [TOKEN],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["op", "objects"], "properties": {
                "op": {"enum": ["union", "difference", "intersection", "invert"]},
                "objects": {"type": "array", "items": {"type": "integer"},
                            "minItems": 1, "maxItems": 16},
                "name": {"type": "string", "maxLength": 100}}}}}},
        "responses": {
            "201": _json({"type": "object", "required": ["object", "objects"], "properties": {
                "object": _ref("Object"),
                "objects": {"type": "array", "items": _ref("Object")}}}, "Made."),
            "400": BAD, "403": FORBIDDEN, "404": NOT_FOUND,
            "409": _error("`empty`: the combination has no pixel; `too_many_objects`.")}}},
    f"{API}/model": {"put": {
        "summary": "Switch the model (re-encodes, replays the prompts)", "parameters": [TOKEN],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["model"],
            "properties": {"model": {"type": "string"}}}}}},
        "responses": {"200": _json(_ref("SessionState"), "Switched; already encoded."),
                      "202": _json(_ref("SessionState"), "Switched; encoding."),
                      "400": BAD, "403": FORBIDDEN, "404": NOT_FOUND}}},
    f"{API}/objects": {"get": {"summary": "The applied objects", "parameters": [TOKEN],
                               "responses": {"200": _json({"type": "object", "properties": {
                                   "objects": {"type": "array", "items": _ref("Object")}}},
                                   "The list."), "404": NOT_FOUND}}},
    f"{API}/objects/{{number}}": {
        "patch": {"summary": "Rename, hide/show or colour an object (undoable)",
                  "parameters": [TOKEN, NUMBER],
                  "requestBody": {"required": True, "content": {"application/json": {
                      "schema": {"type": "object", "properties": {
                          "name": {"type": "string", "minLength": 1, "maxLength": 100},
                          "visible": {"type": "boolean"},
                          "colour": {"type": "string", "pattern": "^(#[0-9a-fA-F]{6})?$"}}}}}},
                  "responses": {"200": _json(_ref("Object"), "The object."), "400": BAD,
                                "403": FORBIDDEN, "404": NOT_FOUND}},
        "delete": {"summary": "Delete an object", "parameters": [TOKEN, NUMBER],
                   "responses": {"204": {"description": "Deleted."}, "403": FORBIDDEN,
                                 "404": NOT_FOUND}}},
    f"{API}/objects/{{number}}/reopen": {"post": {
        "summary": "Make an object the current one again", "parameters": [TOKEN, NUMBER],
        "responses": {"200": _json(_ref("SessionState"), "The new state."),
                      "403": FORBIDDEN, "404": NOT_FOUND}}},
    f"{API}/objects/{{number}}/mask.png": {"get": {
        "summary": "One object's mask, upright, full resolution",
        "parameters": [TOKEN, NUMBER, *PNG_OPTIONS, *REGION],
        "responses": {"200": _file("image/png", "Greyscale mask, 8 or 16 bits."),
                      "400": PNG_BAD, "404": NOT_FOUND,
                      "409": _error("`empty`: the object has no mask.")}}},
    f"{API}/objects/{{number}}/mask.svg": {"get": {
        "summary": "One object as SVG paths (upright)", "parameters": [TOKEN, NUMBER, *VECTOR],
        "responses": {"200": _file("image/svg+xml", "Bezier paths."), "404": NOT_FOUND,
                      "400": _error("`bad_field`: a vectorization parameter out of range."),
                      "409": _error("`empty`.")}}},
    f"{API}/objects/{{number}}/sidecar.xmp": {"get": {
        "summary": "darktable XMP sidecar with one object as a drawn mask (stored grid)",
        "parameters": [TOKEN, NUMBER, *VECTOR, FEATHER],
        "responses": {"200": _file("application/rdf+xml", "Named `<photo name>.xmp`, merged "
                                   "into the uploaded sidecar if there is one."),
                      "400": _error("`bad_field`: a vectorization parameter out of range."),
                      "404": NOT_FOUND, "409": XMP_CONFLICT}}},
    f"{API}/mask.png": {"get": {
        "summary": "All visible objects in one mask", "parameters": [TOKEN, *PNG_OPTIONS],
        "responses": {"200": _file("image/png", "Greyscale mask, 8 or 16 bits."),
                      "400": PNG_BAD, "404": NOT_FOUND,
                      "409": _error("`empty`: nothing to download.")}}},
    f"{API}/masks.svg": {"get": {
        "summary": "All visible objects as SVG", "parameters": [TOKEN, *VECTOR],
        "responses": {"200": _file("image/svg+xml", "One path per object."),
                      "400": _error("`bad_field`: a vectorization parameter out of range."),
                      "404": NOT_FOUND, "409": _error("`empty`.")}}},
    f"{API}/sidecar.xmp": {"get": {
        "summary": "darktable XMP sidecar with the visible objects as drawn masks",
        "parameters": [TOKEN, *VECTOR, FEATHER],
        "responses": {"200": _file("application/rdf+xml", "Named `<photo name>.xmp`, merged "
                                   "into the uploaded sidecar if there is one."),
                      "400": _error("`bad_field`: a vectorization parameter out of range."),
                      "404": NOT_FOUND, "409": XMP_CONFLICT}}},
    f"{API}/sidecar": {"post": {
        "summary": "Upload the photo's existing XMP; later XMP downloads merge into it",
        "parameters": [TOKEN],
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "sidecar": {"type": "string", "format": "binary"}}}},
            "application/rdf+xml": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": _json({"type": "object"}, "Stored."),
                      "400": _error("`invalid_sidecar`."), "403": FORBIDDEN,
                      "404": NOT_FOUND}},
        "delete": {
        "summary": "Forget the uploaded XMP: downloads start a new sidecar again",
        "parameters": [TOKEN],
        "responses": {"204": {"description": "Removed (also when there was none)."},
                      "403": FORBIDDEN, "404": NOT_FOUND}}},
}


RATE_LIMITED = _error("`rate_limited`: more writes to this session than the socket's rate "
                      "allows; nothing changed (see Retry-After).")
UNAVAILABLE = _error("`unavailable`: the server's Redis is unreachable (nothing changed; try "
                     "again); `busy` (downloads): too many are being made (see Retry-After).")
NOT_MODIFIED = {"description": "The download has not changed since the ETag sent in "
                               "If-None-Match."}
for _path, _operations in PATHS.items():
    if not _path.startswith(API):
        continue
    for _method, _operation in _operations.items():
        _responses = _operation["responses"]
        _responses.setdefault("503", UNAVAILABLE)
        if _method in ("post", "put", "patch", "delete"):
            _responses.setdefault("429", RATE_LIMITED)
        if _path.endswith((".png", ".svg", ".xmp")):
            _responses.setdefault("304", NOT_MODIFIED)


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "maskweb", "version": "1",
                 "description": "AI object masking for photos. The websocket protocol "
                                "(`/ws/sessions/{token}/`) is in docs/protocol.md."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
