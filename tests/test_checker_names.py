"""Name resolution: BBF101 (with "did you mean"), BBF102, and the Refs/CallTargets in Facts."""

from __future__ import annotations

from checker_helpers import check_text, codes, decl, line_of, only

from bbflow.compiler import ast
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import CallKind, RefKind


def test_a_correct_reactor_has_no_diagnostics_and_every_call_and_name_resolves():
    text = """
reactor Go(pick: Pose) -> Pose on Arm {
    step ready = wait_state(idle, busy)
    step a = move_to(target: pick, speed: 1) after ready undo move_to(target: pick)
    step g = grip() after a
    step f = wait_event(force) where f.newtons > 2.0 after g
    let up = {x: a.x, y: a.y, z: a.z + f.newtons}
    step b = move_to(target: up) after f
    return b
}
"""
    diags, facts, module = check_text(text, arm=True)
    assert codes(diags) == []
    go = decl(module, "Go")
    assert facts.robots_of[go] == "main.Arm"
    assert facts.qualnames[go] == "main.Go" and facts.decls["main.Go"] is go
    steps = {s.name.name: s for s in go.body.stmts if isinstance(s, ast.StepStmt)}
    move = facts.call(steps["a"].call)
    assert move.kind is CallKind.COMMAND and move.qualname == "main.Arm.move_to"
    assert move.effectful and move.category == "motion" and move.limit == 1
    assert set(move.args) == {"target", "speed"}
    grip = facts.call(steps["g"].call)
    assert grip.default_undo is not None and grip.default_undo.callee.ident.name == "release"
    assert facts.call(steps["ready"].call).args == {"states": ("idle", "busy")}
    assert facts.call(steps["f"].call).args == {"event": "force"}
    assert facts.decl_types[steps["f"]] == T.RecordT((("newtons", T.FLOAT),))
    assert facts.decl_types[steps["ready"]] == T.STR
    # the name in `move_to(target: pick)` is the reactor's input
    target = steps["a"].call.args[0].value
    assert facts.ref(target).kind is RefKind.PARAM and facts.type_of(target).name == "Pose"
    # `after ready` resolves to the step (keyed by the identifier)
    after = steps["a"].modifier(ast.AfterMod)
    assert facts.refs[after.names[0]].decl is steps["ready"]


def test_unknown_input_is_bbf101_with_did_you_mean_at_the_name():
    text = """
reactor Go(pick: Pose) -> Pose on Arm {
    step a = move_to(target: pik)
    return a
}
"""
    diags, _, _ = check_text(text, arm=True)
    d = only(diags, "BBF101")
    assert d.help == "did you mean `pick`?"
    assert (d.span.line, d.span.column) == (line_of(text, "pik)", arm=True), 30)


def test_unknown_command_suggests_the_closest_command():
    diags, _, _ = check_text("reactor Go(p: Pose) on Arm { step a = mvoe_to(target: p) }", arm=True)
    assert only(diags, "BBF101").help == "did you mean `move_to`?"


def test_a_command_is_unknown_where_the_reactor_is_not_on_its_robot_and_a_note_says_why():
    diags, _, _ = check_text("reactor Go(p: Pose) { step a = move_to(target: p) }", arm=True)
    d = only(diags, "BBF101")
    assert "`move_to` is a command of `Arm`" in d.message and d.help is not None and "add `on Arm`" in d.help


def test_arm_and_disarm_are_built_in_commands():
    diags, facts, module = check_text(
        'reactor Up() on Arm { step a = arm() irreversible "power" step b = disarm() after a }', arm=True)
    assert codes(diags) == []
    step = decl(module, "Up").body.stmts[0]
    target = facts.call(step.call)
    assert target.kind is CallKind.COMMAND and target.qualname == "main.Arm.arm" and target.effectful


def test_unknown_type_state_event_after_and_enum_member():
    cases = {
        "reactor R(p: Pos) on Arm { }": "did you mean `Pose`?",
        "reactor R() on Arm { step w = wait_state(idel) }": "did you mean `idle`?",
        "reactor R() on Arm { step w = wait_event(forse) }": "did you mean `force`?",
        "reactor R() on Arm { step a = beep() step b = beep() after aa }": None,
        "reactor R() -> Grip { let g = Grip.opne return g }": "did you mean `open`?",
        "reactor R() on Ram { }": "did you mean `Arm`?",
    }
    for text, help_text in cases.items():
        diags, _, _ = check_text(text, arm=True)
        d = only(diags, "BBF101")
        if help_text:
            assert d.help == help_text, (text, d)


def test_after_names_a_step():
    diags, _, _ = check_text("reactor R(n: int) on Arm { step a = beep() after n }", arm=True)
    assert "not a step" in only(diags, "BBF101").message


