"""The parser: every construct of the language (docs/language.md) to the AST, positions, literals and keywords."""

from __future__ import annotations

from pathlib import Path

import pytest

from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.syntax.parser import flow_parser, parse_module, parse_text
from bbflow.compiler.source import SourceFile, Span
from bbflow.compiler.diagnostics.suggest import closest, edit_distance
from shared_cases import case_params, cases



def ok(text: str) -> ast.Module:
    module, diags = parse_text(text, "t.flow", "cell.t")
    assert [(d.code, d.message) for d in diags] == []
    return module


def errors(text: str) -> list[tuple[str, int, int, str]]:
    _, diags = parse_text(text, "t.flow")
    return [(d.code, d.span.line, d.span.column, d.message) for d in diags]


def expr(src: str) -> ast.Expr:
    reactor = ok(f"reactor R() -> any {{ let x = {src}\n return x }}").decls[0]
    assert isinstance(reactor, ast.ReactorDecl)
    let = reactor.body.stmts[0]
    assert isinstance(let, ast.LetStmt)
    return let.value


def sexpr(e: object) -> str:
    """A compact rendering of an expression, parenthesised by structure."""
    match e:
        case ast.Binary(op=op, left=l, right=r):
            return f"({sexpr(l)} {op} {sexpr(r)})"
        case ast.Unary(op=op, operand=x):
            return f"({op} {sexpr(x)})"
        case ast.Name(ident=i):
            return i.name
        case ast.Attr(obj=o, name=n):
            return f"{sexpr(o)}.{n.name}"
        case ast.Index(obj=o, index=i):
            return f"{sexpr(o)}[{sexpr(i)}]"
        case ast.CallExpr(callee=c, args=args):
            return f"{sexpr(c)}(" + ", ".join(
                (f"{a.name.name}: " if a.name else "") + sexpr(a.value) for a in args) + ")"
        case ast.IntLit(value=v) | ast.FloatLit(value=v) | ast.BoolLit(value=v):
            return repr(v)
        case ast.StrLit(value=v):
            return repr(v)
        case ast.NoneLit():
            return "none"
        case ast.DurationLit(text=t):
            return t
        case ast.ListExpr(items=items):
            return "[" + ", ".join(sexpr(i) for i in items) + "]"
        case ast.RecordExpr(fields=fields):
            return "{" + ", ".join(f"{f.name.name}: {sexpr(f.value)}" for f in fields) + "}"
    raise AssertionError(e)


# ---- the conformance files ---------------------------------------------------------------


@pytest.mark.parametrize("path", case_params(cases("check", "*.flow"), {}))
def test_conformance_files_parse(path: Path) -> None:
    _, diags = parse_text(path.read_text(encoding="utf-8"), str(path))
    found = [(d.code, d.span.line) for d in diags]
    expected = {"002_syntax_missing_equals": [("BBF001", 14)], "003_bad_escape": [("BBF002", 4)]}
    assert found == expected.get(path.stem, [])


def test_missing_equals_says_what_was_expected_and_keeps_the_step() -> None:
    module, diags = parse_text("reactor Beep() {\n    step a beep()\n}\n", "b.flow")
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("BBF001", 2, 12)
    assert d.message == "expected `=` after the step name `a`, found `beep`"
    step = module.decls[0].body.stmts[0]
    assert isinstance(step, ast.StepStmt) and sexpr(step.call) == "beep()"


def test_bad_escape_points_at_the_literal() -> None:
    (d,) = parse_text('action say(text: str) = "m:f"\nreactor H() {\n  step a = say(text: "hello \\q")\n}\n')[1]
    assert (d.code, d.span.line, d.span.column) == ("BBF002", 3, 22)
    assert "`\\q`" in d.message and d.help is not None
    assert d.labels[0].span.column == 29


# ---- declarations -------------------------------------------------------------------------


