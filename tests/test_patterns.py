"""Route patterns: validation (BBF501), matching, specificity and coverage."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbflow.compiler.semantic.patterns import Pattern, compile_pattern


def pat(text: str) -> Pattern:
    p = compile_pattern(text)
    assert isinstance(p, Pattern), p
    return p


@pytest.mark.parametrize("text", ["cell.start", "cell.*", "cell.**", "**", "*", "robot.event.**", "a.**.b", "*.*"])
def test_valid_patterns(text):
    assert pat(text).text == text


@pytest.mark.parametrize("text, why", [
    ("cell.**.**", "adjacent"),
    ("pick*", "mixes"),
    ("cell.*x", "mixes"),
    ("cell.***", "mixes"),
    ("cell..start", "empty"),
    (".cell", "empty"),
    ("cell.", "empty"),
    ("cell.9x", "identifier"),
])
def test_invalid_patterns(text, why):
    message = compile_pattern(text)
    assert isinstance(message, str) and why in message


@pytest.mark.parametrize("pattern, signal, expected", [
    ("cell.start", "cell.start", True),
    ("cell.start", "cell.stop", False),
    ("cell.*", "cell.start", True),
    ("cell.*", "cell", False),
    ("cell.*", "cell.a.b", False),
    ("cell.**", "cell", True),
    ("cell.**", "cell.a.b", True),
    ("cell.**", "cells.a", False),
    ("**", "anything.at.all", True),
    ("a.**.b", "a.b", True),
    ("a.**.b", "a.x.y.b", True),
    ("a.**.b", "a.x.y", False),
    ("robot.event.*", "robot.event.force", True),
    ("robot.event.*", "robot.state.changed", False),
])
def test_matches(pattern, signal, expected):
    assert pat(pattern).matches(signal) is expected


@pytest.mark.parametrize("a, b, expected", [
    ("cell.*", "cell.stop", True),
    ("cell.stop", "cell.*", False),
    ("cell.**", "cell.*", True),
    ("cell.*", "cell.**", False),
    ("**", "a.*.b.**", True),
    ("**.*", "*.**", True),   # both: one or more segments
    ("*.**", "**.*", True),
    ("a.**", "a.b.**", True),
    ("a.b.**", "a.**", False),
    ("*.b", "a.*", False),
    ("cell.start", "cell.start", True),
])
def test_covers(a, b, expected):
    assert pat(a).covers(pat(b)) is expected


def test_dispatch_key_orders_literals_then_star_before_globstar():
    texts = ["**", "cell.**", "cell.*", "cell.start"]
    ordered = sorted(texts, key=lambda t: pat(t).dispatch_key())
    assert ordered == ["cell.start", "cell.*", "cell.**", "**"]


# --- properties against a brute-force oracle ----------------------------------------

segment = st.sampled_from(["a", "b", "*", "**"])
patterns = st.lists(segment, min_size=1, max_size=3).map(".".join).map(compile_pattern).filter(
    lambda p: isinstance(p, Pattern))

# every type over {a, b, z} up to 6 segments: z is a segment no pattern names
ALL_TYPES = [".".join(t) for n in range(1, 7) for t in itertools.product("abz", repeat=n)]


def brute_matches(p: Pattern, signal: str) -> bool:
    """Try every way to split the type's segments among the pattern's segments."""
    parts = signal.split(".")

    def go(segs, rest):
        if not segs:
            return not rest
        head, tail = segs[0], segs[1:]
        if head == "**":
            return any(go(tail, rest[k:]) for k in range(len(rest) + 1))
        return bool(rest) and head in ("*", rest[0]) and go(tail, rest[1:])

    return go(list(p.segments), parts)


@settings(max_examples=200, deadline=None)
@given(patterns, st.sampled_from(ALL_TYPES))
def test_matches_agrees_with_brute_force(p, signal):
    assert p.matches(signal) == brute_matches(p, signal)


@settings(max_examples=300, deadline=None)
@given(patterns, patterns)
def test_covers_agrees_with_enumeration(a, b):
    # types with no segment are not signal types; ``**`` alone still matches every real one
    expected = all(a.matches(t) for t in ALL_TYPES if b.matches(t))
    assert a.covers(b) == expected
