"""The language server's answers, from (text, position, compiled program), without pygls or a client."""

from __future__ import annotations

from pathlib import Path

import pytest
from codegen_helpers import flows_project

from bbflow.lsp import locate
from bbflow.lsp import program as program_module
from bbflow.lsp.analysis import definition, diagnostics_by_file, document_symbols, explain_summary, hover
from bbflow.lsp.complete import complete
from bbflow.lsp.locate import Pos, Range, children
from bbflow.lsp.program import compile_program
from bbflow.lsp.refactor import RenameError, quick_fixes, references, rename

SHAPES = """\
type Pose = {x: float, y: float, z: float}
enum Grip { open, closed }
"""

CELL = """\
from shapes import Pose, Grip

signal pick.requested: {pick: Pose}
signal pick.done: {at: Pose}

robot Arm {
    states idle, busy
    command move_to(target: Pose, speed: float = 0.5) -> Pose category motion
    command grip() -> Grip undo release()
    command release() -> Grip
    event force: {newtons: float}
}

# BBF401 is what an effectful step without undo gets
reactor Pick(pick: Pose) -> Pose on Arm {
    step ready = wait_state(idle)
    step there = move_to(target: pick) after ready undo move_to(target: pick)
    step held = grip() after there
    step felt = wait_event(force) where felt.newtons > 1.0 after held
    let high = there.z + 0.1
    return there
}

agent Picker on Arm {
    state { busy: bool = false }
    on pick.requested as req when not busy {
        set busy = true
        run Pick(pick: req.data.pick) then { emit pick.done {at: result} }
    }
}
"""


