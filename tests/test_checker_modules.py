"""Modules and imports (BBF101/102/103/104), the implicit std.prelude, and the never-crash property."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker_helpers import check_modules, codes, only
from shared_cases import ABSENT, cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.compiler.checker import check
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.syntax.parser import parse_text

ARM_MODULE = """
type Pose = {x: float, y: float, z: float}
enum Grip { open, closed }
robot Arm {
    command move_to(target: Pose) -> Pose
    command read_force() -> float readonly
}
reactor Inner(p: Pose) -> Pose on Arm {
    step a = move_to(target: p)
    return a
}
"""


def test_from_import_and_module_alias_resolve_types_robots_and_reactors():
    diags, facts, _ = check_modules({
        "cell.arm": ARM_MODULE,
        "cell.main": """
from cell.arm import Arm, Pose as P
import cell.arm as arm
reactor Outer(p: P, g: arm.Grip = arm.Grip.closed) -> arm.Pose on Arm {
    step a = arm.Inner(p: p)
    return a
}
""",
    })
    assert codes(diags) == []
    assert "cell.arm.Inner" in facts.decls and "std.prelude.Safety" in facts.decls
    assert facts.robots_of[facts.decls["cell.main.Outer"]] == "cell.arm.Arm"


def test_missing_module_is_bbf103_with_did_you_mean_and_its_names_do_not_cascade():
    diags, _, _ = check_modules({
        "cell.arm": ARM_MODULE,
        "cell.main": "from cell.amr import Pose\nimport cell.nowhere as nw\n"
                     "reactor R(p: Pose, q: nw.Thing) -> float { return p.x }",
    })
    assert codes(diags) == ["BBF103", "BBF103"]
    first = diags.sorted()[0]
    assert first.help == "did you mean `cell.arm`?" and (first.span.line, first.span.column) == (1, 6)


def test_missing_member_is_bbf101_and_does_not_cascade():
    diags, _, _ = check_modules({
        "cell.arm": ARM_MODULE,
        "cell.main": "from cell.arm import Pse\nimport cell.arm as arm\n"
                     "reactor R(p: Pse, q: arm.Pos) -> float { return 1.0 }",
    })
    assert codes(diags) == ["BBF101", "BBF101"]
    assert [d.help for d in diags.sorted()] == ["did you mean `Pose`?", "did you mean `Pose`?"]


def test_import_cycle_is_reported_once_listing_the_cycle():
    diags, _, _ = check_modules({
        "a": "from b import B\ntype A = {b: B}",
        "b": "from c import C\ntype B = {c: C}",
        "c": "from a import A\ntype C = int",
    })
    d = only(diags, "BBF104")
    assert "`a` -> `b` -> `c` -> `a`" in d.message and d.span.file == "a.flow" and d.span.line == 1


def test_modules_without_cycles_pass_and_self_import_is_a_cycle():
    diags, _, _ = check_modules({"a": "type A = int", "b": "from a import A\ntype B = A", "c": "import a\nimport b"})
    assert codes(diags) == []
    itself = only(check_modules({"a": "import a\ntype A = int"})[0], "BBF104")
    assert itself.notes == ("a module sees its own declarations without importing itself",)  # not "move what both need"
    assert itself.help == "remove the import"


def test_a_folder_s_init_module_imported_by_the_folder_s_name_gets_a_did_you_mean():
    """`cell/__init__.flow` is module `cell.__init__`: `from cell import X` said only "module `cell` not found"."""
    diags, _, _ = check_modules({"cell.__init__": "type Pose = int", "cell.main": "from cell import Pose\ntype P = Pose"})
    d = only(diags, "BBF103")
    assert d.help == "did you mean `cell.__init__`?" and "`cell/__init__.flow` is `cell.__init__`" in d.notes[0]


def test_a_signal_imported_by_name_says_signals_are_not_imported():
    """`from b import go` where b declares `signal go` said only "module `b` has no `go`", which it seems to have."""
    diags, _, _ = check_modules({"b": "signal go", "a": "from b import go\nagent A {\n    on go { }\n}"})
    d = only(diags, "BBF101")
    assert d.message == "module `b` has no `go`" and "signals are not imported" in d.notes[0]
    diags, _, _ = check_modules({"b": "type Go = int", "a": "from b import go\ntype A = int"})
    assert only(diags, "BBF101").notes == ()


def test_a_name_imported_twice_or_clashing_with_a_declaration_is_bbf102():
    diags, _, _ = check_modules({"cell.arm": ARM_MODULE,
                                 "m": "from cell.arm import Pose\nfrom cell.arm import Grip as Pose"})
    d = only(diags, "BBF102")
    assert d.span.line == 2 and d.labels[0].span.line == 1
    only(check_modules({"cell.arm": ARM_MODULE, "m": "from cell.arm import Pose\ntype Pose = int"})[0], "BBF102")


def test_a_name_imported_twice_and_declared_is_reported_at_each_mistake_once():
    # the second import was not reported; the declaration was reported twice, at the same place
    diags, _, _ = check_modules({"cell.arm": ARM_MODULE,
                                 "m": "from cell.arm import Pose\nfrom cell.arm import Pose\ntype Pose = int"})
    found = [(d.code, d.span.line, d.labels[0].span.line) for d in diags.sorted()]
    assert found == [("BBF102", 2, 1), ("BBF102", 3, 1)]


def test_the_prelude_is_implicit_and_optional():
    text = "reactor R(s: Safety) -> bool { return s == fault }"
    assert codes(check_modules({"m": text})[0]) == []
    only(check_modules({"m": text}, stdlib=False)[0], "BBF101")


def test_type_alias_loop_is_reported_once():
    only(check_modules({"m": "type A = {b: B}\ntype B = list[A]"})[0], "BBF201")


# --- never crash ------------------------------------------------------------------

PROGRAMS = sorted(p.read_text() for p in cases("check", "*.flow"))
needs_programs = pytest.mark.skipif(not PROGRAMS, reason=ABSENT)
TOKENS = ["step", "let", "return", "}", "{", "(", ")", ",", ":", "x", "idle", "Pose", "none", "1", "2.5",
          "\"s\"", "after", "undo", "when", "?", "??", ".", "==", "on", "Arm", "switch", "case", "map", "emit",
          "set", "run", "then", "else", "import", "from", "wait_state(", "wait_event(", "[", "]", "-> int", "\n"]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(PROGRAMS))
    words = text.split(" ")
    for _ in range(draw(st.integers(1, 6))):
        if not words:
            break
        i = draw(st.integers(0, len(words) - 1))
        op = draw(st.sampled_from(["drop", "insert", "swap", "replace"]))
        if op == "drop":
            del words[i]
        elif op == "insert":
            words.insert(i, draw(st.sampled_from(TOKENS)))
        elif op == "replace":
            words[i] = draw(st.sampled_from(TOKENS))
        else:
            j = draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


@needs_programs
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_checker_never_raises_on_mutated_programs(text):
    module, diags = parse_text(text, "m.flow", "m")
    check([module], diags)  # raises on a bug; a user's mistake is a diagnostic
    assert not [d for d in diags if d.code == "BBF900"]


@needs_programs
def test_conformance_programs_check_without_internal_errors():
    for text in PROGRAMS:
        diags = Diagnostics()
        module, _ = parse_text(text, "m.flow", "m")
        check([module], diags)
        assert not [d for d in diags if d.code == "BBF900"]
