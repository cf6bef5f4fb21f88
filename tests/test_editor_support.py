"""Editor support: formatting through the language server, the TextMate grammar and the VS Code manifest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bbflow.compiler.syntax import flow_parser
from bbflow.lsp.formatting import format_document

ROOT = Path(__file__).resolve().parent.parent
EDITORS = ROOT / "editors"

MESSY = "signal  a\nagent A {\non a {emit a}\n}\n"
CANONICAL = "signal a\nagent A {\n    on a { emit a }\n}\n"


def test_the_formatting_edit_replaces_the_document() -> None:
    edit = format_document(MESSY, "a.flow")
    assert edit is not None
    whole, text = edit
    assert text == CANONICAL
    assert (whole.start.line, whole.start.character, whole.end.line, whole.end.character) == (0, 0, 4, 0)
    assert format_document(CANONICAL, "a.flow") is None  # nothing to change
    assert format_document("reactor {\n", "a.flow") is None  # a syntax error: left alone


def test_the_textmate_grammar_knows_every_keyword() -> None:
    grammar = json.loads((EDITORS / "bbflow.tmLanguage.json").read_text())
    assert grammar["scopeName"] == "source.flow" and grammar["fileTypes"] == ["flow"]
    keywords = {t.pattern.value for t in flow_parser().terminals
                if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)}
    rules = json.dumps(grammar["repository"])
    missing = sorted(k for k in keywords if not re.search(rf"[|(:]{k}[|)\\]", rules))
    assert not missing, f"keywords without colour: {missing}"
    for rule in _rules(grammar["repository"]):  # every regex compiles (Python's syntax is close to Oniguruma's here)
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])


def test_the_vscode_manifest_points_at_the_grammar() -> None:
    manifest = json.loads((EDITORS / "package.json").read_text())
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".flow"] and grammar["language"] == language["id"] == "flow"
    assert (EDITORS / grammar["path"]).resolve() == (EDITORS / "bbflow.tmLanguage.json").resolve()
    assert grammar["scopeName"] == "source.flow"
    assert json.loads((EDITORS / language["configuration"]).read_text())["comments"]["lineComment"] == "#"


def _rules(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if any(k in node for k in ("match", "begin")):
            found.append(node)
        for value in node.values():
            found.extend(_rules(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_rules(value))
    return found


def test_routes_complete_the_agents_robot_events(tmp_path: Path) -> None:
    from bbflow.lsp.complete import complete
    from bbflow.lsp.locate import Pos
    from bbflow.lsp.program import compile_program

    text = ("robot Arm {\n    command home() -> bool\n    event force: {newtons: float}\n    event bumped\n}\n"
            "agent Picker on Arm {\n    on robot.event.\n}\n")
    path = tmp_path / "cell.flow"
    path.write_text(text)
    program = compile_program(path, {path: text})
    line = text.split("\n").index("    on robot.event.")
    got = {c.label for c in complete(program, path, text, Pos(line, len("    on robot.event.")))}
    assert {"force", "bumped"} <= got
    coordinator = text.replace("agent Picker on Arm", "agent Picker")
    got = {c.label for c in complete(program, path, coordinator, Pos(line, len("    on robot.event.")))}
    assert not {"force", "bumped"} & got  # an agent on no robot hears no robot's events


REFACTOR = """\
type Pose = {x: float, y: float, z: float}
signal pick.requested: {at: Pose}
signal pick.done: {at: Pose}

robot Arm {
    command move_to(target: Pose) -> Pose
    command home() -> Pose
}

reactor Go(at: Pose) -> Pose on Arm {
    step there = move_to(target: at)
    step back  = home() after there
    return there
}

agent Picker on Arm {
    state { done: int = 0 }
    on pick.requested as req { set done = done + 1  run Go(at: req.data.at) then { emit pick.done {at: result} } }
    on pick.done { }
    on robot.** { }
}
"""


def _program(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    from bbflow.lsp.program import compile_program

    path = tmp_path / "cell.flow"
    path.write_text(text)
    return path, compile_program(path, {path: text})


def _at(text: str, word: str, nth: int = 0):  # type: ignore[no-untyped-def]
    from bbflow.lsp.locate import Pos

    index = -1
    for _ in range(nth + 1):
        index = text.index(word, index + 1)
    return Pos(text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1))


def _words(text: str, places) -> list[str]:  # type: ignore[no-untyped-def]
    lines = text.split("\n")
    return [lines[p.range.start.line][p.range.start.character:p.range.end.character] for p in places]


@pytest.mark.parametrize(("word", "nth", "count", "name"), [
    ("there", 0, 3, "there"),  # a step: declared, after, return
    ("Go", 0, 2, "Go"),  # a reactor: declared, run
    ("Pose", 0, 8, "Pose"),  # a type: declared, and in 2 payloads, 3 commands and the reactor
    ("done", 1, 3, "done"),  # a state field: declared, set, read
    ("pick.done", 0, 3, "pick.done"),  # a signal: declared, emitted, routed
])
def test_find_references(tmp_path: Path, word: str, nth: int, count: int, name: str) -> None:
    from bbflow.lsp.refactor import references

    path, program = _program(tmp_path, REFACTOR)
    places = references(program, path, _at(REFACTOR, word, nth))
    assert _words(REFACTOR, places) == [name] * count


def test_rename_checks_the_new_name(tmp_path: Path) -> None:
    from bbflow.lsp.refactor import RenameError, rename

    path, program = _program(tmp_path, REFACTOR)
    assert len(rename(program, path, _at(REFACTOR, "pick.done"), "pick.finished")) == 3
    with pytest.raises(RenameError, match="not valid"):
        rename(program, path, _at(REFACTOR, "there"), "step")
    with pytest.raises(RenameError, match="not valid"):
        rename(program, path, _at(REFACTOR, "there"), "a.b")
    with pytest.raises(RenameError, match="nothing to rename"):
        rename(program, path, _at(REFACTOR, "{ }"), "x")


def test_quick_fixes_for_did_you_mean_and_missing_undo(tmp_path: Path) -> None:
    from bbflow.lsp.analysis import diagnostics_by_file
    from bbflow.lsp.refactor import quick_fixes

    text = REFACTOR.replace("step back  = home() after there", "step back  = hom() after there")
    path, program = _program(tmp_path, text)
    fixes = quick_fixes(program, path, diagnostics_by_file(program)[path])
    assert [(f.title, f.new_text) for f in fixes] == [("Replace with `home`", "home")]
    # a name of thousands of characters is shortened in the message: no fix would insert the whole name
    long_name = "home" + "e" * 200
    text = REFACTOR.replace("command home()", f"command {long_name}()").replace("home()", f"{long_name}x()")
    path, program = _program(tmp_path, text)
    [message] = [d.message for d in diagnostics_by_file(program)[path] if "did you mean" in d.message]
    assert "..." in message and quick_fixes(program, path, diagnostics_by_file(program)[path]) == []
    text = REFACTOR.replace("step back  = home() after there\n    return there",
                            "step back  = home() after there\n    step last = move_to(target: back)\n    return there")
    path, program = _program(tmp_path, text)
    fixes = quick_fixes(program, path, [d for d in diagnostics_by_file(program)[path] if d.code == "BBF401"])
    assert [f.title for f in fixes] == ["Add `irreversible`", "Add `undo`"] * 2
    fixed = text.split("\n")
    first = fixes[0]
    line = fixed[first.range.start.line]
    fixed[first.range.start.line] = line[:first.range.start.character] + first.new_text + line[first.range.start.character:]
    assert 'step there = move_to(target: at) irreversible "why it cannot be undone"' in "\n".join(fixed)