def test_imports() -> None:
    m = ok("from cell.arm import Arm, Pose as P\nimport cell.arm as arm\nimport std.prelude\n")
    f, a, b = m.imports
    assert isinstance(f, ast.FromImport) and [i.name for i in f.module] == ["cell", "arm"]
    assert [(n.name.name, n.alias.name if n.alias else None) for n in f.names] == [("Arm", None), ("Pose", "P")]
    assert isinstance(a, ast.ModuleImport) and a.alias is not None and a.alias.name == "arm"
    assert isinstance(b, ast.ModuleImport) and b.alias is None and [i.name for i in b.module] == ["std", "prelude"]
    assert m.decls == () and m.name == "cell.t" and m.file == "t.flow"


def test_types_and_enums() -> None:
    m = ok("type Pose = {x: float, y: float,}\ntype L = list[Pose?]\ntype M = map[arm.Pose]?\n"
           "type E = {}\nenum Grip { open, closed, }\n")
    pose, lst, mp, empty, grip = m.decls
    assert ast.dump(pose.type) == {"_": "RecordType", "fields": [
        {"_": "FieldType", "name": {"_": "Ident", "name": "x"},
         "type": {"_": "NamedType", "parts": [{"_": "Ident", "name": "float"}]}},
        {"_": "FieldType", "name": {"_": "Ident", "name": "y"},
         "type": {"_": "NamedType", "parts": [{"_": "Ident", "name": "float"}]}}]}
    assert isinstance(lst.type, ast.ListType) and isinstance(lst.type.item, ast.OptionalType)
    assert isinstance(mp.type, ast.OptionalType) and isinstance(mp.type.inner, ast.MapType)
    assert mp.type.inner.item.dotted == "arm.Pose"
    assert empty.type.fields == ()
    assert [i.name for i in grip.members] == ["open", "closed"]


def test_signals_with_and_without_payload() -> None:
    m = ok("signal pick.requested: {pick: Pose}\nsignal cell.alarm\nsignal robot.state.changed: {to: str}\n")
    a, b, c = m.decls
    assert a.type.text == "pick.requested" and isinstance(a.payload, ast.RecordType)
    assert b.type.text == "cell.alarm" and b.payload is None
    assert c.type.text == "robot.state.changed"  # keywords inside a signal type


def test_robot_with_every_item() -> None:
    m = ok("""
robot Arm {
    states idle, busy
    limit motion 1
    command move_to(target: Pose, speed: float = 0.5) -> Pose
        category motion timeout 10s allowed idle, busy
    command close_gripper(force: float = 20.0) -> Grip
        undo open_gripper()
    command read_force() -> float readonly
    command stop()
    event force: {newtons: float}
    event bump
}
""")
    (robot,) = m.decls
    assert isinstance(robot, ast.RobotDecl) and robot.name.name == "Arm"
    assert [n.name for n in robot.states[0].names] == ["idle", "busy"]
    assert (robot.limits[0].category.name, robot.limits[0].limit) == ("motion", 1)
    move, close, read, stop = robot.commands
    assert [p.name.name for p in move.params] == ["target", "speed"]
    assert sexpr(move.params[1].default) == "0.5" and move.params[0].default is None
    assert move.category is not None and move.category.name == "motion"
    assert move.timeout is not None and move.timeout.seconds == 10.0
    assert [s.name for s in move.allowed] == ["idle", "busy"] and not move.readonly
    assert close.undo is not None and sexpr(close.undo) == "open_gripper()"
    assert read.readonly and read.allowed == () and read.undo is None
    assert stop.result is None and stop.params == ()
    assert [(e.name.name, e.payload is None) for e in robot.events] == [("force", False), ("bump", True)]


def test_actions() -> None:
    m = ok('action locate(color: str) -> Pose? pure = "cell.vision:locate"\naction say(text: str) = "cell.voice:say"')
    locate, say = m.decls
    assert locate.pure and isinstance(locate.result, ast.OptionalType) and locate.target.value == "cell.vision:locate"
    assert not say.pure and say.result is None


# ---- reactors -----------------------------------------------------------------------------


