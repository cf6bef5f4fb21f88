"""Mistakes a robotics engineer plausibly makes, one per program: each gives exactly one
diagnostic, with the right code, at the right line and column, with a helpful message and a
"did you mean" where one applies; and the compiler never reports an internal error (BBF900).

Lines and columns are counted from the first line after the shared ARM declarations.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from checker_helpers import ARM, check_modules, check_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared_cases import cases

from bbflow.compiler.checker import check
from bbflow.compiler.syntax.parser import parse_text

MISTAKES = [
    ('typo_step_ref', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p)\n    return aa\n}",
     'BBF101', 3, 12, '`a`'),
    ('typo_command', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_too(target: p)\n    return a\n}",
     'BBF101', 2, 14, '`move_to`'),
    ('typo_param_name', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(targt: p)\n    return a\n}",
     'BBF202', 2, 22, '`target`'),
    ('typo_field', "reactor R(p: Pose) -> float on Arm {\n    let a = p.xx\n    return a\n}",
     'BBF203', 2, 15, '`x`'),
    ('typo_type', "reactor R(p: Poze) -> float on Arm {\n    return 1.0\n}",
     'BBF101', 1, 14, '`Pose`'),
    ('typo_robot', "reactor R(p: Pose) -> float on Arn {\n    return 1.0\n}",
     'BBF101', 1, 32, '`Arm`'),
    ('wrong_arg', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: 1.0)\n    return a\n}",
     'BBF201', 2, 30, None),
    ('wrong_default', "reactor R(p: Pose, s: float = \"fast\") -> Pose on Arm {\n    step a = move_to(target: p)\n    return a\n}",
     'BBF201', 1, 31, None),
    ('wrong_fallback', "reactor R(p: Pose) -> float on Arm {\n    step a = read_force() fallback \"none\"\n    return a\n}",
     'BBF201', 2, 36, None),
    ('wrong_when', "reactor R(p: Pose) -> Pose? on Arm {\n    step a = move_to(target: p) when 1\n    return a\n}",
     'BBF201', 2, 38, None),
    ('wrong_where', "reactor R() -> float on Arm {\n    step g = wait_event(force) where g.newtons\n    return g.newtons\n}",
     'BBF201', 2, 38, None),
    ('where_on_command', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p) where true\n    return a\n}",
     'BBF201', 2, 33, '`when`'),
    ('wrong_undo', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p) undo move_to(target: 2)\n    step b = read_force() after a\n    return a\n}",
     'BBF201', 2, 54, None),
    ('undo_typo', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p) undo mov_to(target: p)\n    return a\n}",
     'BBF101', 2, 38, '`move_to`'),
    ('case_value', "reactor R(g: Grip) -> int on Arm {\n    switch s on g {\n        case 1 { return 1 }\n        default { return 2 }\n    }\n    return s\n}",
     'BBF201', 3, 14, None),
    ('map_non_list', "reactor R(p: Pose) -> list[Pose] on Arm {\n    map m over p as q {\n        step a = move_to(target: q)\n        return a\n    }\n    return m\n}",
     'BBF201', 2, 16, 'list'),
    ('index_str', "reactor R(ps: list[Pose]) -> Pose on Arm {\n    step a = move_to(target: ps[\"0\"])\n    return a\n}",
     'BBF201', 2, 33, None),
    ('missing_arg', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to()\n    return a\n}",
     'BBF202', 2, 14, None),
    ('extra_arg', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p, speed: 1.0, accel: 2.0)\n    return a\n}",
     'BBF202', 2, 45, None),
    ('dup_arg', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p, target: p)\n    return a\n}",
     'BBF202', 2, 33, None),
    ('too_many_pos', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(p, 1.0, 2.0)\n    return a\n}",
     'BBF202', 2, 30, None),
    ('optional_arg', "reactor R(c: str) -> Pose on Arm {\n    step l = locate(color: c)\n    step a = move_to(target: l)\n    return a\n}",
     'BBF204', 3, 30, '??'),
    ('return_type', "reactor R(p: Pose) -> int on Arm {\n    step a = move_to(target: p)\n    return a\n}",
     'BBF201', 3, 12, None),
    ('let_call', "reactor R(p: Pose) -> float on Arm {\n    let f = read_force()\n    return f\n}",
     'BBF201', 2, 13, 'step'),
    ('after_typo', "reactor R(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p)\n    step b = read_force() after aa\n    return a\n}",
     'BBF101', 3, 33, '`a`'),
    ('wait_state_typo', "reactor R() -> str on Arm {\n    step w = wait_state(idel)\n    return w\n}",
     'BBF101', 2, 25, '`idle`'),
    ('wait_event_typo', "reactor R() -> float on Arm {\n    step w = wait_event(forse)\n    return w.newtons\n}",
     'BBF101', 2, 25, '`force`'),
    ('no_robot_cmd', "reactor R(p: Pose) -> Pose {\n    step a = move_to(target: p)\n    return a\n}",
     'BBF101', 2, 14, 'add `on Arm`'),
    ('str_plus_int', "reactor R(n: int) -> str {\n    let s = \"n=\" + n\n    return s\n}",
     'BBF201', 2, 13, 'str(...)'),
    ('enum_member_typo', "reactor R() -> Grip {\n    let g = Grip.clsed\n    return g\n}",
     'BBF101', 2, 18, '`closed`'),
    ('set_type', "signal go\nagent A on Arm {\n    state { n: int = 0 }\n    on go { set n = \"x\" }\n}",
     'BBF201', 4, 21, None),
    ('set_typo', "signal go\nagent A on Arm {\n    state { count: int = 0 }\n    on go { set cout = 1 }\n}",
     'BBF101', 4, 17, '`count`'),
    ('emit_extra', "signal go\nsignal done: {n: int}\nagent A on Arm {\n    on go { emit done {n: 1, m: 2} }\n}",
     'BBF203', 4, 30, None),
    ('emit_missing', "signal go\nsignal done: {n: int, why: str}\nagent A on Arm {\n    on go { emit done {n: 1} }\n}",
     'BBF201', 4, 23, None),
    ('wrong_arg_name', "reactor R(p: Pose) -> Grip on Arm {\n    step a = grip(strength: 1.0)\n    return a\n}",
     'BBF202', 2, 19, None),
    ('arg_name_for_the_missing_one', "action pick(at: Pose) -> bool = \"cell.p:pick\"\n"
     "reactor R(part: Pose) -> bool {\n    step a = pick(pose: part)\n    return a\n}",
     'BBF202', 3, 19, 'did you mean `at`?'),
    ('drive_for_drive_to', "robot Base {\n    command drive_to(x: float) -> bool\n}\n"
     "reactor R() -> bool on Base {\n    step a = drive(x: 1.0)\n    return a\n}",
     'BBF101', 5, 14, '`drive_to`'),
    ('emit_wrong', "signal go\nsignal done: {n: int}\nagent A on Arm {\n    on go { emit done {n: \"one\"} }\n}",
     'BBF201', 4, 27, None),
    ('emit_undeclared', "signal go\nsignal done: {n: int}\nagent A on Arm {\n    on go { emit don {n: 1} }\n}",
     'BBF504', 4, 18, '`done`'),
    ('schedule_delay', "signal go\nagent A on Arm {\n    on go { schedule go in 5 }\n}",
     'BBF201', 3, 28, '`5s`'),
    ('agent_cmd_missing', "robot Cam {\n    command snap() -> str\n}\nsignal go\nagent A on Cam {\n    on go { run move_to(target: {x: 1.0, y: 1.0, z: 1.0}) }\n}",
     'BBF206', 6, 13, 'agent `on Arm`'),
    ('coordinator_runs_a_command', "signal go\nagent A {\n    on go { run beep() }\n}",
     'BBF206', 3, 13, 'agent `on Arm`'),
    ('compose_other_robot', "robot Cam {\n    command snap() -> str\n}\nreactor Snap() -> str on Cam {\n    step s = snap()\n    return s\n}\n"
     "reactor R() -> str on Arm {\n    step s = Snap()\n    return s\n}",
     'BBF206', 9, 5, 'reactor `on Cam`'),
    ('compose_from_unbound', "robot Cam {\n    command snap() -> str\n}\nreactor Snap() -> str on Cam {\n    step s = snap()\n    return s\n}\n"
     "reactor R() -> str {\n    step s = Snap()\n    return s\n}",
     'BBF206', 9, 5, 'add `on Cam`'),
    ('no_robot_many_cmds', "reactor R(p: Pose) -> Pose {\n    step a = move_to(target: p)\n    step b = grip() after a\n"
     "    step c = release() after b\n    step d = beep() after c\n    return a\n}",
     'BBF101', 2, 14, 'add `on Arm`'),
    ('limit_zero', "robot Cam {\n    limit motion 0\n    command snap() -> str category motion\n}",
     'BBF201', 2, 5, '`limit motion 1`'),
    ('run_then_result', "signal go\nsignal done: {f: float}\nagent A on Arm {\n    on go { run read_force() then { emit done {f: result.x} } }\n}",
     'BBF201', 4, 58, None),
    ('route_binding_typo', "signal go: {n: int}\nagent A on Arm {\n    state { n: int = 0 }\n    on go as g { set n = g.data.m }\n}",
     'BBF203', 4, 33, None),
    ('if_cond', "signal go\nagent A on Arm {\n    state { n: int = 0 }\n    on go { if n { set n = 1 } }\n}",
     'BBF201', 4, 16, None),
    ('state_default', "signal go\nagent A on Arm {\n    state { n: int = \"zero\" }\n    on go { set n = 1 }\n}",
     'BBF201', 3, 22, None),
    ('when_not_bool_route', "signal go\nagent A on Arm {\n    state { n: int = 0 }\n    on go when n { set n = 1 }\n}",
     'BBF201', 4, 16, None),
]


@pytest.mark.parametrize(("name", "text", "code", "line", "column", "help_has"), MISTAKES,
                         ids=[m[0] for m in MISTAKES])
def test_one_mistake_one_diagnostic_in_place(name, text, code, line, column, help_has):
    diags, _, _ = check_text(text, arm=True)
    found = [(d.code, d.span.line - ARM.count("\n"), d.span.column, d.message) for d in diags.sorted()]
    assert [f[:3] for f in found] == [(code, line, column)], found
    [d] = diags.items
    assert d.message and not d.message.endswith(".")
    if help_has is not None:
        assert d.help is not None and help_has in d.help, d.help


PICK = ARM + """
reactor Pick(p: Pose) -> Pose on Arm {
    step a = move_to(target: p) undo move_to(target: p)
    step f = read_force() after a
    step b = move_to(target: {x: f, y: f, z: f}) after f
    return b
}
"""


def diags_of(sources):
    diags, _, _ = check_modules(sources)
    assert not [d for d in diags.items if d.code == "BBF900"]
    return [(d.code, d.span.file, d.span.line, d.span.column) for d in diags.sorted()], diags


def test_composed_reactor_through_an_import_alias_misspelt_argument_and_name():
    found, diags = diags_of({"cell.arm": PICK, "cell.main": (
        "import cell.arm as arm\n"
        "reactor Main(p: arm.Pose) -> arm.Pose on arm.Arm {\n"
        "    step a = arm.Pick(pp: p) undo arm.Pick(p: p)\n"
        "    step b = arm.Pik(p: p) after a\n"
        "    return b\n}\n")})
    assert found == [("BBF202", "cell/main.flow", 3, 23), ("BBF101", "cell/main.flow", 4, 18)]
    assert [d.help for d in diags.sorted()] == ["did you mean `p`?", "did you mean `Pick`?"]


def test_an_import_cycle_of_three_modules_is_one_diagnostic_naming_the_cycle():
    found, diags = diags_of({"a": "from b import X\ntype A = int\n", "b": "from c import Y\ntype X = int\n",
                             "c": "from a import A\ntype Y = int\n"})
    assert found == [("BBF104", "a.flow", 1, 6)]
    assert "`a` -> `b` -> `c` -> `a`" in diags.items[0].message


def test_an_agent_on_a_robot_without_the_command_says_which_robot_has_it():
    text = ("robot Cam {\n    command snap() -> str\n}\nsignal go\nagent A on Cam {\n"
            "    on go { run move_to(target: {x: 1.0, y: 1.0, z: 1.0}) }\n}")
    diags, _, _ = check_text(text, arm=True)
    [d] = diags.items
    assert d.code == "BBF206" and "`move_to` is a command of `Arm`" in d.message


def test_routes_with_every_pattern_shape():
    found, diags = diags_of({"m": (
        "signal pick.requested: {n: int}\nsignal pick.done\nsignal cell.alarm\n"
        "agent A {\n    state { n: int = 0 }\n"
        "    on pick.* as p { set n = 1 }\n"          # one segment: fine, less specific than the next
        "    on pick.requested as r { set n = r.data.n }\n"
        "    on pick* { }\n"                          # BBF501
        "    on cel.** { }\n"                         # BBF503, did you mean cell.**
        "    on ** { emit cell.alarm  emit pick.done }\n"
        "    on pick.requested { }\n"                  # BBF502: shadowed by the earlier literal route
        "}\n")})
    assert found == [("BBF501", "m.flow", 8, 8), ("BBF503", "m.flow", 9, 5), ("BBF502", "m.flow", 11, 5)]
    assert diags.sorted()[1].help == "did you mean `cell.**`?"


# --- fuzzing: mutated real programs never crash the compiler ---------------------------------

_ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted(p.read_text(encoding="utf-8") for p in [
    *cases("check", "*.flow"),
    *(_ROOT / "examples").rglob("*.flow")]) or [ARM]
TOKENS = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:ms|s|m|h)?|\*\*|->|\?\?|[=!<>]=|\S')
WORDS = ["step", "let", "map", "switch", "case", "default", "return", "fail", "after", "undo", "when", "=",
         "(", ")", "{", "}", "[", "]", ",", ":", ".", "?", "??", "none", "1", "1.5", "5s", '"x"', "a", "Grip",
         "open", "idle", "wait_event", "wait_state", "reactor", "agent", "on", "emit", "set", "**", "*"]
#: the committed test runs a few; BBFLOW_FUZZ_EXAMPLES=3000 for a real campaign
EXAMPLES = int(os.environ.get("BBFLOW_FUZZ_EXAMPLES", "25"))


def _compiles_without_crash(text: str) -> None:
    module, diags = parse_text(text, "fuzz.flow", "fuzz")
    check([module], diags)
    assert not [d for d in diags.items if d.code == "BBF900"], [d.message for d in diags.items]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 2),
                                                  st.sampled_from(WORDS)), min_size=1, max_size=4))
def test_token_mutations_never_crash(seed, edits):
    tokens = TOKENS.findall(seed)
    for at, kind, word in edits:
        i = at % (len(tokens) + 1)
        if kind == 0 and i < len(tokens):
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, word)
        elif i < len(tokens):
            tokens[i] = word
    _compiles_without_crash(" ".join(tokens))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(
    ["", " ", "\n", "{", "}", "(", ")", '"', "\\", ".", "#", "é", "0", "a", "*", "?"])), min_size=1, max_size=4))
def test_character_mutations_never_crash(seed, edits):
    text = seed
    for at, piece in edits:
        i = at % (len(text) + 1)
        text = text[:i] + piece + text[i + 1:]
    _compiles_without_crash(text)


def test_runs_and_compositions_on_the_right_robot_are_no_bbf206():
    """The passing side of BBF206: an agent runs its own robot's reactors and commands and reactors bound to no
    robot; a coordinator runs reactors bound to no robot; a reactor composes its own robot's reactors."""
    text = ("robot Base {\n    command home() -> bool category motion\n}\n"
            "signal go\n"
            "reactor Home() -> bool on Base {\n    step h = home()\n    return h\n}\n"
            "reactor Twice() -> bool on Base {\n    step a = Home() undo Home()\n    step b = Home() after a\n"
            "    return b\n}\n"
            "reactor Think() -> int {\n    return 1\n}\n"
            "reactor Both() -> int on Base {\n    step t = Think()\n    return t\n}\n"
            "agent BaseAgent on Base {\n    on go { run Twice()  run home()  run Think()  run Both() }\n}\n"
            "agent Coordinator {\n    on go { run Think() }\n}\n")
    diags, _, _ = check_text(text, arm=True)
    assert [d.code for d in diags.sorted()] == [], [d.message for d in diags.items]


