"""Hypothesis strategies for .flow programs: generated from the grammar, and the real programs to mutate."""

from __future__ import annotations

from arm_spec import GRIP_ENUM, POSE_TYPE, arm_robot
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark.lexer import PatternStr
from shared_cases import CONFORMANCE

from bbflow.compiler.syntax.parser import build_parser

SHARED = CONFORMANCE
SAMPLE = f"""# a sample program, used when the shared conformance cases are absent
{POSE_TYPE}
{GRIP_ENUM}
signal pick.requested: {{pick: Pose, place: Pose}}
signal cell.alarm
{arm_robot("command wave() -> bool allowed idle")}
""" + """action locate(color: str) -> Pose? pure = "cell.vision:locate"
reactor Pick(pick: Pose, place: Pose) -> Pose on Arm {
    concurrency 2
    step approach = move_to(target: pick) retry 2 backoff 200ms max 1s undo move_to(target: place)
    step grip = close_gripper(force: 15.0) after approach
    step g = wait_event(force) where g.newtons > 5.0 timeout 2s after grip
    let n = len([1, 2]) ?? 0
    map m over [pick] as p concurrency 1 { step v = move_to(target: p) return v }
    switch s on n { case 1, 2 { fail "no \\u{1F916}" } default { return approach } }
}
agent Picker on Arm {
    state { busy: bool = false }
    on pick.requested as req when not busy priority -1 {
        set busy = true
        run Pick(pick: req.data.pick, place: req.data.place) then { emit cell.alarm } else { set busy = false }
        if busy { schedule cell.alarm {} in 1s } else { emit cell.alarm }
    }
    on robot.event.** { }
}
"""


def _programs() -> list[str]:
    files = sorted(SHARED.glob("**/*.flow")) if SHARED.is_dir() else []
    return [f.read_text(encoding="utf-8") for f in files] or [SAMPLE]


PROGRAMS = _programs()


#: built, not loaded from the tables cache: hypothesis reads the grammar from it
PARSER = build_parser()


def _terminal_strategies() -> dict[str, st.SearchStrategy[str]]:
    """Every terminal spelled with spaces around it, so that generated programs are mostly lexable."""
    words = {
        "NAME": st.sampled_from(["a", "pick", "x_1", "Pose", "max", "state", "idle"]),
        "NUMBER": st.sampled_from(["0", "42", "1_000", "0.5", "1e-3", "250ms", "1.5s", "2m", "1h", "1__0", "3x"]),
        "STRING": st.sampled_from(['""', '"a b"', '"q\\"\\n\\u{1F916}"', '"bad \\q"']),
        "SIGNAL_TYPE": st.sampled_from(["pick.requested", "cell.alarm", "robot.state.changed"]),
        "PATTERN": st.sampled_from(["pick.*", "cell.**", "a.b", "robot.event.*"]),
        "WS": st.just(" "),
        "COMMENT": st.just("# c\n"),
    }
    out = {name: strat.map(lambda s: f" {s} ") for name, strat in words.items()}
    for term in PARSER.terminals:
        if isinstance(term.pattern, PatternStr):
            out[term.name] = st.just(f" {term.pattern.value} ")
    return out


GENERATED = from_lark(PARSER, explicit=_terminal_strategies())
