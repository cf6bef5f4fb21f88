"""The "Add `undo`" quick fix inserts an undo that checks: the robot's declared inverse, else a snippet."""

from __future__ import annotations

from pathlib import Path

import pytest

from bbflow.lsp.analysis import diagnostics_by_file
from bbflow.lsp.program import compile_program
from bbflow.lsp.refactor import Fix, quick_fixes

CELL = """\
type Pose = {x: float, y: float, z: float}

robot Arm {
    command move_to(target: Pose, speed: float = 0.5) -> Pose category motion
    command close_gripper(force: float = 20.0) -> float undo open_gripper()
    command open_gripper() -> float
    command mount(name: str, slot: int = 1) -> str undo unmount(tool: args.name)
    command unmount(tool: str) -> str
    command stow() -> Pose
    command unstow(at: Pose, fast: bool = false) -> Pose undo stow()
    command read() -> float readonly
    command home() -> Pose category motion
}

reactor Go(at: Pose) -> Pose on Arm {
    step first = move_to(target: at) undo home()
    STEP
    step last  = read() after first
    return first
}
"""


def _fixes(tmp_path: Path, step: str, cell: str = CELL) -> tuple[str, list[Fix]]:
    text = cell.replace("STEP", step)
    path = tmp_path / "cell.flow"
    path.write_text(text)
    program = compile_program(path, {path: text})
    found = [d for d in diagnostics_by_file(program)[path] if d.code == "BBF401"]
    assert len(found) == 1, found
    return text, [f for f in quick_fixes(program, path, found) if f.title != "Add `irreversible`"]


def _applied(text: str, fix: Fix) -> str:
    lines = text.split("\n")
    at = fix.range.start
    lines[at.line] = lines[at.line][:at.character] + fix.new_text + lines[at.line][at.character:]
    return "\n".join(lines)


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "fixed.flow"
    path.write_text(text)
    program = compile_program(path, {path: text})
    return [f"{d.code} {d.message}" for d in diagnostics_by_file(program).get(path, []) if d.severity == "error"]


@pytest.mark.parametrize(("step", "title"), [
    # open_gripper is close_gripper's declared undo, so close_gripper undoes it (its force has a default)
    ("step s = open_gripper() after first", "Add `undo close_gripper()`"),
    # mount's undo passes its `name` on as unmount's `tool`: the step's tool becomes mount's name
    ('step s = unmount(tool: "gripper") after first', 'Add `undo mount(name: "gripper")`'),
    ('step s = unmount("gripper") after first', 'Add `undo mount(name: "gripper")`'),
    # unstow's `at` is a Pose, the step's own result is one
    ("step s = stow() after first", "Add `undo unstow(at: s)`"),
])
def test_the_robots_declared_inverse_is_inserted_and_checks(tmp_path: Path, step: str, title: str) -> None:
    text, fixes = _fixes(tmp_path, step)
    assert [f.title for f in fixes] == [title]
    assert fixes[0].snippet is None
    fixed = _applied(text, fixes[0])
    assert f"{step} {title[len('Add `'):-1]}\n" in fixed
    assert _errors(tmp_path, fixed) == []


def test_without_an_inverse_a_snippet_offers_the_robots_commands(tmp_path: Path) -> None:
    text, fixes = _fixes(tmp_path, "step s = move_to(target: at) after first")
    assert [f.title for f in fixes] == ["Add `undo`"]
    fix = fixes[0]
    # the commands that change something, those that need no argument first; readonly `read` is not one
    assert fix.snippet == " undo ${1|close_gripper,open_gripper,stow,home,move_to,mount,unmount,unstow|}($2)"
    assert fix.new_text == " undo close_gripper()"  # a client without snippets gets the first choice
    assert _errors(tmp_path, _applied(text, fix)) == []


def test_an_action_step_gets_the_snippet_too(tmp_path: Path) -> None:
    cell = CELL.replace("reactor Go", 'action log(x: float) -> float = "m:log"\n\nreactor Go')
    text, fixes = _fixes(tmp_path, "step s = log(x: 1.0) after first", cell)
    assert [f.title for f in fixes] == ["Add `undo`"]
    assert fixes[0].snippet is not None and fixes[0].snippet.startswith(" undo ${1|close_gripper,")
    assert _errors(tmp_path, _applied(text, fixes[0])) == []
