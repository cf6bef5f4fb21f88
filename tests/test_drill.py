"""``bbflow drill``: every case of the example passes; a broken undo fails the drill, naming the step."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.build import compile_project
from bbflow.cli import main
from bbflow.runtime.drill import check_case
from bbflow.runtime.executor import RunResult
from bbflow.runtime.ports import RuntimeFailure

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pick_and_place"


def drill(*argv: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["drill", *argv])


def test_the_example_passes_every_case() -> None:
    result = drill("PickAndPlace", "--project", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for case in ("baseline", "fail approach", "fail grip", "fail lift", "fail placed", "fail release",
                 "undo of approach fails once", "undo of placed fails once"):
        assert case in out
    assert "10 of 10 cases passed" in out
    assert "acknowledged: release is irreversible (the part is placed)" in out
    assert "not failed: gripped (wait_event: no robot command to fail)" in out


def test_an_undo_that_always_fails_fails_the_drill_naming_the_step(tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[fault]]\ncommand = "home"\nerror = "stuck"\n')
    result = drill("PickAndPlace", "--project", str(EXAMPLE), "--faults", str(faults))
    assert result.exit_code == 1
    assert "FAILED fail grip: the undo of step approach failed: home failed: stuck" in " ".join(result.stdout.split())
    assert result.stdout.rstrip().endswith("left un-undone or undone wrongly: approach")


def test_usage_errors() -> None:
    assert drill("Nope", "--project", str(EXAMPLE)).exit_code == 2
    bad = drill("PickAndPlace", "--project", str(EXAMPLE), "--input", "pick=[1]")
    assert bad.exit_code == 2 and "--input" in bad.stderr


@pytest.fixture(scope="module")
def program():  # type: ignore[no-untyped-def]
    _, program = compile_project(EXAMPLE)
    assert program is not None
    return program


def _events(run: str, steps: list[str], undone: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return [{"event": "step.ok", "run": run, "step": s} for s in steps] + \
        [{"event": "undo.ok", "run": run, "step": s} for s in undone]


def _sent(undone: list[str]) -> list[tuple[str, str, str, int, str]]:
    commands = {"approach": "home", "grip": "open_gripper", "lift": "move_to", "placed": "move_to"}
    return [("undo", "PickAndPlace", s, 1, commands[s]) for s in undone]


@pytest.mark.parametrize(("undone", "problem"), [
    (["lift", "grip", "approach"], None),
    (["lift", "approach"], "step grip was undone 0 times, expected once"),
    (["lift", "grip", "grip", "approach"], "step grip was undone 2 times, expected once"),
    (["grip", "lift", "approach"], "undone in the order grip, lift, approach, expected lift, grip, approach"
                                   " (reverse order of completion)"),
])
def test_the_judge_of_a_case(program, undone: list[str], problem: str | None) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    failed = RunResult("r1", "PickAndPlace", "failed", error=RuntimeFailure("boom", "command"))
    case = check_case(program, reactor, "fail placed", failed, _events("r1", ["ready", "approach", "grip", "gripped",
                                                                              "lift"], undone),
                      _sent(undone), "armed")
    if problem is None:
        assert case.passed, case.problems
    else:
        assert problem in case.problems and not case.passed


def test_the_robot_must_still_be_armed(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    failed = RunResult("r1", "PickAndPlace", "failed", error=RuntimeFailure("boom", "command"))
    case = check_case(program, reactor, "fail grip", failed, _events("r1", ["ready", "approach"], ["approach"]),
                      _sent(["approach"]), "disarmed")
    assert case.problems == ("the robot is disarmed after the rollback, expected armed",)
    case = check_case(program, reactor, "fail grip", failed, _events("r1", ["ready", "approach"], ["approach"]),
                      [], "armed")
    assert case.problems == ("step approach: its undo home never reached the robot",)