def test_reactor_header_options_and_every_step_modifier() -> None:
    m = ok("""
reactor P(pick: Pose, place: Pose) -> Pose on Arm {
    concurrency 2
    timeout 60s
    step ready = wait_state(idle, busy) timeout 5s
    step a = move_to(target: pick) after ready retry 2 backoff 200ms max 1s undo home()
    step g = wait_event(force) where g.newtons > 5.0 timeout 2s after a, ready
    step f = read_force() when a.x > 0 fallback 0.0
    step r = open_gripper() irreversible "placed"
    step i = arm.Inner(p: pick)
    return a
}
reactor Home() on Arm { step h = home() }
reactor Empty() { }
""")
    p, home, empty = m.decls
    assert [(o.kind, sexpr(o.value)) for o in p.options] == [("concurrency", "2"), ("timeout", "60s")]
    assert p.robot is not None and p.robot.dotted == "Arm" and p.result.dotted == "Pose"
    ready, a, g, f, r, i, ret = p.body.stmts
    assert sexpr(ready.call) == "wait_state(idle, busy)"
    assert ready.modifier(ast.TimeoutMod).duration.seconds == 5.0
    retry = a.modifier(ast.RetryMod)
    assert (retry.attempts.value, retry.backoff.seconds, retry.max.seconds) == (2, 0.2, 1.0)
    assert [type(x).__name__ for x in a.modifiers] == ["AfterMod", "RetryMod", "UndoMod"]
    assert sexpr(a.modifier(ast.UndoMod).call) == "home()"
    assert sexpr(g.modifier(ast.WhereMod).cond) == "(g.newtons > 5.0)"
    assert [n.name for n in g.modifier(ast.AfterMod).names] == ["a", "ready"]
    assert sexpr(f.modifier(ast.WhenMod).cond) == "(a.x > 0)" and sexpr(f.modifier(ast.FallbackMod).value) == "0.0"
    assert r.modifier(ast.IrreversibleMod).reason.value == "placed"
    assert sexpr(i.call) == "arm.Inner(p: pick)" and isinstance(i.call.callee, ast.Attr)
    assert isinstance(ret, ast.ReturnStmt) and sexpr(ret.value) == "a"
    assert home.params == () and home.result is None and home.options == ()
    assert empty.robot is None and empty.body.stmts == ()


def test_retry_without_backoff_and_backoff_without_max() -> None:
    r = ok("reactor R() { step a = b() retry 1\n step c = d() retry 3 backoff 1s }").decls[0]
    one, three = (s.modifier(ast.RetryMod) for s in r.body.stmts)
    assert (one.attempts.value, one.backoff, one.max) == (1, None, None)
    assert (three.backoff.seconds, three.max) == (1.0, None)


def test_switch_map_let_fail() -> None:
    m = ok("""
reactor T(stops: list[Pose], g: Grip) -> list[Pose] on Arm {
    let count = len(stops)
    map visited over stops as stop concurrency 2 {
        step v = visit(p: stop)
        return v
    }
    map again over stops as s { return s }
    switch outcome on g {
        case open, Grip.closed { fail "no" }
        case half { return visited }
        default { step x = y()  return [x] }
    }
    switch s2 on count { case 1 { return visited } }
    return visited
}
""")
    let, mp, mp2, sw, sw2, ret = m.decls[0].body.stmts
    assert isinstance(let, ast.LetStmt) and sexpr(let.value) == "len(stops)"
    assert (mp.name.name, sexpr(mp.over), mp.item.name, mp.concurrency.value) == ("visited", "stops", "stop", 2)
    assert [type(s).__name__ for s in mp.body.stmts] == ["StepStmt", "ReturnStmt"]
    assert mp2.concurrency is None
    assert sw.name.name == "outcome" and sexpr(sw.subject) == "g"
    assert [[sexpr(v) for v in c.values] for c in sw.cases] == [["open", "Grip.closed"], ["half"]]
    assert isinstance(sw.cases[0].body.stmts[0], ast.FailStmt) and sw.cases[0].body.stmts[0].message.value == "no"
    assert sw.default is not None and [type(s).__name__ for s in sw.default.stmts] == ["StepStmt", "ReturnStmt"]
    assert sw2.default is None


