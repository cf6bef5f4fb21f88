"""Types: BBF201-BBF205 and BBF302, assignability rules, and the types recorded in Facts."""

from __future__ import annotations

import pytest
from checker_helpers import check_text, codes, decl, line_of, only

from bbflow.compiler.diagnostics.codes import BBF201, BBF204
from bbflow.compiler.semantic import types as T

# --- the type algebra -------------------------------------------------------------

POSE = T.RecordT((("x", T.FLOAT), ("y", T.FLOAT)))
POSE3 = T.RecordT((("x", T.FLOAT), ("y", T.FLOAT), ("z", T.FLOAT)))


def test_assignability():
    assert T.assignable(T.INT, T.FLOAT) and not T.assignable(T.FLOAT, T.INT)
    assert T.assignable(POSE3, POSE) and not T.assignable(POSE, POSE3)  # width subtyping
    assert T.assignable(T.NONE, T.OptionalT(T.INT)) and not T.assignable(T.NONE, T.INT)
    assert T.assignable(T.ListT(T.INT), T.ListT(T.FLOAT))
    assert T.assignable(T.ANY, POSE) and T.assignable(POSE, T.ANY)
    assert T.assignable(T.ERROR, T.INT) and T.assignable(T.INT, T.ERROR)
    a, b = T.EnumT("m.A", ("x",)), T.EnumT("m.B", ("x",))
    assert not T.assignable(a, b)  # nominal
    assert T.mismatch_code(T.OptionalT(T.INT), T.INT) is BBF204
    assert T.mismatch_code(T.STR, T.INT) is BBF201
    assert T.assignable(T.RecordT((("x", T.INT),)), T.RecordT((("x", T.INT), ("y", T.OptionalT(T.STR)))))


def test_join_and_display():
    assert T.join(T.INT, T.FLOAT) == T.FLOAT
    assert T.join(T.NONE, T.INT) == T.OptionalT(T.INT)
    assert T.join(T.STR, T.INT) is None
    assert str(T.ListT(T.OptionalT(POSE))) == "list[{x: float, y: float}?]"
    assert str(T.RecordT(POSE.fields, "Pose")) == "Pose" and T.RecordT(POSE.fields, "Pose") == POSE


# --- BBF201 -----------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "step a = move_to(target: 3.0)",
    "step a = move_to(target: {x: 1.0, y: 2.0})",
    "step a = move_to(target: {x: 1.0, y: 2.0, z: \"high\"})",
    "let n = 1 + \"a\"",
    "let b = 1 < \"a\"",
    "let c = 1 == \"a\"",
    "let d = not 1",
    "let e = [1, \"a\"]",
    "let f = 3.0 step w = beep() when f",
    "step w = beep() timeout 1s fallback 3",
    "step w = read_force() where w > 1.0",
    "map m over 3 as i { return i }",
    "let g = Grip",
    "let h = len(3)",
    "let i = (1.0).x",
    "let j = 1.0[0]",
    "let k = locate(color: \"red\")",
])
def test_type_mismatches_are_bbf201(body):
    diags, _, _ = check_text(f"reactor R() on Arm {{ {body} }}", arm=True)
    assert only(diags, "BBF201")


def test_mismatch_position_is_the_value():
    text = "reactor R() -> Pose on Arm {\n    step a = move_to(target: 3.0)\n    return a\n}"
    diags, _, _ = check_text(text, arm=True)
    d = only(diags, "BBF201")
    assert (d.span.line, d.span.column) == (line_of(text, "3.0", arm=True), 30)
    assert "expected Pose, found float" in d.message


def test_defaults_must_match_their_types():
    for text in ['action a(x: int = "one") = "m:a"', 'robot R { command c(x: float = true) }',
                 'reactor R(x: str = 1) { }', 'signal s\nagent A { state { n: int = 1.5 } on s { } }']:
        diags, _, _ = check_text(text)
        only(diags, "BBF201")


