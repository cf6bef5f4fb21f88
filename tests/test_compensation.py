"""Compensation completeness (BBF401-BBF404) and composed reactors' summaries, on hand-built graphs.

Source-level cases, through the parser and the checker, are at the end of this file and in
tests/test_analyses_properties.py.
"""

import pytest
from graph_helpers import body, found_after, graph, node, span

from bbflow.compiler.analysis.compensation import (
    check_compensation, check_useless_undo, failure_after, summarise,
)
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.analysis.graph import Effect, Node, NodeKind, ReactorGraph, UndoRef


def effectful(name: str, line: int, **kw) -> Node:
    return node(name, line, effect=Effect.LEAF, **kw)


def run(g: ReactorGraph, *others: ReactorGraph) -> list[tuple[str, int]]:
    summaries = summarise({x.qualname: x for x in (g, *others)})
    diags = Diagnostics()
    check_useless_undo(g, summaries, diags)
    check_compensation(g, summaries, diags)
    return [(d.code, d.span.line) for d in diags]


# --- BBF401 ------------------------------------------------------------------------------


def test_effect_followed_by_a_failing_step_needs_an_undo():
    there, back = effectful("there", 2), effectful("back", 3)
    assert run(graph(body([there, back], "there>back"))) == [("BBF401", 2)]


@pytest.mark.parametrize("cover", [{"undo": True}, {"default_undo": True}, {"irreversible": True}])
def test_undo_inherited_undo_or_irreversible_covers(cover):
    there, back = effectful("there", 2, **cover), effectful("back", 3)
    assert run(graph(body([there, back], "there>back"))) == []


def test_last_step_needs_no_undo():
    first, last = effectful("first", 2, undo=True), effectful("last", 3)
    assert run(graph(body([first, last], "first>last"))) == []


def test_concurrent_failing_step_counts_even_if_declared_earlier():
    slow, move = node("slow", 2), effectful("move", 3)
    assert run(graph(body([slow, move]))) == [("BBF401", 3)]


def test_only_ancestors_are_safe():
    a, b = node("a", 2), effectful("b", 3)
    assert run(graph(body([a, b], "a>b"))) == []


def test_lets_and_fallback_steps_cannot_fail():
    move = effectful("move", 2)
    let = node("l", 3, NodeKind.LET)
    fb = node("f", 4, fallback=True)
    assert run(graph(body([move, let, fb], "move>l", "move>f"))) == []


def test_a_fail_at_the_end_of_a_body_follows_everything():
    move = effectful("move", 4)
    fail = node("fail", 5, NodeKind.FAIL)
    g = graph(body([node("s", 3, NodeKind.SWITCH, bodies=(body([move, fail], "move>fail"),))]))
    assert failure_after(move) == "the `fail` that ends its body runs after it"
    assert run(g) == [("BBF401", 4)]


def test_switch_body_step_is_exposed_by_failures_after_the_switch():
    inner = effectful("inner", 4)
    sw = node("s", 3, NodeKind.SWITCH, bodies=(body([inner]),))
    after = node("later", 6)
    assert run(graph(body([sw, after], "s>later"))) == [("BBF401", 4)]
    inner2 = effectful("inner", 4)
    sw2 = node("s", 3, NodeKind.SWITCH, bodies=(body([inner2]),))
    assert run(graph(body([node("before", 2), sw2], "before>s"))) == []


def test_map_body_step_is_exposed_by_a_later_iteration():
    move = effectful("move", 4)
    g = graph(body([node("m", 3, NodeKind.MAP, bodies=(body([move]),))]))
    assert "later iteration of map `m`" in failure_after(move)
    assert run(g) == [("BBF401", 4)]


def test_map_body_that_cannot_fail_is_not_exposed_by_iterations():
    move = effectful("move", 4, fallback=True)
    m = node("m", 3, NodeKind.MAP, bodies=(body([move]),))
    assert run(graph(body([m]))) == []


def test_unknown_effect_gives_no_verdict():
    a, b = node("a", 2, effect=Effect.UNKNOWN, undo=True), node("b", 3)
    assert run(graph(body([a, b]))) == []


# --- BBF402 ------------------------------------------------------------------------------


@pytest.mark.parametrize("mark", [{"undo": True}, {"irreversible": True}])
def test_undo_or_irreversible_on_a_step_without_effect_warns(mark):
    f = node("f", 2, pure_read=True, **mark)
    assert run(graph(body([f, node("b", 3)], "f>b"))) == [("BBF402", 2)]