# ---- agents -------------------------------------------------------------------------------


def test_agent_with_every_statement() -> None:
    m = ok("""
agent Picker on Arm {
    state {
        busy: bool = false
        done: int = 0, log: list[str] = []
    }
    on pick.requested as req when not busy priority 2 {
        set busy = true
        run PickAndPlace(pick: req.data.pick)
            then { set busy = false  emit pick.completed {at: result} }
            else { emit pick.failed {reason: error.message} }
        run home()
        if done > 3 { emit cell.tired } else if busy { schedule cell.tick in 5s } else { set done = 0 }
        schedule cell.again {n: 1} in 250ms
    }
    on pick.requested priority -1 { emit pick.rejected {reason: "busy"} }
    on robot.event.** { }
    on cell.*.x { }
}
agent Coordinator { on a.b { } }
""")
    picker, coord = m.decls
    assert [(f.name.name, sexpr(f.default)) for f in picker.state] == [("busy", "False"), ("done", "0"), ("log", "[]")]
    r1, r2, r3, r4 = picker.routes
    assert (r1.pattern.text, r1.bind.name, sexpr(r1.when), r1.priority) == ("pick.requested", "req", "(not busy)", 2)
    set_, run, run2, if_, sched = r1.body
    assert isinstance(set_, ast.SetStmt) and set_.field.name == "busy"
    assert sexpr(run.call) == "PickAndPlace(pick: req.data.pick)"
    assert [type(s).__name__ for s in run.then] == ["SetStmt", "EmitStmt"]
    assert run.then[1].type.text == "pick.completed" and sexpr(run.then[1].data) == "{at: result}"
    assert len(run.else_) == 1 and run2.then is None and run2.else_ is None
    assert sexpr(if_.cond) == "(done > 3)" and if_.then[0].data is None
    (nested,) = if_.else_
    assert isinstance(nested, ast.IfStmt) and isinstance(nested.then[0], ast.ScheduleStmt)
    assert nested.then[0].data is None and sexpr(nested.then[0].delay) == "5s"
    assert isinstance(nested.else_[0], ast.SetStmt)
    assert sexpr(sched.data) == "{n: 1}" and sexpr(sched.delay) == "250ms"
    assert r2.priority == -1 and r2.bind is None and r2.when is None
    assert (r3.pattern.text, r3.body) == ("robot.event.**", ())
    assert r4.pattern.text == "cell.*.x"
    assert coord.robot is None and coord.state == ()


# ---- expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "tree"), [
    ("1 + 2 * 3", "(1 + (2 * 3))"),
    ("1 - 2 - 3", "((1 - 2) - 3)"),
    ("8 / 4 / 2", "((8 / 4) / 2)"),
    ("-a.b * 2", "((- a.b) * 2)"),
    ("- - 1", "(- (- 1))"),
    ("a or b and c", "(a or (b and c))"),
    ("not a and b", "((not a) and b)"),
    ("not a == b", "(not (a == b))"),
    ("a < b + 1", "(a < (b + 1))"),
    ("a ?? b + 1", "(a ?? (b + 1))"),
    ("a ?? b == c", "((a ?? b) == c)"),
    ("a ?? b ?? c", "(a ?? (b ?? c))"),
    ("(1 + 2) * 3", "((1 + 2) * 3)"),
    ("a != b or c >= d", "((a != b) or (c >= d))"),
    ("a <= b and c > d", "((a <= b) and (c > d))"),
    ("xs[0].y[i + 1]", "xs[0].y[(i + 1)]"),
    ("max(a, b) + min(c, 1)", "(max(a, b) + min(c, 1))"),
    ("round(x: 1.5)", "round(x: 1.5)"),
    ('[1, "a", none, true, false, 2s,]', "[1, 'a', none, True, False, 2s]"),
    ("{x: 1.0, y: {z: []}}", "{x: 1.0, y: {z: []}}"),
    ("{}", "{}"),
    ("arm.Grip.open", "arm.Grip.open"),
])
def test_expression_precedence(src: str, tree: str) -> None:
    assert sexpr(expr(src)) == tree