def test_widening_and_width_subtyping_pass():
    text = """
type P2 = {x: float, y: float}
reactor R(p: P2) -> float on Arm {
    step a = move_to(target: {x: 1, y: 2, z: 3, label: "top"}, speed: 1)
    let q = p.x + 1
    return a.x + q
}
"""
    diags, _, _ = check_text(text, arm=True)
    assert codes(diags) == []


# --- BBF202 -----------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    "move_to()",                                       # missing
    "move_to(target: p, sped: 1.0)",                   # unknown
    "move_to(target: p, target: p)",                   # duplicated
    "move_to(p, target: p)",                           # duplicated (positional and named)
    "move_to(p, 1.0, 3)",                              # too many
])
def test_call_argument_errors_are_bbf202(call):
    diags, _, _ = check_text(f"reactor R(p: Pose) -> Pose on Arm {{ step a = {call} return a }}", arm=True)
    assert only(diags, "BBF202")


def test_unknown_argument_suggests_the_parameter():
    diags, _, _ = check_text("reactor R(p: Pose) -> Pose on Arm { step a = move_to(target: p, sped: 1.0) "
                             "return a }", arm=True)
    assert only(diags, "BBF202").help == "did you mean `speed`?"


def test_positional_then_named_arguments_pass():
    diags, _, _ = check_text("reactor R(p: Pose) -> Pose on Arm { step a = move_to(p, speed: 1.0) return a }",
                             arm=True)
    assert codes(diags) == []


# --- BBF203 / BBF204 --------------------------------------------------------------


def test_unknown_field_is_bbf203_with_did_you_mean():
    diags, _, _ = check_text("reactor R(p: Pose, q: {height: float}) -> float { return p.w + q.hieght }",
                             arm=True)
    assert codes(diags) == ["BBF203", "BBF203"]
    assert diags.sorted()[1].help == "did you mean `height`?"


@pytest.mark.parametrize("body,ok", [
    ("step s = locate(color: \"red\") step a = move_to(target: s)", False),
    ("step s = locate(color: \"red\") step a = move_to(target: s ?? p)", True),
    ("step s = locate(color: \"red\") let x = s.x", False),
    ("step s = locate(color: \"red\") let x = (s ?? p).x", True),
    ("step f = read_force() when true let y = f + 1.0", False),
    ("step f = read_force() when true let y = (f ?? 0.0) + 1.0", True),
    ("step f = read_force() when true fallback 1.0", True),
    ("step s = locate(color: \"red\") let missing = s == none", True),
])
def test_optional_where_a_value_is_required_is_bbf204(body, ok):
    diags, _, _ = check_text(f"reactor R(p: Pose) on Arm {{ {body} }}", arm=True)
    mine = [c for c in codes(diags) if c.startswith("BBF2")]
    assert mine == ([] if ok else ["BBF204"])


def test_when_makes_a_step_optional():
    text = "reactor R(p: Pose) on Arm { step a = move_to(target: p) when 1 > 0 }"
    diags, facts, module = check_text(text, arm=True)
    step = decl(module, "R").body.stmts[0]
    assert facts.decl_types[step] == T.OptionalT(facts.decl_types[step].inner)
    assert str(facts.decl_types[step]) == "Pose?"


# --- BBF205 -----------------------------------------------------------------------


def test_switch_missing_an_enum_member_names_it():
    text = "enum Size { small, medium, large }\nreactor R(s: Size) -> int {\n" \
           "    switch n on s { case small { return 1 } }\n    return n\n}"
    diags, _, _ = check_text(text)
    d = only(diags, "BBF205")
    assert "`medium`, `large`" in d.message and d.span.line == 3 and d.span.column == 5