def test_composed_reactor_without_effect_warns_on_undo():
    inner = graph(body([node("r", 2, pure_read=True)]), "Inner")
    c = node("c", 5, effect=Effect.COMPOSED, reactor="t.Inner", undo=True)
    assert run(graph(body([c])), inner) == [("BBF402", 5)]


# --- BBF403 and summaries ----------------------------------------------------------------


def composed(name: str, line: int, target: str, **kw) -> Node:
    return node(name, line, effect=Effect.COMPOSED, reactor=f"t.{target}", call=target, **kw)


def test_composed_reactor_not_fully_reversible_needs_own_undo():
    inner = graph(body([effectful("b", 2, call="beep")]), "Inner")
    first, there = composed("first", 5, "Inner"), effectful("there", 6)
    outer = graph(body([first, there], "first>there"))
    diags = Diagnostics()
    check_compensation(outer, summarise({g.qualname: g for g in (inner, outer)}), diags)
    [d] = diags.items
    assert (d.code, d.span.line) == ("BBF403", 5)
    assert "`Inner`: its step `b` (beep) has no undo" in d.notes[0]


def test_composed_reversible_reactor_is_covered():
    inner = graph(body([effectful("g", 2, default_undo=True), effectful("m", 3, undo=True)], "g>m"), "Inner")
    first, there = composed("first", 5, "Inner"), effectful("there", 6)
    assert run(graph(body([first, there], "first>there")), inner) == []


@pytest.mark.parametrize("cover", [{"undo": True}, {"irreversible": True}])
def test_own_undo_or_irreversible_covers_a_composed_step(cover):
    inner = graph(body([effectful("b", 2)]), "Inner")
    first, there = composed("first", 5, "Inner", **cover), effectful("there", 6)
    assert run(graph(body([first, there], "first>there")), inner) == []


def test_summary_is_transitive_and_survives_recursion():
    leaf = graph(body([effectful("b", 2, irreversible=True)]), "Leaf")
    mid = graph(body([composed("l", 3, "Leaf"), composed("o", 4, "Outer")]), "Mid")
    outer = graph(body([composed("m", 5, "Mid")]), "Outer")
    pure = graph(body([node("r", 6, pure_read=True), composed("p", 7, "Pure")]), "Pure")
    s = summarise({g.qualname: g for g in (leaf, mid, outer, pure)})
    assert s["t.Outer"].effectful and not s["t.Outer"].reversible
    assert s["t.Outer"].why_not == "`Leaf`, through `Mid`: its step `b` (b) is marked irreversible"
    assert not s["t.Mid"].reversible
    assert not s["t.Pure"].effectful and s["t.Pure"].reversible


def test_summary_categories_include_composed_ones():
    motion = ("t.Arm", "motion")
    leaf = graph(body([effectful("b", 2, undo=True, category=motion)]), "Leaf")
    outer = graph(body([composed("m", 5, "Leaf", undo=True)]), "Outer")
    s = summarise({g.qualname: g for g in (leaf, outer)})
    assert s["t.Outer"].categories == frozenset({motion})
    assert s["t.Outer"].reversible  # its only composed step has its own undo


# --- BBF404 ------------------------------------------------------------------------------


def undo_using(step: Node, *targets: Node) -> None:
    step.undo = True
    step.undo_refs = tuple(UndoRef(t.name, span(step.order), t) for t in targets)


def test_undo_may_use_ancestors_and_itself_but_not_others():
    safe, g, later = node("safe", 2), effectful("g", 3), effectful("later", 4)
    b = body([safe, g, later], "safe>g", "g>later")
    undo_using(g, safe, g)
    assert run(graph(b)) == []
    other = node("other", 5)
    b2 = body([node("safe", 2), (g2 := effectful("g", 3)), other], "other>g")
    undo_using(g2, b2.nodes[0])
    assert run(graph(b2)) == [("BBF404", 3)]


def test_undo_inside_a_body_may_use_outer_ancestors_of_the_switch():
    before = node("before", 2)
    stray = node("stray", 3)
    inner = effectful("inner", 5)
    undo_using(inner, before)
    sw = node("s", 4, NodeKind.SWITCH, bodies=(body([inner]),))
    assert run(graph(body([before, stray, sw], "before>s"))) == []
    inner2 = effectful("inner", 5)
    undo_using(inner2, stray)
    sw2 = node("s", 4, NodeKind.SWITCH, bodies=(body([inner2]),))
    b = body([node("before", 2), stray2 := node("stray", 3), sw2])
    inner2.undo_refs = (UndoRef("stray", span(5), stray2),)
    assert run(graph(b)) == [("BBF404", 5)]


