"""Property tests: random reactors as source text, through the real parser and checker.

The verdicts for BBF301 (cycles), BBF304 (unordered motion) and BBF401 (missing
undo) are compared with a brute-force oracle over the explicit edge list of the
generated reactor: plain reachability by depth-first search, nothing shared
with the implementation. Random and mutated programs must never crash the
checker (no exception, no BBF900).
"""

from __future__ import annotations

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.compiler.checker import check
from bbflow.compiler.syntax.parser import parse_text

ROBOT = """\
robot Arm {
    limit motion 1
    limit light 2
    command look() -> float readonly
    command move(p: float) -> float category motion
    command slide(p: float) -> float category motion undo release()
    command grip(p: float) -> float undo release()
    command release() -> float
    command beep(p: float) -> float
    command blink(p: float) -> float category light
}

"""
HEADER_LINES = ROBOT.count("\n") + 1  # the `reactor` line; steps follow

#: command -> (effectful, has a default undo, uses the limit-1 category)
COMMANDS = {
    "look": (False, False, False),
    "move": (True, False, True),
    "slide": (True, True, True),
    "grip": (True, True, False),
    "release": (True, False, False),
    "beep": (True, False, False),
    "blink": (True, False, False),
}


@attrs.frozen
class StepSpec:
    command: str
    data: tuple[int, ...]  # steps whose values it uses
    after: tuple[int, ...]  # steps it names in `after`
    undo: bool
    irreversible: bool
    fallback: bool


@attrs.frozen
class ReactorSpec:
    steps: tuple[StepSpec, ...]

    def edges(self) -> set[tuple[int, int]]:
        """(dependency, dependent) for every data reference and `after`."""
        return {(d, i) for i, s in enumerate(self.steps) for d in s.data + s.after}

    def source(self) -> str:
        lines = [ROBOT + "reactor R() on Arm {"]
        for i, s in enumerate(self.steps):
            args = "" if s.command in ("look", "release") else \
                "p: " + (" + ".join(f"s{d}" for d in s.data) if s.data else "1.0")
            text = f"    step s{i} = {s.command}({args})"
            if s.after:
                text += " after " + ", ".join(f"s{d}" for d in s.after)
            if s.undo:
                text += " undo release()"
            if s.irreversible:
                text += ' irreversible "no way back"'
            if s.fallback:
                text += " fallback 0.0"
            lines.append(text)
        lines.append("}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def line_of(i: int) -> int:
        return HEADER_LINES + 1 + i


@st.composite
def reactors(draw, allow_cycles: bool = False) -> ReactorSpec:
    n = draw(st.integers(1, 8))
    steps = []
    for i in range(n):
        command = draw(st.sampled_from(sorted(COMMANDS)))
        others = [j for j in range(n) if j != i] if allow_cycles else list(range(i))
        deps = draw(st.lists(st.sampled_from(others), unique=True, max_size=3)) if others else []
        takes_data = command not in ("look", "release")
        split = draw(st.integers(0, len(deps)))
        data = tuple(deps[:split]) if takes_data else ()
        after = tuple(d for d in deps if d not in data)
        undo = draw(st.booleans())
        steps.append(StepSpec(command, data, after, undo, draw(st.booleans()) and not undo,
                              draw(st.integers(0, 4)) == 0))
    return ReactorSpec(tuple(steps))


def run_checker(text: str) -> list[tuple[str, int]]:
    module, diags = parse_text(text, "r.flow", "r")
    check([module], diags)
    return [(d.code, d.span.line) for d in diags]


# --- the oracle ----------------------------------------------------------------------------


def reaches(edges: set[tuple[int, int]], a: int, b: int) -> bool:
    """Is there a non-empty path from a to b?"""
    seen, todo = set(), [v for u, v in edges if u == a]
    while todo:
        x = todo.pop()
        if x == b:
            return True
        if x not in seen:
            seen.add(x)
            todo.extend(v for u, v in edges if u == x)
    return False


def oracle(spec: ReactorSpec) -> dict[str, set[int]]:
    """The lines each of BBF301, BBF304 and BBF401 must be reported at."""
    e = spec.edges()
    n = len(spec.steps)
    on_cycle = [i for i in range(n) if reaches(e, i, i)]
    if on_cycle:
        # one per group of steps on a common cycle, at its first step
        firsts = {min(j for j in on_cycle if j == i or (reaches(e, i, j) and reaches(e, j, i))) for i in on_cycle}
        return {"BBF301": {spec.line_of(i) for i in firsts}, "BBF304": set(), "BBF401": set()}
    motion = [i for i, s in enumerate(spec.steps) if COMMANDS[s.command][2]]
    unordered = {j for j in motion for i in motion
                 if i < j and not reaches(e, i, j) and not reaches(e, j, i)}
    missing = set()
    for i, s in enumerate(spec.steps):
        effectful, default_undo, _ = COMMANDS[s.command]
        if not effectful or s.undo or s.irreversible or default_undo:
            continue
        if any(k != i and not spec.steps[k].fallback and not reaches(e, k, i) for k in range(n)):
            missing.add(i)
    return {"BBF301": set(), "BBF304": {spec.line_of(j) for j in unordered},
            "BBF401": {spec.line_of(i) for i in missing}}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reactors())