def test_switch_over_bool_and_other_types():
    assert codes(check_text("reactor R(b: bool) -> int { switch n on b { case true { return 1 } "
                            "case false { return 0 } } return n }")[0]) == []
    only(check_text("reactor R(b: bool) -> int { switch n on b { case true { return 1 } } return n }")[0], "BBF205")
    only(check_text("reactor R(i: int) -> int { switch n on i { case 1 { return 1 } } return n }")[0], "BBF205")
    assert codes(check_text("reactor R(i: int) -> int { switch n on i { case 1, 2 { return 1 } "
                            "default { fail \"no\" } } return n }")[0]) == []


def test_a_case_true_is_not_a_case_one():
    # Python's True == 1: `case true` after `case 1` was "already covered", and matched a `true` subject
    text = ('reactor R(a: any) -> str { switch n on a { case 1 { return "one" } case true { return "t" } '
            'case 0, false { return "f" } default { return "d" } } return n }')
    assert codes(check_text(text)[0]) == []
    only(check_text('reactor R(a: any) -> str { switch n on a { case 1 { return "a" } case 1.0 { return "b" } '
                    'default { return "d" } } return n }')[0], "BBF102")  # the same number twice


def test_switch_value_is_the_common_type_of_its_returns():
    text = """
reactor R(i: int) -> float {
    switch n on i { case 1 { return 1 } default { return 2.5 } }
    return n
}
"""
    diags, facts, module = check_text(text)
    assert codes(diags) == []
    assert facts.decl_types[decl(module, "R").body.stmts[0]] == T.FLOAT
    bad = text.replace("return 2.5", 'return "x"')
    only(check_text(bad)[0], "BBF201")


def test_map_value_is_a_list_of_its_body_returns():
    text = """
reactor R(stops: list[Pose]) -> list[float] on Arm {
    map xs over stops as stop concurrency 1 {
        step p = plan(p: stop)
        return p.x
    }
    return xs
}
"""
    diags, facts, module = check_text(text, arm=True)
    assert codes(diags) == []
    m = decl(module, "R").body.stmts[0]
    assert facts.decl_types[m] == T.ListT(T.FLOAT)


# --- BBF302 -----------------------------------------------------------------------


def test_missing_return_is_at_the_reactor_keyword():
    text = "\nreactor Go(p: Pose) -> Pose on Arm {\n    step a = move_to(target: p)\n}"
    d = only(check_text(text, arm=True)[0], "BBF302")
    assert (d.span.line, d.span.column) == (line_of(text, "reactor Go", arm=True), 1)


def test_stray_return_is_at_the_return():
    text = "reactor Go() {\n    let a = 1\n    return a\n}"
    d = only(check_text(text)[0], "BBF302")
    assert d.span.line == 3


def test_a_body_that_fails_needs_no_return():
    assert codes(check_text('reactor Go() -> int { fail "not yet" }')[0]) == []


# --- steps, undo, agents ----------------------------------------------------------


def test_undo_sees_the_step_result_and_command_undo_sees_args_and_result():
    text = """
robot Gantry {
    command move(to: float, speed: float = 1.0) -> float undo move(to: args.to - result)
    command bad() -> float undo move(to: args.nothing)
}
reactor R() -> float on Gantry {
    step a = move(to: 1.0) undo move(to: a)
    step b = move(to: 2.0) after a
    return b
}
"""
    diags, _, _ = check_text(text)
    assert only(diags, "BBF203").message.endswith("has no field `nothing`")


def test_where_only_on_wait_event_and_typed_by_the_payload():
    ok = "reactor R() on Arm { step f = wait_event(force) where f.newtons > 1.0 }"
    assert codes(check_text(ok, arm=True)[0]) == []
    only(check_text("reactor R() on Arm { step f = wait_event(force) where f.newton > 1.0 }", arm=True)[0],
         "BBF203")
    only(check_text("reactor R() on Arm { step f = read_force() where true }", arm=True)[0], "BBF201")


