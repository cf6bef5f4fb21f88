"""Robot tasks in the checker: `run ... preempt`, `cancel`, `wait_signal` (BBF207), `to`, `instance`."""

from __future__ import annotations

from checker_helpers import ARM, check_text, only

from bbflow.compiler.diagnostics.core import Diagnostics

from bbflow.compiler import ast
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import CallKind

def codes(diags: Diagnostics) -> list[str]:
    """The codes given, but the unused-signal warning (the shared signals are not all used by every test)."""
    return [d.code for d in diags.sorted() if d.code != "BBF505"]


def line(needle: str) -> int:
    """The line of ``needle`` in the last text checked (ARM and SIGNALS come first)."""
    return LAST[0].split("\n").index(next(x for x in LAST[0].split("\n") if needle in x)) + 1


LAST = [""]


def check(text: str, *, arm: bool = True):  # type: ignore[no-untyped-def]
    LAST[0] = (ARM if arm else "") + text
    return check_text(text, arm=arm)


SIGNALS = """
signal op.approved: {part: int}
signal op.asked: {part: int}
signal task.assigned: {n: int}
"""


def test_wait_signal_binds_the_envelope_with_the_declared_payload() -> None:
    diags, facts, module = check(SIGNALS + """
reactor Gated(part: int) -> int on Arm {
    step ok = wait_signal(op.approved) where ok.data.part == part timeout 5m
    step b = beep() after ok irreversible "signals the operator"
    return ok.data.part
}
agent A on Arm { on op.asked as a { run Gated(part: a.data.part) } on op.approved { } }
""", arm=True)
    assert codes(diags) == []
    reactor = next(d for d in module.decls if isinstance(d, ast.ReactorDecl))
    step = reactor.body.stmts[0]
    assert isinstance(step, ast.StepStmt)
    target = facts.call(step.call)
    assert target is not None and target.kind is CallKind.WAIT_SIGNAL and target.args == {"signal": "op.approved"}
    value = facts.decl_types[step]
    assert isinstance(value, T.RecordT) and value.field("data") == T.RecordT((("part", T.INT),))


def test_wait_signal_without_timeout_is_bbf207_at_the_call() -> None:
    diags, _, _ = check(SIGNALS + """
reactor Gated() on Arm {
    step ok = wait_signal(op.approved)
    step b = beep() after ok
}
agent A { on op.** { } }
""", arm=True)
    diags.items = [d for d in diags.items if d.code != "BBF505"]
    d = only(diags, "BBF207")
    assert d.span.line == line("step ok = wait_signal") and "timeout" in d.message


def test_wait_signal_of_an_undeclared_signal_is_one_bbf101() -> None:
    diags, _, _ = check(SIGNALS + """
reactor Gated() on Arm {
    step ok = wait_signal(op.aproved) timeout 1s
    step b = beep() after ok
}
agent A { on op.** { } }
""", arm=True)
    diags.items = [d for d in diags.items if d.code != "BBF505"]
    d = only(diags, "BBF101")
    assert "op.approved" in (d.help or "")


def test_wait_signal_where_is_typed_against_the_payload() -> None:
    diags, _, _ = check(SIGNALS + """
reactor Gated() on Arm {
    step ok = wait_signal(op.approved) where ok.data.part == "x" timeout 1s
    step b = beep() after ok
}
agent A { on op.** { } }
""", arm=True)
    assert codes(diags) == ["BBF201"]


def test_a_signal_only_waited_for_is_used() -> None:
    diags, _, _ = check_text("""
signal op.ok
reactor Gated() {
    step ok = wait_signal(op.ok) timeout 1s
}
""")
    assert codes(diags) == []


def test_to_must_be_a_str_and_instance_is_one() -> None:
    diags, _, _ = check(SIGNALS + """
agent A on Arm {
    on op.asked as a {
        emit task.assigned {n: a.data.part} to instance
        schedule task.assigned {n: 1} in 1s to "left"
        emit task.assigned {n: 2} to a.data.part
    }
    on task.assigned { }
}
""", arm=True)
    diags.items = [d for d in diags.items if d.code != "BBF505"]
    d = only(diags, "BBF201")
    assert d.span.line == line("to a.data.part") and "`to`" in d.message


def test_run_preempt_and_cancel() -> None:
    diags, facts, module = check(SIGNALS + """
reactor Home() on Arm { step h = move_to(target: {x: 0.0, y: 0.0, z: 0.0}) }
agent A on Arm {
    on op.asked { run Home() preempt then { emit task.assigned {n: 1} } else { cancel Home } }
    on op.approved { cancel Home  cancel Hom }
    on task.assigned { }
}
""", arm=True)
    diags.items = [d for d in diags.items if d.code != "BBF505"]
    d = only(diags, "BBF101")
    assert d.span.line == line("cancel Hom }") and "Hom" in d.message
    agent = next(x for x in module.decls if isinstance(x, ast.AgentDecl))
    run = agent.routes[0].body[0]
    assert isinstance(run, ast.RunStmt) and run.preempt
    cancel = agent.routes[1].body[0]
    assert isinstance(cancel, ast.CancelStmt) and facts.cancels[cancel] == "main.Home"


def test_to_preempt_and_cancel_are_not_reserved() -> None:
    diags, _, _ = check_text("""
signal s: {to: int, cancel: int}
agent A { state { preempt: int = 0 } on s as to { set preempt = to.data.to + to.data.cancel } }
""")
    assert codes(diags) == []
