"""The dependency graph: cycles (BBF301), unused readonly steps (BBF303), unordered categories (BBF304).

The algorithms are tested on hand-built graphs here; tests/test_analyses_properties.py and
the source-level tests below run them through the parser and the checker.
"""

import pytest
from graph_helpers import body, found_after, graph, node

from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.analysis.graph import (
    Effect, Node, NodeKind, check_category_conflicts, check_cycles, check_unused, find_category_conflicts,
    find_cycles,
)

MOTION = ("t.Arm", "motion")


def categories(step: Node) -> frozenset:
    return frozenset({step.category}) if step.category else frozenset()


# --- reachability ------------------------------------------------------------------------


def test_reachability_is_transitive_and_directed():
    a, b, c, d = (node(x, i) for i, x in enumerate("abcd", 2))
    bd = body([a, b, c, d], "a>b", "b>c")
    r = bd.reachability()
    assert r.is_ancestor(a, c) and not r.is_ancestor(c, a)
    assert r.ordered(c, a) and not r.ordered(a, d)
    assert not r.is_ancestor(a, a)


# --- BBF301 ------------------------------------------------------------------------------


def test_cycle_is_reported_once_from_its_first_step():
    a, b, c = node("a", 2), node("b", 3), node("c", 4)
    diags = Diagnostics()
    assert not check_cycles(graph(body([a, b, c], "b>a", "c>b", "a>c")), diags)
    [d] = diags.items
    assert d.code == "BBF301" and d.span.line == 2
    assert "a -> b -> c -> a" in d.message
    assert any("`a` waits for `b`" in n for n in d.notes)


def test_a_long_cycle_is_named_by_its_first_steps_and_its_last():
    # a 500-step cycle printed 500 notes and 499 labels (1,509 lines)
    nodes = [node(f"s{i}", i + 2) for i in range(500)]
    diags = Diagnostics()
    assert not check_cycles(graph(body(nodes, *(f"s{(i + 1) % 500}>s{i}" for i in range(500)))), diags)
    [d] = diags.items
    assert d.message == ("dependency cycle between steps: s0 -> s1 -> s2 -> s3 -> s4 -> s5 -> s6 -> ... -> s499 -> s0 "
                         "(500 steps, each waits for the next)")
    assert len(d.labels) == 7 and len(d.notes) == 8
    assert d.notes[-1] == "and 492 more steps wait in turn, the last for `s0`"


def test_self_reference_is_a_cycle():
    a = node("a", 2)
    assert [[n.name for n in c] for c in find_cycles(body([a], "a>a"))] == [["a"]]


def test_two_separate_cycles_give_two_diagnostics_and_dags_none():
    nodes = [node(x, i) for i, x in enumerate("abcde", 2)]
    assert find_cycles(body(nodes, "a>b", "b>c", "a>c")) == []
    cycles = find_cycles(body(nodes, "a>b", "b>a", "e>d", "d>c", "c>e"))
    assert [[n.name for n in c] for c in cycles] == [["a", "b"], ["c", "d", "e"]]


def test_cycle_inside_a_switch_body_is_found():
    x, y = node("x", 4), node("y", 5)
    sw = node("s", 3, NodeKind.SWITCH, bodies=(body([x, y], "x>y", "y>x"),))
    diags = Diagnostics()
    assert not check_cycles(graph(body([sw])), diags)
    assert [d.span.line for d in diags] == [4]


# --- BBF303 ------------------------------------------------------------------------------


def test_unused_readonly_step_warns_and_used_one_does_not():
    f = node("f", 2, pure_read=True, used=False, call="read_force")
    g = node("g", 3, pure_read=True, used=True)
    m = node("m", 4, effect=Effect.LEAF, used=False)
    diags = Diagnostics()
    check_unused(graph(body([f, g, m])), diags)
    assert [(d.code, d.span.line) for d in diags] == [("BBF303", 2)]
    assert diags.items[0].severity.value == "warning"


# --- BBF304 ------------------------------------------------------------------------------


def test_unordered_motion_steps_conflict_at_the_later_one():
    a, b = node("a", 2, category=MOTION), node("b", 3, category=MOTION)
    diags = Diagnostics()
    check_category_conflicts(graph(body([a, b])), categories, diags)
    [d] = diags.items
    assert (d.code, d.span.line) == ("BBF304", 3) and "`a` and `b`" in d.message


def test_ordered_through_a_third_step_is_fine():
    a, m, b = node("a", 2, category=MOTION), node("m", 3), node("b", 4, category=MOTION)
    assert find_category_conflicts(graph(body([a, m, b], "a>m", "m>b")), categories) == []


def test_different_categories_do_not_conflict():
    a, b = node("a", 2, category=MOTION), node("b", 3, category=("t.Arm", "gripper"))
    assert find_category_conflicts(graph(body([a, b])), categories) == []


def test_one_diagnostic_per_later_step_with_the_earliest_partner():
    a, b, c = (node(x, i, category=MOTION) for i, x in enumerate("abc", 2))
    found = find_category_conflicts(graph(body([a, b, c])), categories)
    assert [(c.first.name, c.later.name) for c in found] == [("a", "b"), ("a", "c")]