def test_agent_set_emit_schedule_and_if_are_typed():
    base = """
signal cell.start: {count: int}
signal cell.report: {count: int, note: str?}
agent A {
    state { total: int = 0  ok: bool = true }
    on cell.start as s { BODY }
    on cell.report { }
}
"""
    good = ("set total = s.data.count  emit cell.report {count: total}  "
            "schedule cell.report {count: 1, note: \"x\"} in 2s  if ok and total > 1 { set ok = false } else { }")
    assert codes(check_text(base.replace("BODY", good))[0]) == []
    for body, code in [
        ('set total = "x"', "BBF201"),
        ('emit cell.report {count: "three"}', "BBF201"),
        ("emit cell.report {}", "BBF201"),  # a record value that lacks a field is BBF201 wherever it stands
        ("emit cell.report", "BBF201"),
        ("emit cell.report {count: 1, cont: 2}", "BBF203"),
        ("schedule cell.report {count: 1} in 5", "BBF201"),
        ("if total { } else { }", "BBF201"),
        ("run nothing()", "BBF101"),
    ]:
        only(check_text(base.replace("BODY", body))[0], code)


def test_route_binding_of_a_wildcard_pattern_matching_one_signal_is_typed():
    text = """
signal cell.alarm: {level: int}
agent A {
    state { worst: int = 0 }
    on cell.* as a { set worst = a.data.level }
}
"""
    assert codes(check_text(text)[0]) == []
    only(check_text(text.replace("a.data.level", "a.data.lvl"))[0], "BBF203")


def test_standard_signals_and_safety_enum():
    text = """
signal cell.alarm
agent A on Arm {
    state { n: int = 0 }
    on robot.safety.changed as s when s.data.to == fault and s.data.from != Safety.armed { emit cell.alarm }
    on robot.event.force as f when f.data.newtons > 5.0 { set n = n + 1 }
    on cell.alarm { }
}
"""
    assert codes(check_text(text, arm=True)[0]) == []


def test_builtins():
    text = """
reactor R(xs: list[float], names: map[str]) -> str {
    let a = len(xs) + len(names) + len("abc")
    let b = min(1, 2.5) + max(xs) + abs(-3) + round(2.5) + round(2.25, 1)
    let c = str(a) + str(b) + names["k"]
    return c
}
"""
    assert codes(check_text(text)[0]) == []
    for bad, code in [("len(xs, xs)", "BBF202"), ("abs(\"a\")", "BBF201"), ("min(x: 1)", "BBF202"),
                      ("lenn(xs)", "BBF101")]:
        only(check_text(f"reactor R(xs: list[float]) {{ let a = {bad} }}")[0], code)


# --- bare enum members where the reactor's result gives the type ---------------------------

TWO_ENUMS = "enum Grip { open, closed }\nenum Door { open, shut }\n"


def test_a_bare_member_in_a_case_of_the_returned_switch_takes_the_reactor_result_type():
    # `open` is in two enums; the switch is what the reactor returns, so its cases return Grips
    diags, facts, module = check_text(TWO_ENUMS + """
reactor R(x: int) -> Grip {
    switch s on x {
        case 1 { return open }
        default { return closed }
    }
    return s
}""")
    assert not diags.items
    assert str(facts.decl_types[decl(module, "R").body.stmts[0]]) == "Grip"


def test_a_bare_member_returned_by_the_body_of_a_returned_map_takes_the_item_type():
    diags, _, _ = check_text(TWO_ENUMS + """
reactor R(xs: list[int]) -> list[Door] {
    map m over xs as x {
        switch d on x {
            case 1 { return open }
            default { return shut }
        }
        return d
    }
    return m
}""")
    assert not diags.items


def test_a_case_that_returns_a_member_of_another_enum_is_one_error_at_that_return():
    text = TWO_ENUMS + """
reactor R(x: int) -> Grip {
    switch s on x {
        case 1 { return open }
        default { return shut }
    }
    return s
}"""
    diags, _, _ = check_text(text)
    d = only(diags, "BBF201")
    assert d.span.line == line_of(text, "return shut")


