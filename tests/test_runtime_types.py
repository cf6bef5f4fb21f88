"""Runtime type descriptors: what crosses a trust boundary (inputs, signal data, driver results)."""

import pytest

from bbflow.runtime.types import (
    ANY, BOOL, DURATION, FLOAT, INT, STR, Enum, ListOf, MapOf, Optional, Record, TypeMismatch,
)

POSE = Record((("x", FLOAT), ("y", FLOAT), ("z", FLOAT)))
GRIP = Enum("Grip", ("open", "closed"))


@pytest.mark.parametrize(("rtype", "value", "out"), [
    (INT, 3, 3), (FLOAT, 3, 3.0), (BOOL, True, True), (STR, "a", "a"), (ANY, {"x": [1]}, {"x": [1]}),
    (DURATION, 2, 2.0), (DURATION, "250ms", 0.25), (DURATION, "1.5s", 1.5), (DURATION, "2m", 120.0),
    (Optional(INT), None, None), (GRIP, "closed", "closed"),
    (ListOf(FLOAT), [1, 2.5], [1.0, 2.5]), (MapOf(INT), {"a": 1}, {"a": 1}),
    (POSE, {"x": 1, "y": 2, "z": 3, "extra": "kept"}, {"x": 1.0, "y": 2.0, "z": 3.0, "extra": "kept"}),
    (Record((("note", Optional(STR)),)), {}, {"note": None}),
])
def test_conform_accepts_and_normalises(rtype, value, out):
    assert rtype.conform(value) == out


@pytest.mark.parametrize(("rtype", "value", "path", "expected"), [
    (INT, True, "", "int"), (INT, 1.5, "", "int"), (FLOAT, "1", "", "float"), (BOOL, 1, "", "bool"),
    (DURATION, "soon", "", 'duration (seconds, or a string like "250ms" or "2s")'),
    (DURATION, "5", "", "duration"), (GRIP, "shut", "", "Grip (one of open, closed)"),
    (ListOf(INT), [1, "2"], "[1]", "int"), (MapOf(INT), {"a": "b"}, "a", "int"),
    (POSE, {"x": 1, "y": 2}, "z", "a field of type float"), (POSE, {"x": 1, "y": 2, "z": "high"}, "z", "float"),
    (Record((("pick", POSE),)), {"pick": "over there"}, "pick", "{x: float, y: float, z: float}"),
])
def test_conform_refuses_with_the_path_of_the_mismatch(rtype, value, path, expected):
    with pytest.raises(TypeMismatch) as info:
        rtype.conform(value)
    assert info.value.path == path and info.value.expected.startswith(expected)


def test_zero_values():
    assert [t.zero() for t in (INT, FLOAT, BOOL, STR, DURATION, Optional(POSE), GRIP, ListOf(INT), MapOf(INT))] == [
        0, 0.0, False, "", 0.0, None, "open", [], {}]
    assert POSE.zero() == {"x": 0.0, "y": 0.0, "z": 0.0}
