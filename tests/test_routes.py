"""Routes and signals through the parser and the checker: BBF501-BBF505."""

import pytest

from bbflow.compiler.checker import check
from bbflow.compiler.syntax.parser import parse_text
from bbflow.compiler.semantic.patterns import compile_pattern
from bbflow.compiler.analysis.routes import dispatch_order


def diagnose(text: str):
    module, diags = parse_text(text, "a.flow", "a")
    check([module], diags)
    return diags.items


def codes(text: str) -> list[tuple[str, int]]:
    return [(d.code, d.span.line) for d in diagnose(text)]


def test_a_clean_agent_has_no_route_diagnostics():
    assert codes("""
signal cell.start
signal cell.stop
agent A {
    on cell.start { emit cell.stop }
    on cell.stop { }
}
""") == []


def test_invalid_patterns_are_reported_and_left_out_of_the_other_checks():
    found = codes("""
signal cell.start
agent A {
    on cell.**.** { }
    on pick* { }
    on cell.start { }
}
""")
    assert found == [("BBF501", 4), ("BBF501", 5)]


def test_shadowed_route_names_the_shadowing_one():
    [d] = diagnose("""
signal cell.stop
agent A {
    on cell.* priority 1 { }
    on cell.stop { }
}
""")
    assert (d.code, d.span.line) == ("BBF502", 5)
    assert d.labels[0].span.line == 4 and "`on cell.*`" in d.message


@pytest.mark.parametrize("routes", [
    # a `when` on the earlier route lets later ones fire
    "on cell.* when n > 0 { }\n on cell.stop { }",
    # the more specific route comes first in dispatch order, whatever the declaration order
    "on cell.* { }\n on cell.stop { }\n",
    # a higher priority goes first
    "on cell.** { }\n on cell.stop priority 1 { }",
    # `*` does not cover `**` (which also matches `cell` and deeper types)
    "on cell.* { }\n on cell.** { }",
])
def test_routes_that_can_fire(routes):
    text = f"""
signal go
signal cell
signal cell.stop
signal cell.a.b
agent A {{
    state {{ n: int = 0 }}
    on go {{ emit cell  emit cell.stop  emit cell.a.b }}
    {routes}
}}
"""
    assert [c for c, _ in codes(text)] == []


def test_equal_patterns_shadow_in_declaration_order():
    assert codes("""
signal cell.stop
agent A {
    on cell.stop { }
    on cell.stop { }
}
""") == [("BBF502", 5)]


def test_dispatch_order_is_priority_specificity_declaration():
    class R:
        def __init__(self, priority):
            self.priority = priority
    routes = [(R(0), compile_pattern("**")), (R(0), compile_pattern("a.*")), (R(-1), compile_pattern("a.b")),
              (R(0), compile_pattern("a.**")), (R(0), compile_pattern("a.*"))]
    ordered = [p.text for _, p in dispatch_order(routes)]
    assert ordered == ["a.*", "a.*", "a.**", "**", "a.b"]


def test_pattern_matching_nothing_suggests_close_signals():
    [d] = diagnose("""
signal pick.requested
agent A {
    on pick.requested { }
    on pick.requestd { }
}
""")
    assert (d.code, d.severity.value, d.span.line) == ("BBF503", "warning", 5)
    assert "pick.requested" in d.help


def test_robot_events_and_std_signals_are_declared_for_the_agents_robot():
    assert codes("""
robot Arm {
    command home() -> float
    event force: {newtons: float}
}
agent A on Arm {
    on robot.event.force { }
    on robot.event.* { }
    on robot.safety.changed { }
    on robot.state.** { }
}
""") == []
    assert [c for c, _ in codes("""
agent A {
    on robot.event.force { }
}
""")] == ["BBF503"]


def test_emit_or_schedule_of_an_undeclared_signal():
    found = diagnose("""
signal cell.start
signal cell.started
agent A {
    on cell.start { emit cell.strted  if true { schedule cell.gone in 1s } else { } }
    on cell.started { }
}
""")
    assert [(d.code, d.span.line) for d in found] == [("BBF504", 5), ("BBF504", 5)]
    assert "cell.started" in found[0].help


def test_emits_inside_then_and_else_count():
    assert codes("""
signal cell.start
signal cell.ok
signal cell.bad
reactor Nothing() { let x = 1 }
agent A {
    on cell.start { run Nothing() then { emit cell.ok } else { emit cell.bad } }
}
""") == []


def test_unused_project_signal_warns_at_the_signal_keyword():
    found = diagnose("""
signal cell.start
signal cell.orphan
agent A {
    on cell.start { }
}
""")
    assert [(d.code, d.severity.value, d.span.line, d.span.column) for d in found] == \
        [("BBF505", "warning", 3, 1)]


def test_a_signal_handled_by_a_wildcard_or_only_emitted_is_used():
    assert codes("""
signal cell.start
signal cell.a.b
signal log.line
agent A {
    on cell.** { emit log.line }
}
""") == []