def at(text: str, word: str, nth: int = 0, offset: int = 0) -> Pos:
    """The position of the ``nth`` occurrence of ``word`` (plus ``offset`` characters)."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(word, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return Pos(line, index - (text.rfind("\n", 0, index) + 1))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return flows_project(tmp_path, {"shapes.flow": SHAPES, "cell.flow": CELL})


@pytest.fixture
def cell(project: Path) -> Path:
    return project / "flows" / "cell.flow"


def diagnosed(path: Path, text: str, buffers: dict[Path, str] | None = None):  # type: ignore[no-untyped-def]
    program = compile_program(path, {path: text, **(buffers or {})})
    return program, diagnostics_by_file(program)


# --- the program and its diagnostics --------------------------------------------------


def test_a_clean_project_has_every_file_with_no_diagnostics(cell: Path, project: Path) -> None:
    program, by_file = diagnosed(cell, CELL)
    assert by_file == {cell: [], project / "flows" / "shapes.flow": [], project / "bbflow.toml": []}
    assert program.module(cell).name == "cell"  # named from the project's source folder
    assert program.scope == project


def test_a_diagnostic_has_code_range_help_and_its_explanation(cell: Path) -> None:
    text = CELL.replace("move_to(target: pick) after", "mvoe_to(target: pick) after")
    _, by_file = diagnosed(cell, text)
    [diag] = by_file[cell]
    assert (diag.code, diag.severity) == ("BBF101", "error")
    assert (diag.range.start, diag.range.end) == (at(text, "mvoe_to"), at(text, "mvoe_to", offset=7))
    assert "help: did you mean `move_to`?" in diag.message.splitlines()
    assert diag.explain is not None and diag.explain.name == "BBF101.md" and diag.explain.is_file()


def test_labels_become_related_locations_and_notes_join_the_message(cell: Path) -> None:
    text = CELL.replace("    let high", "    let ready = 1\n    let high")
    _, by_file = diagnosed(cell, text)
    [diag] = by_file[cell]
    assert diag.code == "BBF102"
    assert diag.range.start == at(text, "let ready", offset=4)
    [related] = diag.related
    assert related.location.path == cell and related.location.range.start == at(text, "ready")
    assert related.message == "first defined here" or related.message.startswith("first")
    text = "import nowhere\n" + CELL
    [missing] = diagnosed(cell, text)[1][cell]
    assert missing.code == "BBF103"
    assert any(line.startswith("note: a module is named by its path") for line in missing.message.splitlines())


def test_imports_are_resolved_from_open_buffers_before_the_disk(cell: Path, project: Path) -> None:
    shapes = project / "flows" / "shapes.flow"
    text = CELL.replace("from shapes import Pose, Grip", "from shapes import Pose, Grip, Speed")
    _, on_disk = diagnosed(cell, text)
    assert [d.code for d in on_disk[cell]] == ["BBF101"]
    _, edited = diagnosed(cell, text, {shapes: SHAPES + "type Speed = float\n"})
    assert edited[cell] == []


def test_an_unsaved_file_is_named_from_the_source_root_and_imports_its_project(project: Path) -> None:
    new = project / "flows" / "lines" / "extra.flow"
    program, by_file = diagnosed(new, "from cell import Pick\nfrom shapes import Pose\ntype Home = Pose\n")
    assert program.module(new).name == "lines.extra"
    assert by_file[new] == []


def test_a_file_outside_any_project_is_checked_alone_never_its_folder_tree(tmp_path: Path) -> None:
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "broken.flow").write_text("reactor {\n", encoding="utf-8")
    (tmp_path / "shapes.flow").write_text(SHAPES, encoding="utf-8")
    loose = tmp_path.resolve() / "use.flow"
    program, by_file = diagnosed(loose, "type P = {x: float}\n")
    assert program.scope == loose and program.files == [loose] and by_file == {loose: []}


def test_a_broken_project_file_is_a_bbf701_at_its_key_and_the_file_is_still_checked(cell: Path, project: Path) -> None:
    (project / "bbflow.toml").write_text('[project]\nname = "cell"\nsourc = "flows"\n', encoding="utf-8")
    _, by_file = diagnosed(cell, "type P = flaot\n")
    [toml] = by_file[project / "bbflow.toml"]
    assert toml.code == "BBF701" and "sourc" in toml.message and toml.range.start.line == 2
    assert [d.code for d in by_file[cell]] == ["BBF101"]


def test_a_view_is_kept_while_what_its_check_read_is_unchanged(cell: Path, project: Path) -> None:
    from bbflow.compiler import ParsedTrees

    trees = ParsedTrees()
    first = compile_program(cell, {cell: CELL}, None, trees)
    shapes = project / "flows" / "shapes.flow"
    assert first.module(shapes) is not None and first.module(cell) is not None
    edited = CELL + "\n# a comment\n"
    second = compile_program(cell, {cell: edited}, first, trees)
    assert second.module(shapes) is first.module(shapes)  # not parsed or checked again
    assert second.module(cell) is not first.module(cell) and second.texts[cell] == edited
    back = compile_program(cell, {cell: CELL}, second, trees)  # replayed from the cache: checked again for facts
    assert back.module(cell) is not second.module(cell) and back.facts(cell) is not None


def test_a_compiler_exception_is_one_bbf900_and_never_escapes(cell: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(program_module, "compile_paths", broken)
    _, by_file = diagnosed(cell, CELL)
    [diag] = by_file[cell]
    assert diag.code == "BBF900" and "boom" in diag.message


# --- hover ----------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "nth", "shown"), [
    ("pick)", 0, "(param) pick: Pose"),
    ("there.z", 0, "(step) there: Pose"),
    ("ready", 1, "(step) ready: str"),
    ("move_to", 1, "(command) move_to(target: Pose, speed: float = …) -> Pose"),
    ("newtons >", 0, "(field) newtons: float"),
    ("felt", 0, "(step) felt: {newtons: float}"),
    ("high", 0, "(let) high: float"),
    ("idle)", 0, "(robot state) idle"),
    ("force)", 0, "(event) force: {newtons: float}"),
    ("busy = true", 0, "(state) busy: bool"),
    ("req.data", 0, "(binding) req:"),
    ("Pick(pick: req", 0, "(reactor) Pick(pick: Pose) -> Pose on Arm"),
    ("0.1", 0, "float"),
    ("pick.done {", 0, "(signal) pick.done: {at: Pose}"),
])
def test_hover_shows_the_type_or_declaration(cell: Path, word: str, nth: int, shown: str) -> None:
    program = compile_program(cell, {cell: CELL})
    answer = hover(program, cell, at(CELL, word, nth))
    assert answer is not None and shown in answer.markdown


def test_hover_on_a_named_type_shows_what_it_stands_for(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    answer = hover(program, cell, at(CELL, "there", 0))
    assert answer is not None
    assert "type Pose = {x: float, y: float, z: float}" in answer.markdown
    assert answer.range.start == at(CELL, "there")


def test_hover_on_a_code_explains_it(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    answer = hover(program, cell, at(CELL, "BBF401", offset=3))
    assert answer is not None
    assert answer.markdown.startswith("**BBF401**: effectful step can be followed by a failure")
    assert answer.markdown == explain_summary("BBF401")
    assert "\n\n" in answer.markdown  # the title, then the explanation's first paragraph


def test_hover_inside_a_diagnostic_explains_its_code(cell: Path) -> None:
    text = CELL.replace("after ready undo move_to(target: pick)", "after ready")
    program = compile_program(cell, {cell: text})
    codes = [d.code for d in diagnostics_by_file(program)[cell]]
    assert codes == ["BBF401"]
    answer = hover(program, cell, at(text, "there", 0))
    assert answer is not None and "(step) there: Pose" in answer.markdown and "**BBF401**" in answer.markdown


def test_no_hover_on_blank_space(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    assert hover(program, cell, Pos(CELL.count("\n", 0, CELL.index("\n\nrobot")) + 1, 0)) is None


# --- go to definition -------------------------------------------------------------------


@pytest.mark.parametrize(("use", "nth", "declared", "dnth"), [
    ("ready", 1, "ready", 0),  # `after ready`
    ("pick)", 0, "pick:", 1),  # a reactor input
    ("move_to(target: pick) after", 0, "move_to(target: Pose", 0),  # a command
    ("there.z", 0, "there", 0),
    ("felt.newtons", 0, "felt", 0),
    ("idle)", 0, "idle", 0),  # a robot state
    ("force)", 0, "force", 0),  # an event
    ("Arm {\n    step", 0, "Arm {", 0),  # the robot a reactor is on
    ("busy = true", 0, "busy:", 0),  # an agent's state
    ("Pick(pick: req", 0, "Pick(pick: Pose", 0),  # a run
    ("pick.done {", 0, "pick.done", 0),  # an emitted signal
    ("req.data", 0, "req when", 0),
    ("result}", 0, "Pick(pick: req", 0),  # `result` is the run's
])
def test_definition_of_names_in_the_same_file(cell: Path, use: str, nth: int, declared: str, dnth: int) -> None:
    program = compile_program(cell, {cell: CELL})
    [found] = definition(program, cell, at(CELL, use, nth))
    assert found.path == cell
    assert found.range.start == at(CELL, declared, dnth)


def test_definition_crosses_files_to_imports_and_the_standard_library(cell: Path, project: Path) -> None:
    shapes = project / "flows" / "shapes.flow"
    program = compile_program(cell, {cell: CELL})
    [pose] = definition(program, cell, at(CELL, "Pose) -> Pose"))
    assert (pose.path, pose.range.start) == (shapes, at(SHAPES, "Pose"))
    [imported] = definition(program, cell, at(CELL, "Grip\n"))
    assert (imported.path, imported.range.start) == (shapes, at(SHAPES, "Grip"))
    [module] = definition(program, cell, at(CELL, "shapes"))
    assert (module.path, module.range.start) == (shapes, Pos(0, 0))
    [safety] = definition(program, cell, at(CELL, "Arm {\n    states"))
    assert safety.path == cell
    text = CELL.replace("when not busy", "when not busy and req.source != \"x\" and fault == fault")
    program = compile_program(cell, {cell: text})
    [member] = definition(program, cell, at(text, "fault"))
    assert member.path.name == "prelude.flow" and member.path.is_file()


def test_no_definition_for_literals_and_unknown_names(cell: Path) -> None:
    text = CELL.replace("there.z + 0.1", "nowhere + 0.1")
    program = compile_program(cell, {cell: text})
    assert definition(program, cell, at(text, "0.1")) == []
    assert definition(program, cell, at(text, "nowhere")) == []


# --- completion -------------------------------------------------------------------------


def labels(program, cell: Path, text: str, pos: Pos) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.label for c in complete(program, cell, text, pos)}


def labels_at(program, cell: Path, text: str, pos: Pos, analysed: Pos) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.label for c in complete(program, cell, text, pos, analysed)}


@pytest.mark.parametrize("typed", ["let y = 1.", "let y = 1.5", "let y = there.x + 2.", "let y = 1e-3.", "let y = [1.",
                                   "let y = -1.", "let y = 1_000.", "let y = 1.5."])
def test_no_completion_in_a_number_being_typed(cell: Path, typed: str) -> None:
    # `1.` offered every name and keyword (the dot is a trigger character: the editor showed them all)
    program = compile_program(cell, {cell: CELL})
    text = CELL.replace("    let high", f"    {typed}\n    let high")
    assert complete(program, cell, text, at(text, typed, offset=len(typed))) == []
    after = text.replace(typed, typed.rsplit(" ", 1)[0] + " there.")  # a name's fields, still
    assert labels(program, cell, after, at(after, " there.", offset=7)) == {"x", "y", "z"}


@pytest.mark.parametrize(("typed", "expected"), [
    ("let y = [there, there][0].", {"x", "y", "z"}), ("let y = {a: 1, b: there}.", {"a", "b"}),
    ("let y = abs(1.0).", set()), ('let y = "a".', set()), ("let y = there?.", set()),
])
def test_completion_after_the_dot_of_an_expression_offers_its_fields(cell: Path, typed: str,
                                                                     expected: set[str]) -> None:
    # after `xs[0].`, `f(x).` or `"a".` every name in scope was offered; the fields of the expression's type are,
    # as the last check (before the dot was typed) typed it, or nothing
    from bbflow.lsp.shift import Shift

    program = compile_program(cell, {cell: CELL.replace("    let high", f"    {typed[:-1]}\n    let high")})
    text = CELL.replace("    let high", f"    {typed}\n    let high")
    pos = at(text, typed, offset=len(typed))
    analysed = Shift(program.texts[cell], text).near_old(pos)
    assert {c.label for c in complete(program, cell, text, pos, analysed)} == expected


@pytest.mark.parametrize(("line", "expected"), [
    ("from ", {"shapes", "other", "sub.deep", "std.prelude"}), ("import ", {"shapes", "other", "sub.deep", "std.prelude"}),
    ("from sub.", {"deep"}), ("from sub.de", {"deep"}), ("from other import ", {"Q", "R"}),
    ("from shapes import Pose as P, G", {"Pose", "Grip"}),
])
def test_completion_in_an_import_offers_the_modules_then_the_declarations_of_the_one_named(
        project: Path, cell: Path, line: str, expected: set[str]) -> None:
    # builtin functions (`abs`, `len`) were offered after `from`, `import` and `from shapes import`
    from bbflow.lsp.shift import Shift

    (project / "flows" / "other.flow").write_text("type Q = int\naction R() -> int = \"m:r\"\n", encoding="utf-8")
    (project / "flows" / "sub").mkdir()
    (project / "flows" / "sub" / "deep.flow").write_text("type D = int\n", encoding="utf-8")
    program = compile_program(cell, {cell: CELL})
    text = f"{line}\n{CELL}"
    pos = Pos(0, len(line))
    assert labels_at(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos)) == expected


@pytest.mark.parametrize(("old", "typed"), [
    ("    let high", "    step re"), ("    let high", "    let th"), ("    let high", "    map it"),
    ("    let high", "    switch m"), ("reactor Pick", "reactor Pi"), ("on pick.requested as req", "on pick.requested as r"),
    ("    states idle", "    states "), ("    event force", "    event f"),
])
def test_no_completion_in_a_new_name(cell: Path, old: str, typed: str) -> None:
    # the names in scope were offered where a new one is typed: `step re` + Enter took `ready`
    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, f"{typed}\n{old}", 1)
    assert complete(program, cell, text, at(text, typed, offset=len(typed))) == []


@pytest.mark.parametrize(("old", "typed"), [
    ("reactor Pick(pick: Pose)", "reactor Pick(pick: "), ("    command release() -> Grip", "    command release() -> "),
    ("agent Picker", "type T = {a: "),
])
def test_completion_where_a_type_goes_offers_the_types(cell: Path, old: str, typed: str) -> None:
    # every name in scope was offered there: the builtin functions, reactors, agents, robots
    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, f"{typed}\n{old}", 1)
    assert labels(program, cell, text, at(text, typed, offset=len(typed))) == {
        "Pose", "Grip", "Safety", "bool", "int", "float", "str", "duration", "any", "list", "map"}


@pytest.mark.parametrize(("old", "new", "cursor", "expected"), [
    ("-> Pose on Arm {", "-> Pose on A", "on A", {"Arm"}),  # a robot
    ("agent Picker on Arm", "agent Picker on ", "on ", {"Arm"}),
    ("grip() after there", "grip() after ", "after ", {"ready", "there", "held", "felt", "high"}),  # steps, lets
    ("grip() after there", "grip() after ready, t", "ready, t", {"ready", "there", "held", "felt", "high"}),
    ("        set busy = true\n", "        set busy = true\n        cancel P\n", "cancel P", {"Pick"}),  # a reactor
    ("        set busy = true\n", "        set b\n", "set b", {"busy"}),  # a state field
])
def test_completion_where_only_a_name_of_one_kind_goes_offers_those(cell: Path, old: str, new: str, cursor: str,
                                                                       expected: set[str]) -> None:
    # every name in scope was offered after a header's `on`, after `after`, `cancel` and `set`
    from bbflow.lsp.shift import Shift

    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, new)
    pos = at(text, new, offset=new.index(cursor) + len(cursor))
    assert labels_at(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos)) == expected


@pytest.mark.parametrize(("old", "new", "cursor", "expected"), [
    ("wait_state(idle)", "wait_state(", "wait_state(", {"idle", "busy", "disarmed", "armed", "disarming", "fault"}),
    ("wait_state(idle)", "wait_state(idle, b", "idle, b", {"idle", "busy", "disarmed", "armed", "disarming", "fault"}),
    ("wait_event(force)", "wait_event(", "wait_event(", {"force"}),
    ("    let high", "    step w = wait_signal(pick.\n    let high", "wait_signal(pick.", {"done", "requested"}),
])
def test_completion_in_a_wait_offers_the_robots_states_or_events_or_the_signals(
        cell: Path, old: str, new: str, cursor: str, expected: set[str]) -> None:
    # every name in scope (and no state: they are no names) was offered in wait_state( and wait_event(
    from bbflow.lsp.shift import Shift

    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, new)
    pos = at(text, new, offset=new.index(cursor) + len(cursor))
    assert labels_at(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos)) == expected


CALLABLE = {"Pick", "arm", "disarm", "grip", "move_to", "release", "wait_event", "wait_signal", "wait_state"}


@pytest.mark.parametrize(("old", "new", "cursor", "expected"), [
    ("step held = grip()", "step held = g", "held = g", CALLABLE),
    ("undo move_to(target: pick)", "undo ", "ready undo ", CALLABLE),
    ("undo release()", "undo ", "Grip undo ", {"grip", "move_to", "release"}),  # a command's: its robot's commands
    ("run Pick(pick: req.data.pick)", "run P", "run P", {"Pick"}),
])
def test_completion_of_what_a_step_an_undo_or_a_run_calls_offers_what_may_be_called(
        cell: Path, old: str, new: str, cursor: str, expected: set[str]) -> None:
    # every name in scope was offered: the builtin functions (`abs`), types, steps, enums
    from bbflow.lsp.shift import Shift

    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, new, 1)
    pos = at(text, cursor, offset=len(cursor))
    assert labels_at(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos)) == expected


@pytest.mark.parametrize(("new", "cursor", "expected"), [
    ("emit pick.done {", "done {", {"at", "ok"}), ("emit pick.done {at: result, ", "result, ", {"ok"}),
    ("emit pick.done {at: result, o", "result, o", {"ok"}),
])
def test_completion_of_a_payloads_field_name_offers_the_fields_not_given_yet(cell: Path, new: str, cursor: str,
                                                                            expected: set[str]) -> None:
    # every name in scope was offered where the payload's field names go
    from bbflow.lsp.shift import Shift

    base = CELL.replace("signal pick.done: {at: Pose}", "signal pick.done: {at: Pose, ok: bool}")
    program = compile_program(cell, {cell: base})
    text = base.replace("emit pick.done {at: result}", new)
    pos = at(text, cursor, offset=len(cursor))
    assert labels_at(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos)) == expected
    value = text.replace(new, "emit pick.done {at: r")
    pos = at(value, "{at: r", offset=6)  # a field's value: the names in scope
    assert "result" in labels_at(program, cell, value, pos, Shift(program.texts[cell], value).near_old(pos))


@pytest.mark.parametrize(("old", "new", "cursor", "expected"), [
    ("move_to(target: pick) after ready", "move_to(", "there = move_to(", {"target", "speed"}),
    ("move_to(target: pick) after ready", "move_to(target: pick, s", "pick, s", {"speed"}),  # not named yet
    ("move_to(target: pick) after ready", "move_to(target: p", "target: p", set()),  # a value
    ("run Pick(pick: req.data.pick)", "run Pick(", "Pick(", {"pick"}),  # a reactor's inputs
])
def test_completion_in_a_calls_parentheses_offers_its_parameters_not_named_yet(
        cell: Path, old: str, new: str, cursor: str, expected: set[str]) -> None:
    from bbflow.lsp.shift import Shift

    program = compile_program(cell, {cell: CELL})
    text = CELL.replace(old, new, 1)
    pos = at(text, cursor, offset=len(cursor))
    got = complete(program, cell, text, pos, Shift(program.texts[cell], text).near_old(pos))
    assert {c.label for c in got if c.kind == "field"} == expected
    assert expected or "pick" in {c.label for c in got}  # and the names in scope, for a positional argument


def test_completion_offers_the_statement_keywords_and_names_of_a_reactor_body(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    pos = at(CELL, "    return there", offset=4)
    got = labels(program, cell, CELL, pos)
    assert {"step", "let", "switch", "map", "return", "fail"} <= got
    assert not {"agent", "emit", "after", "robot"} & got


def test_completion_after_a_step_call_offers_its_modifiers_only(cell: Path) -> None:
    text = CELL.replace("step held = grip() after there", "step held = grip() ")
    program = compile_program(cell, {cell: CELL})
    got = labels(program, cell, text, at(text, "= grip() ", offset=9))
    assert {"after", "undo", "retry", "timeout", "when", "where", "irreversible", "fallback"} <= got
    assert "pick" not in got and "move_to" not in got  # no value can follow a complete step here


def test_completion_of_a_call_offers_commands_waits_and_names_in_scope(cell: Path) -> None:
    text = CELL.replace("step held = grip() after there", "step held = gr")
    program = compile_program(cell, {cell: CELL})
    got = {c.label: c for c in complete(program, cell, text, at(text, "= gr", offset=4))}
    assert {"grip", "release", "move_to", "wait_state", "wait_event", "arm", "Pick"} <= set(got)
    assert not {"pick", "there", "abs"} & set(got)  # a step calls no value, nor a builtin function
    assert got["move_to"].kind == "function" and "(command) move_to(" in got["move_to"].detail
    text = CELL.replace("let high = there.z + 0.1", "let high = pi")
    got = {c.label: c for c in complete(program, cell, text, at(text, "= pi", offset=4))}
    assert {"pick", "there", "abs"} <= set(got) and got["pick"].detail == "(param) Pose"


def test_completion_after_a_dot_offers_record_fields_and_enum_members(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    for typed, expected in [("pick.", {"x", "y", "z"}), ("felt.", {"newtons"}), ("Grip.", {"open", "closed"})]:
        text = CELL.replace("let high = there.z + 0.1", f"let high = {typed}")
        assert labels(program, cell, text, at(text, f"= {typed}", offset=2 + len(typed))) == expected, typed
    text = CELL.replace("set busy = true", "set busy = req.data.")
    assert labels(program, cell, text, at(text, "req.data.", offset=9)) == {"pick"}


def test_completion_after_emit_offers_declared_signals(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    text = CELL.replace("emit pick.done {at: result}", "emit pick.")
    got = labels(program, cell, text, at(text, "emit pick.", offset=10))
    assert {"done", "requested"} <= got and not any("." in g for g in got if g in ("done", "requested"))


def test_completion_in_a_broken_declaration_falls_back_to_every_keyword(cell: Path) -> None:
    text = CELL.replace("    let high", "    step = = (\n    ")
    program = compile_program(cell, {cell: CELL})
    got = labels(program, cell, text, at(text, "step = = (\n    ", offset=len("step = = (\n    ")))
    assert {"agent", "step", "emit"} <= got


@pytest.mark.parametrize("typed", [
    "    # see pick.",  # a comment: no names, no keywords, no fields
    "    # st",
    '    step late = move_to(target: pick) irreversible "see pick.',  # a string being typed
    '    step late = move_to(target: pick) irreversible "a \\"quoted\\" st',
])
def test_no_completion_inside_a_comment_or_a_string(cell: Path, typed: str) -> None:
    # the keywords and names of the code around (and a record's fields after a dot in a string) were offered
    program = compile_program(cell, {cell: CELL})
    text = CELL.replace("    let high = there.z + 0.1", typed)
    assert complete(program, cell, text, at(text, typed, offset=len(typed))) == []
    closed = CELL.replace("    let high = there.z + 0.1", '    step late = move_to(target: pick) irreversible "x#y" ')
    assert "after" in labels(program, cell, closed, at(closed, '"x#y" ', offset=6))  # after a closed string


# --- document symbols ---------------------------------------------------------------------


def test_document_symbols_outline_the_file(cell: Path) -> None:
    program = compile_program(cell, {cell: CELL})
    symbols = document_symbols(program, cell)
    assert [(s.name, s.kind) for s in symbols] == [
        ("pick.requested", "signal"), ("pick.done", "signal"), ("Arm", "robot"), ("Pick", "reactor"),
        ("Picker", "agent")]
    arm, pick, picker = symbols[2:]
    assert [c.name for c in arm.children] == ["idle", "busy", "move_to", "grip", "release", "force"]
    assert [c.name for c in pick.children] == ["ready", "there", "held", "felt", "high"]
    assert pick.children[1].detail == "Pose" and pick.detail == "(pick: Pose) -> Pose on Arm"
    assert [c.name for c in picker.children] == ["busy", "on pick.requested"]
    assert pick.selection.start == at(CELL, "Pick(")


# --- quick fixes and rename: every edit applies and leaves a program that checks ----------------------------


def applied(text: str, r: Range, new: str) -> str:
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[:r.start.line]) + r.start.character
    end = sum(len(line) + 1 for line in lines[:r.end.line]) + r.end.character
    return text[:start] + new + text[end:]


def test_did_you_mean_on_a_route_replaces_its_pattern_not_the_on_keyword(cell: Path) -> None:
    # BBF503's range is the route's head, `on pick.requestd`: "Replace with" dropped the `on`
    text = CELL.replace("on pick.requested as req", "on pick.requestd as req")
    program, by_file = diagnosed(cell, text)
    [fix] = quick_fixes(program, cell, [d for d in by_file[cell] if d.code == "BBF503"])
    assert fix.title == "Replace with `pick.requested`" and fix.range.start == at(text, "pick.requestd")
    assert diagnosed(cell, applied(text, fix.range, fix.new_text))[1][cell] == []


def test_did_you_mean_in_bbflow_toml_replaces_the_value_not_the_key(cell: Path, project: Path) -> None:
    # a bbflow.toml problem is at its key: "Replace with `cell.Arm`" made `interface = "cell.Amr"` into
    # `cell.Arm = "cell.Amr"`
    toml = project / "bbflow.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[robot.left]\ninterface = "cell.Amr"\n', encoding="utf-8")
    program, by_file = diagnosed(cell, CELL)
    [fix] = quick_fixes(program, toml, by_file[toml])
    text = toml.read_text(encoding="utf-8")
    assert fix.new_text == "cell.Arm" and fix.range.start == at(text, "cell.Amr")
    toml.write_text(applied(text, fix.range, fix.new_text), encoding="utf-8")
    assert diagnosed(cell, CELL)[1][toml] == []


def test_no_did_you_mean_fix_when_the_wrong_name_is_not_in_the_text(cell: Path, project: Path) -> None:
    toml = project / "bbflow.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n[agent.Pikcer]\n", encoding="utf-8")
    program, by_file = diagnosed(cell, CELL)
    [diag] = by_file[toml]
    assert "did you mean `Picker`" in diag.message and quick_fixes(program, toml, [diag]) == []


def renamed(program, path: Path, pos: Pos, new: str) -> dict[Path, str]:  # type: ignore[no-untyped-def]
    """Every file of ``program`` after the rename's edits."""
    texts = dict(program.texts)
    for place in sorted(rename(program, path, pos, new), key=lambda p: (p.range.start.line, p.range.start.character),
                        reverse=True):
        texts[place.path] = applied(texts[place.path], place.range, new)
    return texts