def test_allowed_states_must_exist():
    diags, _, _ = check_text("robot R { states idle, busy  command go() allowed idle, bsy }")
    assert only(diags, "BBF101").help == "did you mean `busy`?"


def test_set_of_an_unknown_state_field_suggests_the_field():
    text = """
signal cell.start
agent A {
    state { total: int = 0 }
    on cell.start { set totl = 1 }
}
"""
    diags, _, _ = check_text(text)
    assert only(diags, "BBF101").help == "did you mean `total`?"


def test_duplicate_step_is_bbf102_at_the_second_with_a_label_at_the_first():
    text = """
reactor Twice() -> int {
    let a = 1
    let a = 2
    return a
}
"""
    diags, _, _ = check_text(text)
    d = only(diags, "BBF102")
    assert d.span.line == 4 and d.labels[0].span.line == 3 and d.labels[0].message == "first defined here"


def test_duplicates_in_every_scope():
    cases = [
        "type P = int\nenum P { a }",
        "enum E { a, a }",
        "type R = {x: int, x: float}",
        "action f(a: int, a: int) = \"m:f\"",
        "robot R { states idle, busy, busy }",
        "robot R { command go()  command go() }",
        "robot R { event e  event e }",
        "robot R { states armed }",
        "signal s.a\nsignal s.a\nagent A { on s.a { } }",
        "signal s.a\nagent A { state { n: int = 0  n: int = 1 } on s.a { } }",
        "reactor R(x: int) -> int { let x = 1 return x }",
        "reactor R(xs: list[int]) -> list[int] { map m over xs as xs { return 1 } return m }",
        "reactor R() -> int { let v = {a: 1, a: 2} return 1 }",
        "enum E { a, b }\nreactor R(e: E) -> int { switch s on e { case a { return 1 } case a, b { return 2 } } return s }",
        "reactor R() -> int { let a = 1 let b = 2 return 1 }\nreactor R() { }",
    ]
    for text in cases:
        diags, _, _ = check_text(text)
        only(diags, "BBF102")


def test_a_module_may_reuse_a_prelude_name():
    diags, _, _ = check_text("enum Safety { on_, off_ }\nreactor R(s: Safety) -> Safety { return s }")
    assert codes(diags) == []


def test_an_unresolved_name_does_not_cascade():
    text = """
reactor Go(pick: Pose) -> Pose on Arm {
    step a = move_to(target: nowhere)
    step b = nothing(x: a) after a
    let c = b.x + a.y
    step d = move_to(target: {x: c, y: b.y, z: 0.0}) after b
    return d
}
"""
    diags, facts, module = check_text(text, arm=True)
    assert codes(diags) == ["BBF101", "BBF101"]
    c = [s for s in decl(module, "Go").body.stmts if isinstance(s, ast.LetStmt)][0]
    assert isinstance(facts.type_of(c.value), T.ErrorT)


def test_enum_members_bare_where_the_type_is_known_and_qualified_anywhere():
    text = """
enum Size { small, large }
action weigh() -> Size pure = "m:weigh"
reactor R(s: Size = small) -> int on Arm {
    step w = weigh()
    step ready = wait_state(idle)
    let big = w == large
    let named = Size.small
    let also = large == w
    switch n on w {
        case small { return 1 }
        case Size.large { return 2 }
    }
    return n
}
"""
    diags, facts, module = check_text(text, arm=True)
    assert codes(diags) == []
    lets = {s.name.name: s for s in decl(module, "R").body.stmts if isinstance(s, ast.LetStmt)}
    ref = facts.ref(lets["big"].value.right)
    assert ref.kind is RefKind.ENUM_MEMBER and ref.value == "large"
    assert facts.ref(lets["named"].value).value == "small"
    assert facts.ref(lets["also"].value.left).value == "large"
    ready = [s for s in decl(module, "R").body.stmts if isinstance(s, ast.StepStmt)][1]
    assert facts.ref(ready.call.args[0].value).kind is RefKind.ROBOT_STATE


def test_a_bare_member_of_exactly_one_enum_needs_no_expected_type():
    diags, facts, module = check_text("enum Size { small, large }\nreactor R() -> Size { let s = small return s }")
    assert not diags.items
    assert str(facts.decl_types[decl(module, "R").body.stmts[0]]) == "Size"


def test_a_bare_member_of_two_enums_is_ambiguous_where_no_type_is_expected():
    diags, _, _ = check_text("enum Grip { open, closed }\nenum Door { open, shut }\n"
                             "reactor R() -> int { let s = open return 1 }")
    d = only(diags, "BBF201")
    assert "ambiguous" in d.message and "`Grip.open` or `Door.open`" in (d.help or "")
    assert (d.span.line, d.span.column) == (3, 30)


