"""The two tries that keep route checking linear agree with matching each pattern on each type.

``SignalIndex`` (declared types; which types does a pattern match?) and the runtime's
``PatternTrie`` (patterns; which patterns match a type?) against ``Pattern.matches``.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from bbflow.compiler.semantic.patterns import Pattern, SignalIndex, compile_pattern
from bbflow.compiler.analysis.routes import match_signals
from bbflow.runtime.router import PatternTrie

segment = st.sampled_from(["a", "b", "*", "**"])
patterns = st.lists(segment, min_size=1, max_size=4).map(".".join).map(compile_pattern).filter(
    lambda p: isinstance(p, Pattern))
types = st.lists(st.sampled_from("abz"), min_size=1, max_size=5).map(".".join)


def test_signal_index_finds_literal_star_and_globstar_matches():
    index = SignalIndex(["cell.start", "cell.stop", "cell.arm.fault", "robot.event.force"])
    assert sorted(index.matching(compile_pattern("cell.*"), 10)) == ["cell.start", "cell.stop"]
    assert sorted(index.matching(compile_pattern("cell.**"), 10)) == ["cell.arm.fault", "cell.start", "cell.stop"]
    assert index.matching(compile_pattern("**.force"), 10) == ["robot.event.force"]
    assert index.matching(compile_pattern("cell"), 10) == []
    assert len(index.matching(compile_pattern("**"), 2)) == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(types, max_size=12), patterns, st.integers(min_value=1, max_value=4))
def test_signal_index_agrees_with_matching_each_type(declared, pattern, limit):
    expected = {t for t in declared if pattern.matches(t)}
    found = SignalIndex(declared).matching(pattern, limit)
    assert len(found) == len(set(found)) == min(limit, len(expected))
    assert set(found) <= expected


@settings(max_examples=300, deadline=None)
@given(st.lists(patterns, max_size=8), types)
def test_pattern_trie_agrees_with_matching_each_pattern(found, signal_type):
    trie: PatternTrie[str] = PatternTrie()
    for p in found:
        trie.add(p.segments, p.text)
    assert trie.collect(signal_type) == {p.text for p in found if p.matches(signal_type)}


@settings(max_examples=200, deadline=None)
@given(st.lists(types, max_size=10), st.lists(patterns, max_size=8))
def test_match_signals_is_every_pair_tried(declared, found):
    reached, handled = match_signals(declared, found)
    assert reached == {p.text for p in found if any(p.matches(s) for s in declared)}
    assert handled == {s for s in declared if any(p.matches(s) for p in found)}