def test_comparisons_do_not_chain() -> None:
    (code, line, _col, message), = errors("reactor R() { let x = a < b < c }")
    assert code == "BBF001" and "`<`" in message


@pytest.mark.parametrize(("src", "kind", "value"), [
    ("42", ast.IntLit, 42), ("1_000", ast.IntLit, 1000), ("0.5", ast.FloatLit, 0.5), ("1e-3", ast.FloatLit, 0.001),
    ("2.5E+2", ast.FloatLit, 250.0), ("250ms", ast.DurationLit, 0.25), ("5s", ast.DurationLit, 5.0),
    ("1.5s", ast.DurationLit, 1.5), ("2m", ast.DurationLit, 120.0), ("1h", ast.DurationLit, 3600.0),
    ('"a\\"b\\\\c\\nd\\te"', ast.StrLit, 'a"b\\c\nd\te'), ('"\\u{1F916}!"', ast.StrLit, "\U0001F916!"),
    ('""', ast.StrLit, ""), ('"# not a comment"', ast.StrLit, "# not a comment"),
])
def test_literals(src: str, kind: type, value: object) -> None:
    e = expr(src)
    assert isinstance(e, kind)
    assert (e.seconds if isinstance(e, ast.DurationLit) else e.value) == value
    if isinstance(e, ast.DurationLit):
        assert e.text == src


@pytest.mark.parametrize(("src", "fragment"), [
    ("12mss", "unknown unit `mss`"),
    ("1__0", "`_` may only stand between two digits"),
    ("1e", "exponent"),
    ('"abc', "unterminated string"),
    ('"a\\qb"', "unknown escape `\\q`"),
    ('"\\u{110000}"', "bad unicode escape"),
    ("1e999", "number `1e999` is too large"),  # was infinity, and a BBF900 after `limit motion`
    ("9" * 400 + ".0h", "is too large"),
])
def test_malformed_literals_are_bbf002(src: str, fragment: str) -> None:
    found = errors(f"reactor R() {{\n  let x = {src}\n}}")
    assert len(found) == 1
    code, line, column, message = found[0]
    assert (code, line, column) == ("BBF002", 2, 11) and fragment in message


def test_a_limit_past_the_largest_float_is_bbf002_not_a_crash() -> None:
    assert errors("robot A {\n  limit motion 1e999\n}") == [
        ("BBF002", 2, 16, "number `1e999` is too large (a float is at most about 1.8e308)")]


def test_numbers_of_the_wrong_kind() -> None:
    found = errors("robot A { limit motion 1.5 }\nreactor R() {\n concurrency 2s\n step a = b() timeout 5 retry 1s }")
    assert [(c, l) for c, l, _, _ in found] == [("BBF001", 1), ("BBF001", 3), ("BBF001", 4), ("BBF001", 4)]
    assert "expected a duration after `timeout`, found `5`" in found[2][3]


# ---- keywords -----------------------------------------------------------------------------


def test_keywords_are_names_where_no_keyword_is_expected() -> None:
    m = ok("""
type Msg = {state: str, step: int, max: float}
signal robot.state.changed: {from: str, to: str}
reactor R(m: Msg) -> float {
    let a = m.state
    let b = max(m.max, 1.0)
    let c = {state: "x", in: 1, if: 2}
    step d = act(state: m.step)
    return b
}
agent A { on robot.state.changed as s when s.data.from == "idle" { emit run.now } }
""")
    msg, sig, r, a = m.decls
    assert [f.name.name for f in msg.type.fields] == ["state", "step", "max"]
    assert sig.type.text == "robot.state.changed"
    let_a, let_b, let_c, step_d, _ = r.body.stmts
    assert sexpr(let_a.value) == "m.state" and sexpr(let_b.value) == "max(m.max, 1.0)"
    assert sexpr(let_c.value) == "{state: 'x', in: 1, if: 2}"
    assert sexpr(step_d.call) == "act(state: m.step)"
    assert a.routes[0].body[0].type.text == "run.now"