# a parameter named at a call site, a robot state waited for, a reactor cancelled, an event waited for
RENAMES = CELL + """
agent Canceller on Arm {
    on pick.done { cancel Pick }
}
"""


@pytest.mark.parametrize(("word", "nth", "new", "count"), [
    ("target", 1, "goal", 3),  # `move_to(target: pick)`: the command's parameter, at every call
    ("pick: Pose) ->", 0, "part", 4),  # the reactor's, named by the agent's `run Pick(pick: ...)` too
    ("idle", 0, "waiting", 2),  # `states idle, busy`: and `wait_state(idle)`
    ("Pick", 0, "Take", 3),  # and `cancel Pick`
    ("force", 0, "push", 2),  # `wait_event(force)`, never the name `wait_event`
])
def test_a_rename_edits_every_use_and_the_program_still_checks(cell: Path, word: str, nth: int, new: str,
                                                               count: int) -> None:
    # a named argument was its own definition (renaming a parameter left `target:` behind, renaming the
    # argument broke the call), a state's declaration and `cancel` were no names, and `wait_event` was
    # renamed with the event
    program, by_file = diagnosed(cell, RENAMES)
    assert by_file[cell] == []
    places = rename(program, cell, at(RENAMES, word, nth), new)
    assert len(places) == count
    texts = renamed(program, cell, at(RENAMES, word, nth), new)
    assert diagnosed(cell, texts[cell])[1][cell] == []


