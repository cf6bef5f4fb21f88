"""BBF305: a reactor that composes itself, directly or through others, is an error at check time.

A run of such a reactor nested runs until Python's stack gave out ("maximum recursion depth
exceeded") after its first steps had moved the robot.
"""

from __future__ import annotations

from checker_helpers import ARM, check_modules, check_text, codes, only

from bbflow.compiler.analysis.composition import SHOWN
from bbflow.compiler.pipeline import compile_paths

RING = """
reactor A(p: Pose) -> Pose on Arm {
    step m = move_to(target: p) undo move_to(target: p)
    step b = B(p: m)
    return b
}

reactor B(p: Pose) -> Pose on Arm {
    step c = C(p: p)
    return c
}

reactor C(p: Pose) -> Pose on Arm {
    step a = A(p: p) when p.x > 0.0 fallback p
    return p
}
"""


def _line(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_reactor_that_composes_itself_is_reported_at_the_composing_step() -> None:
    text = """
reactor Again(n: int) -> int {
    step s = Again(n: n - 1)
    return s
}
"""
    diags, _, _ = check_text(text)
    d = only(diags, "BBF305")
    assert d.message == "reactor `Again` composes itself"
    assert (d.span.line, d.span.column) == (3, 5)
    assert d.labels == ()


def test_a_ring_of_three_names_each_reactor_and_each_composing_step() -> None:
    diags, _, _ = check_text(RING, arm=True)
    d = only(diags, "BBF305")
    assert d.message == "reactors compose each other in a ring: `A` -> `B` -> `C` -> `A`"
    full = ARM + RING
    assert d.span.line == _line(full, "step b = B(")
    assert [(label.span.line, label.message) for label in d.labels] == [
        (_line(full, "step c = C("), "`B` composes `C` here"),
        (_line(full, "step a = A("), "`C` composes `A` here"),
    ]
    assert d.notes[0] == "`A` composes `B` in step `b`"


def test_composition_inside_a_switch_case_or_a_map_body_counts() -> None:
    text = """
reactor Walk(items: list[int]) -> list[int] {
    map done over items as item {
        switch more on item > 0 {
            case true { step deeper = Walk(items: [item - 1])  return item }
            default { return item }
        }
        return item
    }
    return done
}
"""
    diags, _, _ = check_text(text)
    assert codes(diags) == ["BBF305"]


def test_reactors_that_compose_the_same_reactor_twice_are_not_a_ring() -> None:
    text = """
reactor Leaf(n: int) -> int {
    let v = n + 1
    return v
}
reactor Left(n: int) -> int {
    step v = Leaf(n: n)
    return v
}
reactor Top(n: int) -> int {
    step a = Left(n: n)
    step b = Leaf(n: a)
    step c = Left(n: b)
    return c
}
"""
    diags, _, _ = check_text(text)
    assert codes(diags) == []


def test_two_separate_rings_give_two_diagnostics() -> None:
    text = """
reactor A(n: int) -> int {
    step x = B(n: n)
    return x
}
reactor B(n: int) -> int {
    step x = A(n: n)
    return x
}
reactor Solo(n: int) -> int {
    step x = Solo(n: n)
    return x
}
"""
    diags, _, _ = check_text(text)
    assert [(d.code, d.span.line) for d in diags.sorted()] == [("BBF305", 3), ("BBF305", 11)]


def test_a_ring_in_an_imported_module_is_reported_in_that_module_only() -> None:
    diags, _, _ = check_modules({
        "lib": "reactor Loop(n: int) -> int {\n    step x = Loop(n: n)\n    return x\n}\n",
        "main": "from lib import Loop\nreactor Use(n: int) -> int {\n    step x = Loop(n: n)\n    return x\n}\n",
    })
    assert [(d.code, d.span.file, d.span.line) for d in diags.sorted()] == [("BBF305", "lib.flow", 2)]


def test_check_of_one_file_of_a_project_reports_its_ring(tmp_path) -> None:
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "p"\nsource = "flows"\n')
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "lib.flow").write_text("reactor Leaf(n: int) -> int {\n    let v = n\n    return v\n}\n")
    (flows / "cell.flow").write_text(
        "from lib import Leaf\n"
        "reactor A(n: int) -> int {\n    step x = B(n: n)\n    return x\n}\n"
        "reactor B(n: int) -> int {\n    step y = Leaf(n: n)\n    step x = A(n: y)\n    return x\n}\n")
    result = compile_paths([flows / "cell.flow"])
    assert [(d.code, d.span.line) for d in result.diagnostics.sorted()] == [("BBF305", 3)]


def test_an_undo_that_composes_its_own_reactor_is_a_ring() -> None:
    # with a fault that lasts, each rollback ran the reactor again, which failed and rolled back again
    # (a bbflow run still going after 600 s, moving the arm at each level)
    text = """
reactor Shuttle(at: Pose) -> Pose on Arm {
    step reached = move_to(target: at) undo Shuttle(at: at)
    step held = grip(force: 15.0) after reached
    return reached
}
"""
    diags, _, _ = check_text(text, arm=True)
    d = only(diags, "BBF305")
    assert d.message == "reactor `Shuttle` composes itself in an undo"
    assert (d.span.line, d.span.column) == (_line(ARM + text, "undo Shuttle("), 40)
    assert d.help == "undo the step with commands, or with a reactor outside the ring"


def test_a_ring_through_a_step_and_an_undo_labels_the_undo() -> None:
    text = """
reactor Out(at: Pose) -> Pose on Arm {
    step there = move_to(target: at) undo Back(at: at)
    step held = grip(force: 15.0) after there
    return there
}

reactor Back(at: Pose) -> Pose on Arm {
    step r = Out(at: at)
    return r
}
"""
    diags, _, _ = check_text(text, arm=True)
    d = only(diags, "BBF305")
    assert d.message == "reactors compose each other in a ring: `Out` -> `Back` -> `Out`"
    assert d.notes[0] == "`Out` composes `Back` in the undo of step `there`"
    assert [label.message for label in d.labels] == ["`Back` composes `Out` here"]


def test_an_undo_that_composes_another_reactor_is_fine() -> None:
    text = """
reactor Home(at: Pose) -> Pose on Arm {
    step h = move_to(target: at) undo move_to(target: at)
    return h
}

reactor Out(at: Pose) -> Pose on Arm {
    step there = move_to(target: at) undo Home(at: at)
    step held = grip(force: 15.0) after there
    return there
}
"""
    diags, _, _ = check_text(text, arm=True)
    assert "BBF305" not in codes(diags)


def test_a_long_ring_is_named_by_its_first_reactors_and_its_last() -> None:
    size = 20
    text = "".join(f"reactor R{i}(n: int) -> int {{\n    step x = R{(i + 1) % size}(n: n)\n    return x\n}}\n"
                   for i in range(size))
    diags, _, _ = check_text(text)
    d = only(diags, "BBF305")
    assert d.message == ("reactors compose each other in a ring: `R0` -> `R1` -> `R2` -> `R3` -> `R4` -> `R5` -> "
                         "`R6` -> ... -> `R19` -> `R0` (20 reactors)")
    assert len(d.labels) == SHOWN - 1
    assert "the steps of 12 more reactors of the ring are not marked" in d.notes