def test_signal_and_event_payloads_are_records_reported_once() -> None:
    from checker_helpers import check_text, codes

    diags, _, _ = check_text("""
type Pose = {x: float, y: float, z: float}
signal n.count: int
signal n.pose: Pose
signal n.go
robot R {
    command beep()
    event level: float
}
agent A on R {
    on n.go { emit n.count {value: 1} }
    on n.count { }
    on n.pose { emit n.pose {x: 1.0, y: 2.0, z: 3.0} }
    on robot.event.level as e { }
}
""")
    assert codes(diags) == ["BBF201", "BBF201"]  # the two declarations; the emit is not reported again
    assert [d.span.line for d in diags.sorted()] == [3, 8]
    assert "name the value: `signal n.count: {value: int}`" in diags.sorted()[0].help


def test_a_record_literal_is_a_map_where_a_map_is_expected() -> None:
    from checker_helpers import check_text

    diags, _, _ = check_text("""
action tally(counts: map[int]) -> int pure = "m:tally"
reactor Counts(n: int) -> map[float] {
    step t = tally(counts: {})
    step u = tally(counts: {a: n, b: "two", c: 3})
    return {a: 1, b: 2.5, c: n, d: t + u}
}
""")
    assert [(d.code, d.span.line, d.message) for d in diags.sorted()] == [
        ("BBF201", 5, "value `b` of the map: expected int, found str")]


def test_a_record_value_is_not_a_map() -> None:
    """Width subtyping lets a record value carry more fields than its type says: only literals are maps."""
    from checker_helpers import check_text, codes

    diags, _, _ = check_text("""
type Pose = {x: float, y: float}
reactor Keys(p: Pose) -> map[float] {
    return p
}
""")
    assert codes(diags) == ["BBF201"]


# A type that failed to check (an unknown type, reported there) is never named `<error>` in another message.
@pytest.mark.parametrize(("src", "expected"), [
    ("reactor R() -> list[Nope] {\n}\n", ("BBF302", "reactor `R` declares a result but has no `return`")),
    ('type P = {x: float, y: float}\naction f(p: P) = "m:f"\nreactor R() {\n    step a = f(p: {x: nope, z: 1.0})\n}\n',
     ("BBF201", "argument `p` of `f`: expected P, found a record with fields `x`, `z`")),
    ("reactor T(a: Nope, b: int) {\n}\nreactor R() {\n    step x = T()\n}\n",
     ("BBF202", "missing arguments `a`, `b: int` to `T`")),
    ("signal s: {a: Nope}\nagent A {\n    on s as e { emit s {a: e.dat} }\n}\n",
     ("BBF203", "this record has no field `dat`")),
    ("signal s: {a: Nope}\nagent A {\n    on s { emit s }\n}\n", ("BBF201", "`s` carries a payload with fields a")),
])
def test_a_type_that_failed_to_check_is_not_shown_as_error(src: str, expected: tuple[str, str]) -> None:
    diags, _, _ = check_text(src)
    shown = [(d.code, d.message) for d in diags.sorted()]
    assert expected in shown and any(code == "BBF101" for code, _ in shown), shown
    assert not any("<error>" in " ".join((d.message, *d.notes)) for d in diags), shown


def test_one_wrong_field_name_of_a_payload_is_one_diagnostic_with_the_missing_name() -> None:
    diags, _, _ = check_text("signal s: {a: int}\nagent A {\n    on s { emit s {b: 1} }\n}\n")
    d = only(diags, "BBF203")  # was BBF203 for `b` and BBF201 "`s` needs field `a`": one mistake, two reports
    assert d.message == "`s` has no field `b`" and d.help == "did you mean `a`?"


def test_min_and_max_take_any_number_of_values_and_say_so():
    """`max` of 100 values was refused with "`max` takes at least 1 arguments, 100 given" (99 stood for no bound)."""
    values = ", ".join(["1.5"] * 100)
    assert codes(check_text(f"reactor R() -> float {{ return max({values}) + min({values}) }}")[0]) == []
    assert only(check_text("reactor R() { let a = max() }")[0], "BBF202").message == \
        "`max` takes at least 1 argument, 0 given"
    assert only(check_text("reactor R() { let a = len() }")[0], "BBF202").message == "`len` takes 1 argument, 0 given"
    assert only(check_text("reactor R() { let a = round() }")[0], "BBF202").message == \
        "`round` takes 1 to 2 arguments, 0 given"