def test_the_two_robot_cell_of_the_issue_is_refused_at_each_wrong_run_naming_the_robot_that_would_move():
    """`agent ArmAgent on Arm` running `reactor ParkBase() on Base` (both robots have `home()`) would move the arm
    through the base's task; a coordinator running it would fail at run time; a reactor on Arm composing one on
    Base too: one BBF206 each, at the `run` (or `step`) keyword, with a help line naming the robot."""
    text = ("robot Base {\n    command home() -> bool category motion\n}\nsignal go\n"
            "reactor ParkBase() -> bool on Base {\n    step h = home()\n    return h\n}\n"
            "agent ArmAgent on Arm {\n    on go { run ParkBase() }\n}\n"
            "agent Coordinator {\n    on go { run ParkBase() }\n}\n"
            "reactor Both() -> bool on Arm {\n    step p = ParkBase()\n    return p\n}\n")
    diags, _, _ = check_text(text, arm=True)
    top = ARM.count("\n")
    found = [(d.code, d.span.line - top, d.span.column, d.help) for d in diags.sorted()]
    assert [f[:3] for f in found] == [("BBF206", 10, 13), ("BBF206", 13, 13), ("BBF206", 16, 5)]
    assert "would move the `Arm` robot through `ParkBase`'s task" in found[0][3]
    assert all("`on Base`" in f[3] for f in found)
