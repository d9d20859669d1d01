"""Python values seen as Go values: ``%v`` text, floats, JSON, type names, truth."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.gotemplate import NO_VALUE, CallError, Context, go_json, go_str, go_type
from dockyard.gotemplate.values import json_float, truth
from dockyard.record import record


@record
class _ZA:
    """A struct value for templates (fields in declaration order, as Go's encoding/json writes them)."""

    z: int
    a: int


@pytest.mark.parametrize(("value", "expected"), [
    (2.5, "2.5"), (0.00001, "1e-05"), (0.0001, "0.0001"), (-1234567.0, "-1.234567e+06"), (1e21, "1e+21"),
    (None, "<nil>"), (NO_VALUE, "<no value>"), (b"ab", "[97 98]"), ({"b": 1, "a": None}, "map[a:<nil> b:1]"),
    (Context({"x": 1, "y": "s"}), "{1 s}"),
])
def test_go_str(value: Any, expected: str) -> None:
    assert go_str(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ({"b": "<&>", "a": [1, None, 2.5, True], "c": {}}, '{"a":[1,null,2.5,true],"b":"<&>","c":{}}'),
    ("é\u2028", '"é\\u2028"'),
    (1.0, "1"), (1e21, "1e+21"), (0.000001, "0.000001"), (1e-7, "1e-7"), (-2.5, "-2.5"),
    (123456789.0, "123456789"),
    ({"k": [{"b": 1.5, "a": None}]}, '{"k":[{"a":null,"b":1.5}]}'),
    (_ZA(1, 2), '{"z":1,"a":2}'),
    (NO_VALUE, "null"),
])
def test_go_json(value: Any, expected: str) -> None:
    assert go_json(value) == expected


def test_go_json_refuses_nan() -> None:
    with pytest.raises(CallError, match=r"^json: unsupported value: NaN$"):
        go_json(float("nan"))


@pytest.mark.parametrize(("value", "expected"), [
    (None, "<nil>"), (True, "bool"), (1, "int"), (1.5, "float64"), ("s", "string"), (b"", "[]uint8"),
    ({"a": "b"}, "map[string]string"), ({"a": 1}, "map[string]interface {}"), (["a"], "[]string"),
    ([1], "[]interface {}"), (Context(type_name="imageContext"), "*formatter.imageContext"),
])
def test_go_type(value: Any, expected: str) -> None:
    assert go_type(value) == expected


def test_truth() -> None:
    assert [truth(v) for v in (0, "", [], {}, None, NO_VALUE, False, 0.0)] == [False] * 8
    assert [truth(v) for v in (1, "x", [0], {"a": 1}, True, Context())] == [True] * 6


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=300, deadline=None)
def test_floats_round_trip(value: float) -> None:
    assert float(go_str(value)) == value
    assert float(json_float(value)) == value