@pytest.mark.parametrize(("src", "what"), [
    ("type step = int", "a type"), ("enum map { a }", "a type"), ("robot run { }", "a robot"),
    ("robot A { command set() }", "a command"), ('action then() = "a:b"', "an action"),
    ("reactor if() { }", "a reactor"), ("agent on { }", "an agent"), ("reactor R() { step let = a() }", "a step"),
    ("reactor R(in: int) { }", "a parameter"), ("agent A { state { emit: int = 0 } }", "a state field"),
])
def test_keywords_cannot_name_declarations(src: str, what: str) -> None:
    module, diags = parse_text(src)
    (d,) = diags
    assert d.code == "BBF001" and d.message.endswith(f"is a keyword and cannot name {what}")  # "a action" was wrong
    assert len(module.decls) == 1  # still declared: no cascade of unknown names


def test_a_longer_word_is_not_a_keyword() -> None:
    found = errors("reactor R() { step a = b() steps c = d() }")
    assert [(c, l, col) for c, l, col, _ in found] == [("BBF001", 1, 28)]
    assert "found `steps`" in found[0][3]


# ---- modifiers given twice ---------------------------------------------------------------------


def test_a_step_modifier_given_twice() -> None:
    module, diags = parse_text("reactor R() {\n step x = a() timeout 1s after b\n   timeout 2s }")
    (d,) = diags
    assert (d.code, d.span.line, d.span.column) == ("BBF001", 3, 4)
    assert d.message == "`timeout` is given twice for step `x`"
    assert d.labels[0].span.line == 2
    assert len(module.decls[0].body.stmts[0].modifiers) == 3


def test_a_command_modifier_or_reactor_option_given_twice() -> None:
    found = errors("robot A { command c() readonly category m readonly }\nreactor R() { concurrency 1 concurrency 2 }")
    assert [m for *_, m in found] == ["`readonly` is given twice for command `c`",
                                      "`concurrency` is given twice for the reactor"]


def test_reactor_options_only_before_the_first_statement() -> None:
    (d,) = parse_text("reactor R() { step a = b()\n concurrency 2 }")[1]
    assert d.code == "BBF001" and d.span.line == 2
    assert d.help is not None and "before its first statement" in d.help


def test_return_and_fail_end_a_block() -> None:
    (d,) = parse_text("reactor R() -> int {\n return 1\n step a = b()\n}")[1]
    assert (d.code, d.span.line) == ("BBF001", 3)
    assert d.message.startswith("`return` must be the last statement of its block")


# ---- positions ------------------------------------------------------------------------------


def test_spans() -> None:
    text = ("# head\nreactor R(p: Pose) -> Pose on Arm {\n"
            "    step a = move_to(target: p) after b   # tail\n"
            "    return a\n}\n")
    m = ok(text)
    r = m.decls[0]
    assert r.span == Span("t.flow", 2, 1, 5, 2)
    assert r.name.span == Span("t.flow", 2, 9, 2, 10)
    assert r.params[0].span == Span("t.flow", 2, 11, 2, 18)
    step = r.body.stmts[0]
    assert step.span == Span("t.flow", 3, 5, 3, 40)
    assert step.name.span == Span("t.flow", 3, 10, 3, 11)
    assert step.call.span == Span("t.flow", 3, 14, 3, 32)
    assert step.call.args[0].name.span == Span("t.flow", 3, 22, 3, 28)
    assert step.modifiers[0].span == Span("t.flow", 3, 33, 3, 40)
    assert step.modifiers[0].names[0].span == Span("t.flow", 3, 39, 3, 40)
    assert r.body.stmts[1].span == Span("t.flow", 4, 5, 4, 13)
    assert [(c.text, c.span) for c in m.comments] == [
        ("# head", Span("t.flow", 1, 1, 1, 7)), ("# tail", Span("t.flow", 3, 43, 3, 49))]