def test_a_reactors_concurrency_is_at_least_1_as_a_maps():
    """`concurrency 0` on a reactor checked clean (the runtime took it for 1); on a map it was refused."""
    text = "reactor R(xs: list[int]) -> int {{\n    concurrency {}\n    map m over xs as x concurrency {} {{ return x }}\n" \
           "    return len(m)\n}}\n"
    assert [(d.code, d.message, d.span.line) for d in check_text(text.format(0, 0))[0].items] == [
        ("BBF201", "a reactor's concurrency is at least 1", 2), ("BBF201", "a map's concurrency is at least 1", 3)]
    assert codes(check_text(text.format(1, 1))[0]) == []


@pytest.mark.parametrize("alias", ["A", "list[A]", "{parts: map[A]}", "{next: A?}"])
def test_a_type_defined_in_terms_of_itself_gets_a_help_that_works(alias):
    """The help said "use a list or `any` to break the loop", and `type A = list[A]` was refused all the same."""
    found = only(check_text(f"type A = {alias}\nreactor R(a: A) -> int {{ return 1 }}")[0], "BBF201")
    assert found.message == "type `A` is defined in terms of itself"
    assert found.help == "a type cannot contain itself, not even in a list, a map or an optional; write `any` where it would"
    assert codes(check_text(f"type A = {alias.replace('A', 'any')}\nreactor R(a: A) -> int {{ return 1 }}")[0]) == []


class _ScannedMembers(tuple):
    def __contains__(self, item: object) -> bool:
        raise AssertionError("an enum's members searched one by one")


def test_a_member_is_looked_up_in_a_set_not_searched_member_by_member(monkeypatch):
    """Each `case m123` or `E.m123` searched the enum's tuple of members: a switch over an enum of n members
    cost n**2 (32,000 members: 13 s to check, 4 s now)."""
    from bbflow.compiler.semantic.resolve import Resolver

    made = Resolver.enum_type

    def enum_type(self, sym):
        enum = made(self, sym)
        return T.EnumT(enum.qualname, _ScannedMembers(enum.members))

    monkeypatch.setattr(Resolver, "enum_type", enum_type)
    text = ("enum E { a, b, c }\nreactor R(e: E) -> E {\n    switch s on e {\n        case a { return E.b }\n"
            "        case b, c { return c }\n    }\n    return s\n}\n")
    assert codes(check_text(text)[0]) == []
    assert only(check_text(text.replace("E.b", "E.d"))[0], "BBF101").message == "enum `E` has no member `d`"


def test_a_timeout_of_no_time_is_refused_where_it_is_written():
    """`timeout 0s` checked clean; a run then failed at once ("did not finish within its timeout of 0ms")."""
    text = ("robot Arm {\n    command go() -> int timeout 0ms\n    command back() -> int\n}\n"
            "reactor R() -> int on Arm {\n    timeout 0s\n    step a = go() timeout 0.0s undo back()\n"
            "    step b = back() timeout 1ms after a\n    return b\n}\n")
    found = [(d.code, d.message, d.span.line) for d in check_text(text)[0].items]
    assert found == [
        ("BBF201", "a timeout is more than 0s: with `timeout 0ms` every call of `go` would time out at once", 2),
        ("BBF201", "a timeout is more than 0s: with `timeout 0s` every run of `R` would time out at once", 6),
        ("BBF201", "a timeout is more than 0s: with `timeout 0.0s` every attempt of `a` would time out at once", 7)]
    fixed = text.replace("0ms", "5s").replace("timeout 0s", "timeout 1m").replace("0.0s", "2s")
    assert codes(check_text(fixed)[0]) == []