def test_step_in_switch_conflicts_with_unordered_outer_step_but_cases_exclude_each_other():
    x = node("x", 4, category=MOTION)
    y = node("y", 6, category=MOTION)
    sw = node("s", 3, NodeKind.SWITCH, bodies=(body([x]), body([y])))
    outer = node("o", 8, category=MOTION)
    found = find_category_conflicts(graph(body([sw, outer])), categories)
    assert [(c.first.name, c.later.name) for c in found] == [("x", "o")]
    ordered = body([node("s2", 3, NodeKind.SWITCH, bodies=(body([node("x", 4, category=MOTION)]),)),
                    node("o", 8, category=MOTION)], "s2>o")
    assert find_category_conflicts(graph(ordered), categories) == []


@pytest.mark.parametrize("concurrency, expected", [(1, []), (2, [("v", "v")])])
def test_map_with_concurrency_conflicts_with_itself(concurrency, expected):
    v = node("v", 4, category=MOTION)
    m = node("m", 3, NodeKind.MAP, bodies=(body([v]),), concurrency=concurrency)
    found = find_category_conflicts(graph(body([m])), categories)
    assert [(c.first.name, c.later.name) for c in found] == expected
    diags = Diagnostics()
    check_category_conflicts(graph(body([m])), categories, diags)
    assert [d.span.line for d in diags] == [4] * len(expected)
    if expected:
        assert "2 at a time" in diags.items[0].message


def test_ordered_steps_in_a_concurrent_map_body_still_conflict_across_iterations():
    u, v = node("u", 4, category=MOTION), node("v", 5, category=MOTION)
    m = node("m", 3, NodeKind.MAP, bodies=(body([u, v], "u>v"),), concurrency=3)
    found = find_category_conflicts(graph(body([m])), categories)
    assert [(c.first.name, c.later.name) for c in found] == [("u", "u"), ("u", "v")]


def test_composed_categories_come_from_the_callback():
    a = node("a", 2, category=MOTION)
    c = node("c", 3, effect=Effect.COMPOSED, reactor="t.Inner")
    found = find_category_conflicts(graph(body([a, c])),
                                    lambda s: frozenset({MOTION}) if s is c else categories(s))
    assert [(x.first.name, x.later.name) for x in found] == [("a", "c")]


# --- through the parser and the checker ------------------------------------------------------

ARM = """
robot Arm {
    limit motion 1
    limit light 2
    command move(p: float) -> float category motion undo home()
    command home() -> float category motion
    command blink() -> float category light undo blink()
    command look() -> float readonly
}
"""


def found(text: str) -> list[tuple[str, int]]:
    return found_after(ARM, text)


def test_where_may_name_its_own_event_and_undo_its_own_result():
    assert found("""
reactor R() on Arm {
    step a = move(p: 1.0) undo move(p: a)
    step b = look() after a
    step c = move(p: b) undo home()
}
""") == []


def test_reference_from_a_switch_body_to_the_switch_is_a_cycle():
    assert found("""
reactor R() -> float on Arm {
    step r = look()
    switch s on r > 1.0 {
        case true { return s }
        default { return 0.0 }
    }
    return s
}
""") == [("BBF301", 4)]


def test_body_references_order_the_switch_after_outer_steps():
    assert found("""
reactor R() -> float on Arm {
    step a = move(p: 1.0)
    step r = look()
    switch s on r > 1.0 {
        case true { step m = move(p: a) undo home() return m }
        default { return 0.0 }
    }
    return s
}
""") == []


def test_unordered_with_a_step_inside_a_switch():
    assert found("""
reactor R() -> float on Arm {
    step a = move(p: 1.0)
    step r = look()
    switch s on r > 1.0 {
        case true { step m = move(p: r) return m }
        default { return 0.0 }
    }
    return s
}
""") == [("BBF304", 6)]


def test_concurrent_map_body_and_composed_categories():
    assert found("""
reactor Inner() -> float on Arm {
    step m = move(p: 1.0)
    return m
}
reactor R(xs: list[float]) on Arm {
    map ms over xs as x concurrency 2 {
        step l = blink()
        step v = move(p: x)
        return v
    }
    step i = Inner()
}
""") == [("BBF304", 9), ("BBF304", 12)]


def test_limit_above_one_is_not_checked_and_unused_look_warns():
    assert found("""
reactor R() on Arm {
    step a = blink()
    step b = blink()
    step c = look()
}
""") == [("BBF303", 5)]


def test_a_step_used_only_by_an_undo_or_after_is_used():
    assert found("""
reactor R() on Arm {
    step f = look()
    step g = look()
    step a = move(p: 1.0) after g undo move(p: f)
}
""") == [("BBF404", 5)]


def test_after_names_are_found_through_the_checker_refs_not_a_search(monkeypatch):
    # Regression: `after` was resolved by scanning the body for each name, quadratic in a long
    # reactor (10,000 steps took seconds). The checker's Ref gives the node at once.
    import bbflow.compiler.analysis.analyses as analyses

    def no_search(name, path):
        raise AssertionError(f"`after {name}` was searched for")

    monkeypatch.setattr(analyses, "_lookup", no_search)
    chain = "\n".join(f"    step s{i} = move(p: 1.0) after s{i - 1} irreversible \"x\"" for i in range(1, 50))
    assert found(f"""
reactor R() on Arm {{
    step s0 = look()
{chain}
    map ms over [1.0, 2.0] as x {{
        step v = move(p: x) after s49 irreversible "x"
        return v
    }}
}}
""") == []