def test_dag_verdicts_match_the_oracle(spec):
    found = run_checker(spec.source())
    expected = oracle(spec)
    for code, lines in expected.items():
        assert {line for c, line in found if c == code} == lines, (code, spec.source())
    errors = {c for c, _ in found} - {"BBF303", "BBF402"}  # warnings of no interest here
    assert errors <= set(expected), spec.source()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reactors(allow_cycles=True))
def test_cyclic_verdicts_match_the_oracle(spec):
    found = run_checker(spec.source())
    expected = oracle(spec)
    for code, lines in expected.items():
        assert {line for c, line in found if c == code} == lines, (code, spec.source())


def test_the_oracle_sees_what_the_conformance_cases_say():
    move, beep = StepSpec("move", (), (), False, False, False), StepSpec("beep", (), (), False, False, False)
    spec = ReactorSpec((move, attrs.evolve(move, after=(0,))))
    assert oracle(spec)["BBF401"] == {spec.line_of(0)}
    assert oracle(ReactorSpec((move, move)))["BBF304"] == {ReactorSpec.line_of(1)}
    cyc = ReactorSpec((attrs.evolve(beep, after=(1,)), attrs.evolve(beep, after=(0,))))
    assert oracle(cyc)["BBF301"] == {ReactorSpec.line_of(0)}


# --- never crashes -------------------------------------------------------------------------

SAMPLE = """\
type Pose = {x: float, y: float, z: float}
signal cell.start: {n: int}
signal cell.done
robot Arm {
    limit motion 1
    command move_to(target: Pose) -> Pose category motion undo home()
    command home() -> Pose category motion
    command read() -> float readonly
    event force: {newtons: float}
}
action plan(p: Pose) -> Pose pure = "x:y"
reactor Inner(p: Pose) -> Pose on Arm {
    step a = move_to(target: p)
    return a
}
reactor Outer(ps: list[Pose], q: Pose) -> list[Pose] on Arm {
    let n = len(ps)
    step r = read() fallback 0.0
    switch s on r > 1.0 {
        case true { step h = home() after r undo move_to(target: q) return h }
        default { fail "low" }
    }
    map m over ps as p concurrency 2 {
        step planned = plan(p: p)
        step v = Inner(p: planned) after s
        return v
    }
    step back = move_to(target: q) after m
    return m
}
agent A on Arm {
    state { busy: bool = false }
    on cell.start as c when not busy { set busy = true run Outer(ps: [], q: {x: 0.0, y: 0.0, z: 0.0}) then { emit cell.done } }
    on cell.* { emit cell.done }
    on robot.event.** { }
    on cell.**.** { schedule cell.gone in 1s }
}
"""
TOKENS = SAMPLE.replace("(", " ( ").replace(")", " ) ").replace("{", " { ").replace("}", " } ").split()


@st.composite
def mutated(draw) -> str:
    words = SAMPLE.replace("(", " ( ").replace(")", " ) ").split(" ")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(words) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert"]))
        if op == "drop":
            del words[i]
        elif op == "dup":
            words.insert(i, words[i])
        elif op == "swap":
            j = draw(st.integers(0, len(words) - 1))
            words[i], words[j] = words[j], words[i]
        else:
            words.insert(i, draw(st.sampled_from(TOKENS)))
    return " ".join(words)


def test_the_sample_itself_checks_without_crashing():
    codes = {c for c, _ in run_checker(SAMPLE)}
    assert "BBF900" not in codes
    assert {"BBF501", "BBF504", "BBF304"} <= codes  # the sample's deliberate mistakes


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_programs_never_crash(text):
    assert "BBF900" not in {c for c, _ in run_checker(text)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reactors(allow_cycles=True), st.data())
def test_random_reactors_with_dropped_lines_never_crash(spec, data):
    lines = spec.source().split("\n")
    drop = data.draw(st.integers(HEADER_LINES, len(lines) - 1))
    text = "\n".join(lines[:drop] + lines[drop + 1:])
    assert "BBF900" not in {c for c, _ in run_checker(text)}