def test_a_bare_member_shadowed_by_a_local_or_declaration_is_that_name():
    diags, _, _ = check_text("enum Size { small, large }\nreactor R(small: int) -> int { let s = small return s }")
    assert not diags.items
    diags, _, _ = check_text("enum Size { small, large }\ntype large = int\n"
                             "reactor R() -> int { let s = large return 1 }")
    assert "is a type, not a value" in only(diags, "BBF201").message


def test_a_bare_word_that_is_no_member_is_unknown_with_members_suggested():
    diags, _, _ = check_text("enum Size { small, large }\nreactor R() -> Size { let s = smal return s }")
    d = only(diags, "BBF101")
    assert "`small`" in (d.help or "")


def test_agent_names_state_binding_result_and_error():
    text = """
signal go.to: {dest: Pose}
signal go.done: {at: Pose}
signal go.failed: {why: str}
reactor Go(p: Pose) -> Pose on Arm {
    step a = move_to(target: p)
    return a
}
agent Mover on Arm {
    state { runs: int = 0 }
    on go.to as g {
        set runs = runs + 1
        run Go(p: g.data.dest)
            then { emit go.done {at: result} }
            else { emit go.failed {why: error.message + error.code} }
    }
    on go.done { }
    on go.failed { }
}
"""
    diags, facts, module = check_text(text, arm=True)
    assert codes(diags) == []
    route = decl(module, "Mover").routes[0]
    run = route.body[1]
    assert facts.call(run.call).kind is CallKind.REACTOR
    emitted = run.then[0].data.fields[0].value
    assert facts.ref(emitted).kind is RefKind.RESULT
    assert facts.ref(route.body[0].value.left).kind is RefKind.STATE
    assert facts.refs[route.body[0].field].kind is RefKind.STATE
    assert facts.decl_types[route].field("data") == T.RecordT((("dest", facts.decl_types[route].field("data").field("dest")),))


def test_a_statement_dropped_by_syntax_recovery_gives_no_unknown_name_later():
    # `step a = ` with garbage: the parser skips the statement; uses of `a` below it, here and in a
    # module that imports from this one (even a reactor whose header broke), stay silent.
    from bbflow.compiler.checker import check
    from bbflow.compiler.diagnostics.core import Diagnostics
    from bbflow.compiler.syntax.parser import parse_text

    broken = """type Pose = {x: float, y: float, z: float}
robot Arm {
    command home() -> Pose
    command move_to(target: Pose) -> Pose
}
reactor Go(p: Pose) -> Pose on Arm {
    step a = home( ==
    step b = move_to(target: a) after a
    return a
}
reactor Broken(p: Pose -> Pose on Arm {
    step a = home()
    return a
}
"""
    user = """from a import Arm, Pose, Go, Broken
import a as m
reactor Use(p: Pose) -> Pose on Arm {
    step g = Go(p: p)
    step h = Broken(p: g) after g
    step i = m.Broken(p: h)
    return i
}
"""
    diags = Diagnostics()
    modules = []
    for name, text in (("a", broken), ("b", user)):
        module, parsed = parse_text(text, f"{name}.flow", name)
        diags.extend(parsed.items)
        modules.append(module)
    check(modules, diags)
    assert [(d.code, d.span.file, d.span.line) for d in diags.sorted()] == [
        ("BBF001", "a.flow", 7), ("BBF001", "a.flow", 11)]


def test_a_signal_declared_twice_is_one_diagnostic_not_a_cascade_in_its_handlers() -> None:
    from checker_helpers import check_modules, codes

    one_file = {"main": """
signal cell.start
signal cell.start: {count: int}
agent A {
    state { total: int = 0 }
    on cell.start as s { set total = s.data.count }
}
"""}
    two_files = {"a": "signal cell.start\n",
                 "b": "signal cell.start: {count: int}\nagent A {\n    state { total: int = 0 }\n"
                      "    on cell.start as s { set total = s.data.count }\n}\n"}
    for sources in (one_file, two_files):
        diags, _, _ = check_modules(sources)
        assert codes(diags) == ["BBF102"], [d.message for d in diags]


def test_a_name_of_the_wrong_kind_is_named_with_the_right_article():
    diags, _, _ = check_text("enum Grip { open, closed }\nreactor R() {\n    step a = Grip()\n    let b = Grip\n}\n")
    assert [d.message for d in diags.sorted()] == ["`Grip` is an enum, not an action or reactor",
                                                   "`Grip` is an enum, not a value"]  # were "a enum", "a action"