@pytest.mark.parametrize(("word", "nth", "why"), [
    ("x: float", 0, "record field"),  # its uses (`there.z`, `{x: ...}`) are not tracked
    ("at: result", 0, "nothing to rename"),  # a record literal's field
    ("shapes import", 0, "renaming its file"),  # a module
    ("result}", 0, "`result` and `error`"),
])
def test_a_rename_that_would_break_the_program_is_refused(cell: Path, project: Path, word: str, nth: int,
                                                          why: str) -> None:
    file = project / "flows" / "shapes.flow" if word == "x: float" else cell
    text = SHAPES if file != cell else CELL
    program, _ = diagnosed(cell, CELL)
    with pytest.raises(RenameError, match=why):
        rename(program, file, at(text, word, nth), "renamed")


def test_a_name_of_the_standard_library_is_not_renamed(cell: Path) -> None:
    text = CELL.replace("on pick.requested as req when not busy {",
                        "on robot.safety.changed as s when s.data.to == fault { }\n"
                        "    on pick.requested as req when not busy {")
    program, by_file = diagnosed(cell, text)
    assert by_file[cell] == []
    with pytest.raises(RenameError, match="standard library"):
        rename(program, cell, at(text, "fault"), "broken")


def test_the_references_of_result_are_not_those_of_error(cell: Path) -> None:
    # both stand for the call, so each was listed as a reference of the other
    text = CELL.replace("then { emit pick.done {at: result} }",
                        "then { emit pick.done {at: result} } else { set busy = error.message == \"\" }")
    program, by_file = diagnosed(cell, text)
    assert by_file[cell] == []
    assert [r.range.start for r in references(program, cell, at(text, "result"))] == [at(text, "result")]
    assert [r.range.start for r in references(program, cell, at(text, "error"))] == [at(text, "error")]


