"""maskweb.masking.protocol.inputs: every malformed input is a ProtocolError with the protocol's
code, never another exception (which the socket turned into a 1011 close, the HTTP API into Django's
HTML 500 page)."""

from __future__ import annotations

import json

import pytest

from maskweb.masking.protocol import inputs
from maskweb.masking.protocol.inputs import ProtocolError

HANDLERS = {"prompt": None, "ping": None}


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
    assert refused(inputs.json_object, text).code == "bad_json"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"', "{\"x\": NaN}",
                                  '{"x": Infinity}', '{"x": 1' + "0" * 5000 + "}", b"\xff\xfe"])
def test_what_is_not_a_json_object_is_bad_json(text):
    assert refused(inputs.json_object, text).code == "bad_json"


@pytest.mark.parametrize("kind", [["prompt"], {"x": 1}, 7, None, True])
def test_a_type_that_is_not_a_string_is_an_unknown_type(kind):
    error = refused(inputs.message_type, {"type": kind}, HANDLERS)
    assert error.code == "unknown_type"


def test_a_known_type_passes_and_an_unknown_one_is_named():
    assert inputs.message_type({"type": "ping"}, HANDLERS) == "ping"
    assert "teleport" in refused(inputs.message_type, {"type": "teleport"}, HANDLERS).message


def test_an_integer_of_400_digits_is_a_bad_field_not_an_overflow():
    data = json.loads('{"kind": "point", "x": ' + "9" * 400 + ', "y": 1}')
    error = refused(inputs.prompt, data, 100, 100, 2000)
    assert error.code == "bad_field" and "'x'" in error.message


def test_a_huge_float_literal_is_not_finite():
    data = inputs.json_object('{"kind": "point", "x": 1e999, "y": 1}')
    assert refused(inputs.prompt, data, 100, 100, 2000).code == "bad_field"


@pytest.mark.parametrize("value,count,ok", [(0, 3, True), (2, 3, True), (3, 3, False),
                                            (15, 3, False), (-1, 3, False), (True, 3, False),
                                            ("1", 3, False), (0, 0, True)])
def test_a_candidate_index_must_be_below_the_candidates_given(value, count, ok):
    if ok:
        assert inputs.candidate_index(value, count) == value
    else:
        assert refused(inputs.candidate_index, value, count).code == "bad_field"


@pytest.mark.parametrize("value", [0, -3, 2**40, "1", 1.0, True, None, [1]])
def test_an_object_number_is_a_positive_whole_number(value):
    assert refused(inputs.object_number, value).code == "bad_field"


def test_request_ids_are_short_strings():
    assert inputs.request_id({"id": "abc"}) == "abc"
    assert inputs.request_id({}) is None
    assert refused(inputs.request_id, {"id": 5}).code == "bad_field"
    assert refused(inputs.request_id, {"id": "x" * 65}).code == "bad_field"


def test_names_are_trimmed_and_bounded():
    assert inputs.optional_name("  Sky ") == "Sky"
    assert inputs.optional_name(None) is None
    for bad in ("", "   ", "x" * 101, 5, ["a"]):
        assert refused(inputs.optional_name, bad).code == "bad_field"