def test_expression_spans() -> None:
    e = expr("a.b + f(x)[0]")
    assert isinstance(e, ast.Binary)
    assert (e.span.column, e.span.end_column) == (30, 43)  # the expression starts at column 30
    assert (e.left.span.column, e.left.span.end_column) == (30, 33)
    assert e.left.name.span.column == 32
    assert (e.right.span.column, e.right.span.end_column) == (36, 43)


def test_route_and_signal_spans_start_at_their_keywords() -> None:
    m = ok("signal a.b\nagent A {\n  on a.b as s { emit a.b }\n}")
    sig, agent = m.decls
    assert sig.span.column == 1 and sig.type.span == Span("t.flow", 1, 8, 1, 11)
    route = agent.routes[0]
    assert (route.span.line, route.span.column) == (3, 3)
    assert route.pattern.span == Span("t.flow", 3, 6, 3, 9)
    assert route.body[0].span == Span("t.flow", 3, 17, 3, 25)


# ---- API and helpers ----------------------------------------------------------------------------


def test_parse_module_appends_to_the_given_bag() -> None:
    diags = Diagnostics()
    diags.warning("BBF999", "earlier", Span.point("x", 1, 1))
    module = parse_module(SourceFile("m.flow", "type T = int\nx"), "pkg.m", diags)
    assert [d.code for d in diags] == ["BBF999", "BBF001"]
    assert module.name == "pkg.m" and len(module.decls) == 1


def test_empty_and_comment_only_files() -> None:
    assert ok("").decls == ()
    m = ok("# only a comment")
    assert m.decls == () and [c.text for c in m.comments] == ["# only a comment"]


def test_the_parser_is_built_once() -> None:
    assert flow_parser() is flow_parser()


def test_no_anonymous_terminals() -> None:
    assert not [t.name for t in flow_parser().terminals if "ANON" in t.name]


def test_internal_errors_become_bbf900(monkeypatch: pytest.MonkeyPatch) -> None:
    import bbflow.compiler.syntax.parser as parser

    def broken(*_args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(parser, "build_module", broken)  # after a syntax error: the driver's tree
    module, diags = parse_text("type T = int\ntype = 1")
    assert [d.code for d in diags] == ["BBF900", "BBF001"] and module.decls == ()
    assert [d.code for d in parse_text("type T = int")[1]] == []  # a clean file does not build from a tree
    monkeypatch.setattr(parser, "parse_clean", broken)  # a clean file: the fast path
    module, diags = parse_text("type T = int")
    assert [d.code for d in diags] == ["BBF900"] and module.decls == ()


def test_closest() -> None:
    assert closest("stpe", ["step", "set", "state", "let"]) == ["step"]
    assert closest("recator", ["reactor", "robot", "agent"]) == ["reactor"]
    assert closest("Step", ["step"]) == ["step"]
    assert closest("step", ["step"]) == []
    assert closest("zzzz", ["step"]) == []
    assert closest("pos", ["pose", "post", "pos2", "posx"], limit=2) == ["pos2", "pose"]
    assert edit_distance("ab", "ba") == 1 and edit_distance("", "abc") == 3


def test_if_without_else_in_a_route() -> None:
    module, diags = parse_text("signal a\nagent A { on a { if true { emit a } } }")
    assert list(diags) == []
    stmt = module.decls[1].routes[0].body[0]
    assert isinstance(stmt, ast.IfStmt) and stmt.else_ is None and len(stmt.then) == 1


def test_a_chained_comparison_says_comparisons_do_not_chain() -> None:
    _, diags = parse_text("reactor R(a: int, b: int, c: int) -> bool { let x = a < b < c return x }")
    [d] = diags.items
    assert (d.code, d.span.line, d.span.column) == ("BBF001", 1, 59)
    assert d.help == "comparisons do not chain: write `a < b and b < c`"
