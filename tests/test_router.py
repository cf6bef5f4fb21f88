"""The router: whole-type matching, dispatch order, and the trie against a brute-force matcher."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bbflow.runtime.model import Route
from bbflow.runtime.router import PatternError, Router, split_pattern


def routes(*specs):
    """Routes from (pattern, priority) pairs or bare patterns, in declaration order."""
    out = []
    for i, spec in enumerate(specs):
        pattern, priority = spec if isinstance(spec, tuple) else (spec, 0)
        out.append(Route(pattern=pattern, body=(), priority=priority, index=i))
    return out


def patterns(router, signal_type):
    return [r.pattern for r in router.lookup(signal_type)]


def test_literal_pattern_matches_only_the_whole_type():
    r = Router(routes("user", "user.created"))
    assert patterns(r, "user") == ["user"]
    assert patterns(r, "user.created") == ["user.created"]
    assert patterns(r, "user.created.now") == []
    assert patterns(r, "use") == []


def test_star_matches_exactly_one_segment():
    r = Router(routes("robot.event.*"))
    assert patterns(r, "robot.event.force") == ["robot.event.*"]
    assert patterns(r, "robot.event") == []
    assert patterns(r, "robot.event.force.x") == []


def test_globstar_matches_zero_or_more_segments():
    r = Router(routes("cell.**"))
    assert patterns(r, "cell") == ["cell.**"]
    assert patterns(r, "cell.alarm") == ["cell.**"]
    assert patterns(r, "cell.a.b.c") == ["cell.**"]
    assert patterns(r, "cellar") == []
    assert patterns(r, "other.cell") == []


def test_globstar_in_the_middle_and_at_the_start():
    r = Router(routes("a.**.z", "**.done"))
    assert patterns(r, "a.z") == ["a.**.z"]
    assert patterns(r, "a.b.c.z") == ["a.**.z"]
    assert patterns(r, "a.b.c") == []
    assert patterns(r, "done") == ["**.done"]
    assert patterns(r, "x.y.done") == ["**.done"]


def test_priority_beats_specificity():
    r = Router(routes("pick.requested", ("pick.*", 5), ("**", 1)))
    assert patterns(r, "pick.requested") == ["pick.*", "**", "pick.requested"]


def test_more_literal_segments_first():
    r = Router(routes("**", "a.*.*", "a.b.*", "a.b.c"))
    assert patterns(r, "a.b.c") == ["a.b.c", "a.b.*", "a.*.*", "**"]


def test_at_equal_literals_star_before_globstar():
    r = Router(routes("a.**", "a.*"))
    assert patterns(r, "a.b") == ["a.*", "a.**"]


def test_patterns_with_globstars_tie_on_literals_and_keep_declaration_order():
    r = Router(routes("a.**", "a.*.**", "a.**.*.**"))
    assert patterns(r, "a.b.c") == ["a.**", "a.*.**", "a.**.*.**"]


def test_declaration_order_breaks_ties():
    r = Router(routes(("x.*", 1), ("*.y", 1), ("x.*", 1)))
    assert [(x.pattern, x.index) for x in r.lookup("x.y")] == [("x.*", 0), ("*.y", 1), ("x.*", 2)]


def test_negative_priority_comes_last():
    r = Router(routes(("pick.requested", -1), "pick.requested"))
    assert [x.index for x in r.lookup("pick.requested")] == [1, 0]


def test_a_pattern_with_several_ways_to_match_is_returned_once():
    r = Router(routes("a.**.*.**"))
    assert patterns(r, "a.b.c.d") == ["a.**.*.**"]


def test_lookups_are_memoised_and_the_cache_is_bounded():
    r = Router(routes("a.*"), cache_size=2)
    first = r.lookup("a.x")
    assert r.lookup("a.x") is first
    r.lookup("a.y")
    r.lookup("a.z")
    assert len(r._cache) == 2
    assert "a.x" not in r._cache
    assert patterns(r, "a.x") == ["a.*"]
    unmemoised = Router(routes("a.*"), cache_size=0)
    assert patterns(unmemoised, "a.x") == ["a.*"] and not unmemoised._cache


@pytest.mark.parametrize("bad", ["a.**.**", "pick*", "a..b", "", "a.*x"])
def test_invalid_patterns_are_refused(bad):
    with pytest.raises(PatternError):
        split_pattern(bad)
    with pytest.raises(PatternError):
        Router(routes(bad))


# --- the property: the trie agrees with a plain matcher -----------------------------


def brute_matches(pattern, segments):
    """Plain recursive matcher, independent of the trie."""
    pat = pattern.split(".")

    def go(p, s):
        if p == len(pat):
            return s == len(segments)
        if pat[p] == "**":
            return any(go(p + 1, k) for k in range(s, len(segments) + 1))
        if s == len(segments):
            return False
        if pat[p] == "*" or pat[p] == segments[s]:
            return go(p + 1, s + 1)
        return False

    return go(0, 0)


def brute_order(route):
    segs = route.pattern.split(".")
    literal = len([s for s in segs if s not in ("*", "**")])
    return (-route.priority, -literal, "**" in segs, route.index)


def brute_lookup(route_list, signal_type):
    segments = signal_type.split(".")
    return sorted((r for r in route_list if brute_matches(r.pattern, segments)), key=brute_order)


SEGMENTS = st.sampled_from(["a", "b", "c"])
PATTERN_SEGMENT = st.sampled_from(["a", "b", "c", "d", "*", "**"])


def no_adjacent_globstars(segs):
    return all(not (x == "**" and y == "**") for x, y in zip(segs, segs[1:]))


PATTERNS = st.lists(PATTERN_SEGMENT, min_size=1, max_size=5).filter(no_adjacent_globstars).map(".".join)
TYPES = st.lists(SEGMENTS, min_size=1, max_size=6).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(st.tuples(PATTERNS, st.integers(-2, 2)), min_size=1, max_size=12),
    types=st.lists(TYPES, min_size=1, max_size=10),
)
def test_trie_agrees_with_brute_force(specs, types):
    route_list = [Route(pattern=p, body=(), priority=prio, index=i) for i, (p, prio) in enumerate(specs)]
    router = Router(route_list)
    for signal_type in types:
        assert list(router.lookup(signal_type)) == brute_lookup(route_list, signal_type)
        assert list(router.lookup(signal_type)) == brute_lookup(route_list, signal_type)  # memoised too
