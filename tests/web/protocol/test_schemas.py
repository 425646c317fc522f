"""maskweb.masking.protocol.schemas: every malformed input is a ProtocolError with the
protocol's code, never another exception (which the socket turned into a 1011 close, the HTTP
API into Django's HTML 500 page)."""

from __future__ import annotations

import json

import pytest

from maskweb.masking.protocol import schemas
from maskweb.masking.protocol.schemas import ProtocolError


def refused(call, *args) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        call(*args)
    assert caught.value.message
    return caught.value


@pytest.mark.parametrize("text", [
    "[" * 5000 + "]" * 5000,                       # past json's own recursion limit
    '{"a": ' + "[" * 20 + "1" + "]" * 20 + "}",  # parses, but 21 levels
    '{"x": ' + "[" * 100 + "]" * 100 + "}",
])
def test_deep_nesting_is_bad_json(text):
    assert refused(schemas.json_object, text).code == "bad_json"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"', "{\"x\": NaN}",
                                  '{"x": Infinity}', '{"x": 1' + "0" * 5000 + "}", b"\xff\xfe"])
def test_what_is_not_a_json_object_is_bad_json(text):
    assert refused(schemas.json_object, text).code == "bad_json"


@pytest.mark.parametrize("kind", [["prompt"], {"x": 1}, 7, None, True])
def test_a_type_that_is_not_a_string_is_an_unknown_type(kind):
    error = refused(schemas.message, {"type": kind})
    assert error.code == "unknown_type"


def test_a_known_type_passes_and_an_unknown_one_is_named():
    assert isinstance(schemas.message({"type": "ping"}), schemas.PingMessage)
    assert "teleport" in refused(schemas.message, {"type": "teleport"}).message
    assert refused(schemas.message, {"v": 1}).code == "unknown_type"


def test_an_integer_of_400_digits_is_a_bad_field_not_an_overflow():
    data = json.loads('{"kind": "point", "x": ' + "9" * 400 + ', "y": 1}')
    error = refused(schemas.check, schemas.Prompt, data, "")
    assert error.code == "bad_field" and "'x'" in error.message


def test_a_huge_float_literal_is_not_finite():
    data = schemas.json_object('{"kind": "point", "x": 1e999, "y": 1}')
    assert refused(schemas.check, schemas.Prompt, data, "").code == "bad_field"


@pytest.mark.parametrize("value,count,ok", [(0, 3, True), (2, 3, True), (3, 3, False),
                                            (15, 3, False), (-1, 3, False), (True, 3, False),
                                            ("1", 3, False), (0, 0, True)])
def test_a_candidate_index_must_be_below_the_candidates_given(value, count, ok):
    def index(value, count):
        return schemas.candidate_index(schemas.check(schemas.CandidateIndex, value, "index"),
                                       count)

    if ok:
        assert index(value, count) == value
    else:
        assert refused(index, value, count).code == "bad_field"


@pytest.mark.parametrize("value", [0, -3, 2**40, "1", 1.0, True, None, [1]])
def test_an_object_number_is_a_positive_whole_number(value):
    assert refused(schemas.check, schemas.ObjectNumber, value, "object_id").code == "bad_field"


def test_request_ids_are_short_strings():
    assert schemas.request_id({"id": "abc"}) == "abc"
    assert schemas.request_id({}) is None
    assert refused(schemas.request_id, {"id": 5}).code == "bad_field"
    assert refused(schemas.request_id, {"id": "x" * 65}).code == "bad_field"
    # The same rule inside a whole message.
    assert refused(schemas.message, {"type": "ping", "id": "x" * 65}).code == "bad_field"


def test_names_are_trimmed_and_bounded():
    def name(value):
        return schemas.check(schemas.Name | None, value, "name")

    assert name("  Sky ") == "Sky"
    assert name(None) is None
    for bad in ("", "   ", "x" * 101, 5, ["a"]):
        assert refused(name, bad).code == "bad_field"
        assert refused(schemas.message, {"type": "rename", "object_id": 1, "name": bad}) \
            .code == "bad_field"


@pytest.mark.parametrize("data,code,field", [
    ({"type": "prompt"}, "bad_field", "'prompt' is missing"),
    ({"type": "prompt", "prompt": {"kind": "lasso"}}, "bad_field", "'prompt.kind'"),
    ({"type": "prompt", "prompt": {"kind": "point", "x": True, "y": 1}}, "bad_field",
     "'prompt.x'"),
    ({"type": "prompt", "prompt": {"kind": "point", "x": "1", "y": 1}}, "bad_field",
     "'prompt.x'"),
    ({"type": "prompt", "prompt": {"kind": "stroke", "points": [[1, 1], [2]], "radius": 3}},
     "bad_field", "'prompt.points.1'"),
    ({"type": "prompt", "prompt": {"kind": "stroke", "points": [[1, 1]] * 2001, "radius": 3}},
     "too_many_points", "2000"),
    ({"type": "prompt", "prompt": {"kind": "stroke", "points": [[1, 1]], "radius": 0}},
     "bad_field", "'prompt.radius'"),
    ({"type": "visibility", "object_id": 1, "visible": "yes"}, "bad_field", "'visible'"),
    ({"type": "colour", "object_id": 1, "colour": "red"}, "bad_field", "'colour'"),
    ({"type": "combine", "op": "xor", "objects": [1, 2]}, "bad_field", "'op'"),
    ({"type": "combine", "op": "union", "objects": [1, 1]}, "bad_field", "twice"),
    ({"type": "combine", "op": "invert", "objects": [1, 2]}, "bad_field", "exactly one"),
    ({"type": "delete", "object_id": 1.0}, "bad_field", "'object_id'"),
    ({"type": "model", "model": ""}, "bad_field", "'model'"),
    ({"type": "preview", "prompt": {"kind": "box", "x0": 1, "y0": 1, "x1": 2, "y1": 2}},
     "bad_field", "'prompt.kind'"),
])
def test_each_message_type_refuses_a_bad_field_by_name(data, code, field, settings):
    settings.WS_MAX_STROKE_POINTS = 2000
    error = refused(schemas.message, data)
    assert error.code == code and field in error.message, error.message


def test_a_good_message_comes_typed_and_clean():
    message = schemas.message({"v": 1, "type": "prompt", "id": "a", "extra": [1],
                               "prompt": {"kind": "point", "x": 3, "y": 4}})
    assert isinstance(message, schemas.PromptMessage) and message.id == "a"
    assert message.prompt.model_dump() == {"kind": "point", "x": 3.0, "y": 4.0,
                                           "positive": True}
    colour = schemas.message({"type": "colour", "object_id": 2, "colour": "#A0B0C0"})
    assert isinstance(colour, schemas.ColourMessage) and colour.colour == "#a0b0c0"
    assert set(schemas.MESSAGE_TYPES) == {
        m.model_fields["type"].annotation.__args__[0]
        for m in schemas.AnyMessage.__args__}