def test_references_walk_each_tree_once_not_once_per_word(project: Path, cell: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # each word of every file was looked up from the top of its tree: quadratic, a 1,000-step reactor took 20 s
    def steps(n: int) -> str:
        chain = "".join(f"    step s{i} = move_to(target: pick) after {f's{i - 1}' if i else 'ready'}\n"
                        for i in range(n))
        return CELL.replace("    step ready = wait_state(idle)\n", "    step ready = wait_state(idle)\n" + chain)

    def visits(n: int) -> int:
        text = steps(n)
        program = compile_program(cell, {cell: text})
        count = 0

        def counted(node):  # type: ignore[no-untyped-def]
            nonlocal count
            for child in children(node):
                count += 1
                yield child

        monkeypatch.setattr(locate, "children", counted)
        found = references(program, cell, at(text, "s1 ="))
        monkeypatch.undo()
        assert [r.range.start for r in found] == [at(text, "s1 ="), at(text, "after s1", offset=6)]
        return count

    assert visits(160) < 6 * visits(40)  # linear in the size of the program: 4x (it was 9x, quadratic)


@pytest.mark.parametrize(("word", "new"), [("ready", "prêt"), ("ready", "x٣"), ("pick.done", "pick.fin\u00ed")])
def test_a_rename_to_a_name_the_grammar_cannot_read_is_refused(cell: Path, word: str, new: str) -> None:
    # a name is ASCII: `prêt` (a Unicode letter, `\w` to Python) was accepted and the program no longer parsed
    program, _ = diagnosed(cell, CELL)
    with pytest.raises(RenameError, match="not valid here"):
        rename(program, cell, at(CELL, word), new)


def test_a_rename_while_a_file_has_a_syntax_error_is_refused(cell: Path) -> None:
    # the bodies of a file with a syntax error are not checked, so the uses in them were not found: renaming
    # `ready` edited its declaration only, and `after ready` was left behind
    text = CELL.replace("        set busy = true\n", "        set busy = true\n        emit pick.\n")
    program, by_file = diagnosed(cell, text)
    assert [d.code for d in by_file[cell]] == ["BBF001"]
    with pytest.raises(RenameError, match=r"cell\.flow has a syntax error"):
        rename(program, cell, at(text, "ready"), "prepared")


def _long_reactor(n: int) -> str:
    chain = "".join(f"    step s{i} = move_to(target: pick) after {f's{i - 1}' if i else 'ready'}\n" for i in range(n))
    return CELL.replace("    step ready = wait_state(idle)\n", "    step ready = wait_state(idle)\n" + chain)


def test_completion_while_typing_parses_the_line_typed_not_the_whole_reactor(cell: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # each completion parsed its declaration from the start: about a second a keystroke in a 3,000-step reactor
    from lark.parsers.lalr_parser_state import ParserState

    from bbflow.lsp import complete as complete_module

    def fed_while_typing(n: int) -> list[int]:
        monkeypatch.setattr(complete_module, "_PARSES", complete_module._Parses())
        base = _long_reactor(n)
        program = compile_program(cell, {cell: base})
        counts = []
        feed = ParserState.feed_token
        for typed in ["    l", "    let y = ", "    let y = s0.x + ", "    let y = s0.x + 1.0\n    st"]:
            text = base.replace("    let high", typed + "\n    let high")
            count = 0

            def counted(self, token, is_end=False):  # type: ignore[no-untyped-def]
                nonlocal count
                count += 1
                return feed(self, token, is_end)

            with monkeypatch.context() as patched:
                patched.setattr(ParserState, "feed_token", counted)
                got = labels(program, cell, text, at(text, typed, offset=len(typed)))
            assert got, typed
            counts.append(count)
        return counts

    small, big = fed_while_typing(20), fed_while_typing(400)
    # the first completion in a declaration parsed all of it (0.3-0.7 s in a 3,000-step reactor); it leaves out
    # the steps the last check saw, and each keystroke after it parses from the start of its line
    assert big == small


def test_the_node_under_the_cursor_is_found_by_halves_in_a_long_reactor(cell: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # path_at tried every step of a reactor in turn: at every completion, 14 ms in a 3,000-step one
    def looked_at(n: int) -> tuple[int, list[str]]:
        text = _long_reactor(n)
        module = compile_program(cell, {cell: text}).module(cell)
        assert module is not None
        count = 0
        real = locate.contains

        def counted(span, pos):  # type: ignore[no-untyped-def]
            nonlocal count
            count += 1
            return real(span, pos)

        with monkeypatch.context() as patched:
            patched.setattr(locate, "contains", counted)
            found = locate.path_at(module, at(text, f"s{n - 2} = move_to", offset=8))
        return count, [type(node).__name__ for node in found]

    (small, small_path), (big, big_path) = looked_at(20), looked_at(2000)
    assert small_path == big_path == ["Module", "ReactorDecl", "Block", "StepStmt", "CallExpr", "Name", "Ident"]
    assert big < small + 30


NESTED = CELL.replace("    let high = there.z + 0.1\n", """\
    let high = there.z + 0.1
    switch mode on high > 1.0 {
        case true {
            step up = move_to(target: pick)
            let a = 1
            return up
        }
        case false { fail "low" }
        default {
            map each over [pick, pick] as p concurrency 2 {
                step m = move_to(target: p)
                let b = m.x
                return m
            }
        }
    }
""").replace("        set busy = true\n", """\
        set busy = true
        if busy { set busy = false } else if not busy { set busy = true emit pick.done {at: req.data.pick} }
""").replace("then { emit pick.done {at: result} }", \
             "then {\n            emit pick.done {at: result}\n            set busy = false\n        } else {\n"
             "            set busy = false\n            set busy = true\n        }")


@pytest.mark.parametrize("typed", ["", "            l", "    st", "                step q = move_to(", "        set"])
def test_completion_leaving_out_whole_statements_takes_what_the_whole_declaration_takes(cell: Path,
                                                                                      typed: str) -> None:
    # the first completion in a declaration leaves out the statements before the last whole one; everywhere,
    # also on a line typed since the last check, the parser must take what it takes after the whole text
    from bbflow.lsp.complete import TOP_LEVEL, _Parses, accepted

    program = compile_program(cell, {cell: NESTED})
    lines = NESTED.split("\n")
    for n in range(lines.index("reactor Pick(pick: Pose) -> Pose on Arm {"), len(lines)):
        now = [*lines[:n], typed, *lines[n:]] if typed else lines
        line = now[n]
        for column in sorted({0, len(line) - len(line.lstrip()), len(line)} | {i + 1 for i, c in enumerate(line)
                                                                             if c in " ({,"}):
            prefix = "\n".join([*now[:n], line[:column]])
            start = [m.start() for m in TOP_LEVEL.finditer(prefix)][-1]
            assert accepted(prefix, program, cell, Pos(n, column)) == _Parses().accepts(prefix[start:]), \
                (typed, n, column)


@pytest.mark.parametrize("edit", [
    ("    step s3 = move_to(target: pick) after s2\n", "    step s3 = move_to(target: pick\n"),  # an open call
    ("    step s3 = move_to(target: pick) after s2\n", ""),  # a line gone
    ("reactor Pick(pick: Pose)", "reactor Pick(pick: Pose, extra: float)"),  # the header
    ("    step s9 = move_to(target: pick) after s8\n", "    step s9 = move_to(target: pick) after s8 {\n"),
])
def test_completion_after_an_edit_above_the_cursor_takes_what_the_parser_takes_now(
        cell: Path, edit: tuple[str, str]) -> None:
    from bbflow.lsp.complete import _Parses

    base = _long_reactor(200)
    program = compile_program(cell, {cell: base})
    kept = _Parses()
    for text in [base, base.replace(*edit), base]:
        for line in range(text.index("    step s150"), text.index("    return"), 997):
            prefix = text[:text.index("\n", line) + 1] + "    "
            assert kept.accepts(prefix[prefix.index("reactor Pick"):]) == \
                _Parses().accepts(prefix[prefix.index("reactor Pick"):]), (edit, line)
    assert labels(program, cell, base, at(base, "    let high", offset=4)) >= {"step", "let"}


RUNS = CELL.replace("        run Pick(pick: req.data.pick) then { emit pick.done {at: result} }\n", """\
        run Pick(pick: req.data.pick) then {
            emit pick.done {at: result}
        } else {
            set busy = error.message == "" # else here is a comment
        }
""").replace("    command grip() -> Grip undo release()\n    command release() -> Grip\n",
             "    command grip(force: float = 1.0) -> Grip undo release(hold: args.force)\n"
             "    command release(hold: float = 0.0) -> Grip\n")


@pytest.mark.parametrize(("typed", "after", "expected"), [
    ("{at: result.", "{at: result", {"x", "y", "z"}),  # `then`: the run's value, a Pose
    ("error.message", "error.", {"message", "code"}),  # `else`: the run's error
    ("(hold: args.force)", "(hold: args.", {"force"}),  # a command's default undo: its arguments
])
def test_completion_after_result_error_and_args_offers_the_fields_of_their_type(
        cell: Path, typed: str, after: str, expected: set[str]) -> None:
    # `result.`, `error.` and `args.` offered nothing: those names were not among the names in scope
    program, by_file = diagnosed(cell, RUNS)
    assert by_file[cell] == []
    text = RUNS.replace(typed.replace(".", "", 1) if typed.startswith("{") else typed, typed, 1)
    assert labels(program, cell, text, at(text, after, offset=len(after) + (0 if after.endswith(".") else 1))) \
        == expected


def test_result_is_in_scope_in_then_and_error_in_else_only(cell: Path) -> None:
    program, _ = diagnosed(cell, RUNS)
    in_then = labels(program, cell, RUNS, at(RUNS, "{at: result}", offset=5))
    in_else = labels(program, cell, RUNS, at(RUNS, "error.message"))
    in_call = labels(program, cell, RUNS, at(RUNS, "req.data.pick)"))
    assert "result" in in_then and "error" not in in_then
    assert "error" in in_else and "result" not in in_else
    assert "req" in in_call and not {"result", "error"} & in_call


def test_completion_after_a_dot_on_a_name_ending_in_a_digit_offers_its_fields(cell: Path) -> None:
    # a name ending in a digit (`p2.`, `s0.`) was taken for a number: every name and keyword was offered instead
    text = CELL.replace("    let high = there.z + 0.1", "    step p2 = move_to(target: pick) after felt\n"
                                                      "    let high = there.z + 0.1")
    program = compile_program(cell, {cell: text})
    typing = text.replace("let high = there.z + 0.1", "let high = p2.")
    assert labels(program, cell, typing, at(typing, "= p2.", offset=5)) == {"x", "y", "z"}
    for number in ["1.", "1e5.", "0.5 + 2."]:  # a number's dot: no field
        typing = text.replace("let high = there.z + 0.1", f"let high = {number}")
        assert "x" not in labels(program, cell, typing, at(typing, f"= {number}", offset=2 + len(number))), number
