"""The expression helpers the generated code calls where Python's meaning differs from bbflow's."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bbflow.runtime.exprlib import index, max_, min_, round_, str_

# --- round: half away from zero --------------------------------------------------------


@pytest.mark.parametrize(("x", "expected"), [
    (2.5, 3), (3.5, 4), (0.5, 1), (-0.5, -1), (-2.5, -3), (2.4999, 2), (-2.4999, -2), (0.0, 0), (7, 7),
])
def test_round_takes_halves_away_from_zero(x: float, expected: int) -> None:
    got = round_(x)
    assert got == expected and isinstance(got, int)


@pytest.mark.parametrize(("x", "digits", "expected"), [(1.25, 1, 1.3), (-1.25, 1, -1.3), (2.675, 2, 2.68),
                                                      (1234.5, 0, 1235.0), (0.125, 2, 0.13)])
def test_round_to_digits_is_a_float_with_halves_away_from_zero(x: float, digits: int, expected: float) -> None:
    got = round_(x, digits)
    assert isinstance(got, float) and got == pytest.approx(expected)


def test_round_keeps_the_sign_of_a_negative_that_rounds_to_zero() -> None:
    assert math.copysign(1.0, round_(-0.001, 1)) == -1.0


@pytest.mark.parametrize(("x", "expected"), [
    (0.49999999999999994, 0),  # `x + 0.5` is 1.0 in floats: the half must be judged on x itself
    (-0.49999999999999994, 0),
    (4503599627370497.0, 4503599627370497),  # 2**52 + 1: `x + 0.5` rounds to 2**52 + 2
    pytest.param(10**400, 10**400, id="10**400"),  # an int is already whole (as a float it would overflow)
    (1e300, int(1e300)),
])
def test_round_is_exact_at_the_edges(x: float, expected: int) -> None:
    assert round_(x) == expected


@pytest.mark.parametrize(("x", "digits", "expected"), [
    (1.005, 2, 1.01),  # half of the last digit as written, not the float a little below it
    (1e300, 10, 1e300),  # x * 10**10 would overflow
    (1.5, 400, 1.5),  # 10.0**400 would overflow
    (1.5, -400, 0.0),  # 10.0**-400 is 0: it would divide by zero
    (1234.5, -2, 1200.0),
    (5, 2, 5.0),
])
def test_round_to_digits_is_exact_at_the_edges(x: float, digits: int, expected: float) -> None:
    got = round_(x, digits)
    assert isinstance(got, float) and got == expected


def test_round_to_digits_that_leaves_the_floats_raises() -> None:
    with pytest.raises(OverflowError, match="too large for a float"):
        round_(1.7976931348623157e308, -308)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_round_of_nan_or_infinity_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="cannot round"):
        round_(bad)


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_round_is_symmetric_and_within_a_half(x: float) -> None:
    assert round_(-x) == -round_(x)
    assert abs(round_(x) - x) <= 0.5


# --- min / max --------------------------------------------------------------------------


def test_min_and_max_of_arguments_and_of_a_list() -> None:
    assert min_(3, 1, 2) == 1 and max_(3, 1, 2) == 3
    assert min_([4, 2, 9]) == 2 and max_([4, 2, 9]) == 9
    assert min_(2.5, 1) == 1 and max_(["b", "a"]) == "b"


@pytest.mark.parametrize("fn", [min_, max_])
def test_min_and_max_of_an_empty_list_raise(fn) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="of an empty list"):
        fn([])


# --- str ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [
    ("abc", "abc"), (None, "none"), (True, "true"), (False, "false"), (3, "3"), (1.5, "1.5"), (-0.25, "-0.25"),
    ([1, "a", None], '[1, "a", null]'), ({"x": 1.0, "name": "é"}, '{"x": 1.0, "name": "é"}'),
])
def test_str_writes_values_as_bbflow_does(value: object, text: str) -> None:
    assert str_(value) == text


# --- indexing ----------------------------------------------------------------------------


def test_list_indexing_has_no_negative_indexes() -> None:
    assert index([10, 20, 30], 0) == 10 and index([10, 20, 30], 2) == 30
    with pytest.raises(IndexError, match="index -1 is out of range for a list of 3"):
        index([10, 20, 30], -1)
    with pytest.raises(IndexError, match="index 3 is out of range"):
        index([10, 20, 30], 3)


def test_map_indexing_by_key() -> None:
    assert index({"a": 1, "b": 2}, "b") == 2
    with pytest.raises(LookupError, match="no key 'c' in the map") as missing:
        index({"a": 1}, "c")
    assert str(missing.value) == "no key 'c' in the map"  # a KeyError would show its message in quotes


def test_indexing_anything_else_raises() -> None:
    with pytest.raises(TypeError, match="cannot index a str"):
        index("abc", 0)