def test_each_missing_value_is_reported_once():
    other, g = node("other", 2), effectful("g", 3)
    undo_using(g, other, other)
    assert run(graph(body([other, g]))) == [("BBF404", 3)]


# --- through the parser and the checker ------------------------------------------------------

ARM = """
robot Arm {
    limit motion 1
    command move(p: float) -> float category motion
    command grip() -> float undo release()
    command release() -> float
    command beep() -> float
    command look() -> float readonly
}
"""


def found(text: str) -> list[tuple[str, int]]:
    return found_after(ARM, text)


def test_step_in_a_case_that_ends_in_fail_needs_an_undo():
    assert found("""
reactor R() -> float on Arm {
    step r = look()
    switch s on r > 1.0 {
        case true { step b = beep() fail "too far" }
        default { return 0.0 }
    }
    return s
}
""") == [("BBF401", 5)]


def test_map_iterations_and_later_steps_expose_body_steps():
    assert found("""
reactor R(xs: list[float]) on Arm {
    map ms over xs as x {
        step b = beep()
        return b
    }
}
reactor Once(xs: list[float]) on Arm {
    map ms over xs as x {
        let y = x
        return y
    }
    step b = beep() after ms
}
""") == [("BBF401", 4)]


def test_composed_reactor_verdicts():
    assert found("""
reactor Loud() on Arm {
    step b = beep()
}
reactor Safe() on Arm {
    step g = grip()
    step m = move(p: 1.0) after g undo move(p: 0.0)
}
reactor Quiet() -> float on Arm {
    step l = look()
    return l
}
reactor Outer() on Arm {
    step a = Loud()
    step s = Safe() after a
    step q = Quiet() after s undo beep()
    step last = beep() after q irreversible "it is heard"
}
""") == [("BBF402", 16), ("BBF403", 14)]


def test_undo_in_a_body_may_use_what_the_map_waits_for():
    assert found("""
reactor R(xs: list[float]) on Arm {
    step base = look()
    step stray = look()
    map ms over xs as x {
        step m = move(p: base) undo move(p: base)
        step k = move(p: x) after m undo move(p: stray)
        return k
    }
}
""") == [("BBF404", 7)]


def test_an_error_from_the_checker_silences_the_analyses_of_its_reactor():
    codes = {c for c, _ in found("""
reactor R() on Arm {
    step a = beep(p: nowhere)
    step b = beep() after a
}
""")}
    assert codes and codes <= {"BBF101", "BBF202"}  # no BBF401 for `a` on top


def test_a_type_error_in_one_reactor_does_not_hide_a_missing_undo_in_another() -> None:
    from checker_helpers import check_text, codes

    diags, _, _ = check_text("""
reactor Bad(p: Pose) -> Pose on Arm {
    step a = move_to(target: 3.0)
    return a
}

reactor Visit(p: Pose, q: Pose) -> Pose on Arm {
    step there = move_to(target: p)
    step back = move_to(target: q) after there undo move_to(target: p)
    return back
}
""", arm=True)
    assert codes(diags) == ["BBF201", "BBF401"]


def test_a_long_chain_of_composed_reactors_lists_each_reactors_steps_a_few_times(monkeypatch):
    """A chain of 1,500 reactors, each composing the next, took 10 s to check: for each reactor, summarise
    listed (and sorted) the steps of every reactor it reaches, to find whether it has an effect and which
    categories it uses. Each reactor's steps are now listed a fixed number of times."""
    n = 30
    chain = [graph(body([composed("c", 2, f"R{i + 1}", undo=True)]), f"R{i}") for i in range(n - 1)]
    chain.append(graph(body([effectful("e", 2, undo=True, category=("t.Arm", "motion"))]), f"R{n - 1}"))
    listed = []
    steps = ReactorGraph.steps
    monkeypatch.setattr(ReactorGraph, "steps", lambda self: listed.append(self) or steps(self))
    s = summarise({g.qualname: g for g in chain})
    assert all(s[f"t.R{i}"].effectful and s[f"t.R{i}"].categories == {("t.Arm", "motion")} for i in range(n))
    assert len(listed) <= 4 * n
