"""``bbflow drill``: every effectful step failed in turn (commands, actions, composed reactors as a unit, map
iterations), then each undo once; a broken undo, or a step left un-undone, fails the drill naming the step."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.build import compile_project
from bbflow.cli import main
from bbflow.runtime.drill import Call, Key, check_case
from bbflow.runtime.executor import RunResult
from bbflow.runtime.ports import RuntimeFailure

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pick_and_place"

JOB = """\
type Pose = {x: float, y: float, z: float}

robot Arm {
    limit motion 1
    command move_to(target: Pose) -> Pose category motion
    command home() -> Pose category motion
    command close_gripper() -> bool undo open_gripper()
    command open_gripper() -> bool
    command mark(slot: int) -> int undo unmark(slot: args.slot)
    command unmark(slot: int) -> int
    command stamp() -> int
}

action reserve(slot: int) -> int = "store:reserve"
action unreserve(slot: int) -> int = "store:unreserve"

reactor Unbook(slot: int) -> int {
    step freed = unreserve(slot: slot)
    return freed
}

reactor Grab(at: Pose) -> bool on Arm {
    step there = move_to(target: at) undo home()
    step held  = close_gripper() after there
    return held
}

reactor Job(at: Pose, slots: list[int]) -> int on Arm {
    concurrency 1
    step booked  = reserve(slot: 1) undo Unbook(slot: booked)  # an action, undone by a reactor
    step grabbed = Grab(at: at) after booked
    map marked over slots as slot {
        step m = mark(slot: slot)
        return m
    }
    step stamped = stamp() after grabbed, marked irreversible "the label is printed"
    step parked  = home() after stamped undo home()
    return booked
}
"""

STORE = """\
def reserve(slot):
    return slot


def unreserve(slot):
    if slot < 0:
        raise ValueError("no such slot")
    return slot
"""


def drill(*argv: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["drill", *argv])


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "cell.flow").write_text(JOB)
    (tmp_path / "store.py").write_text(STORE)
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "job"\nsource = "flows"\n\n'
                                          '[robot.arm]\ninterface = "cell.Arm"\ndriver = "sim"\n')
    return tmp_path


def _lines(out: str) -> dict[str, str]:
    """The table's rows by case name (the columns are separated by two spaces or more)."""
    rows = {}
    for line in out.splitlines():
        cells = [c for c in line.split("  ") if c.strip()]
        if len(cells) == 5:
            rows[cells[0].strip()] = "|".join(c.strip() for c in cells[1:])
    return rows


def test_the_example_passes_every_case() -> None:
    result = drill("PickAndPlace", "--project", str(EXAMPLE))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for case in ("baseline", "fail approach", "fail grip", "fail lift", "fail placed", "fail release",
                 "undo of approach fails once", "undo of placed fails once"):
        assert case in out
    assert "10 of 10 cases passed" in out
    assert "acknowledged: release is irreversible (the part is placed)" in out
    assert "not failed: gripped (wait_event: a wait has no effect to undo)" in out


def test_actions_composed_reactors_and_map_iterations_are_failed_too(job: Path) -> None:
    result = drill("Job", "--project", str(job), "--input", "slots=[4, 5]")
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert list(rows) == [
        "case", "baseline", "fail booked", "fail m[0]", "fail m[1]", "fail grabbed (as a unit: grabbed/held fails)",
        "fail stamped", "fail parked",
        "fail parked, undo of booked fails once", "fail parked, undo of m[0] fails once",
        "fail parked, undo of m[1] fails once", "fail parked, undo of grabbed/there fails once",
        "fail parked, undo of grabbed/held fails once",
    ]
    # an action step, undone by an action; each map iteration on its own; the composed reactor rolls back
    # inside, then the rest: reverse order of completion, run by run
    assert rows["fail booked"] == "failed|-|-|ok"
    assert rows["fail m[1]"] == "failed|m[0], booked|-|ok"
    assert rows["fail grabbed (as a unit: grabbed/held fails)"] == "failed|grabbed/there, m[1], m[0], booked|-|ok"
    # the stamp stays (irreversible, acknowledged); everything before it is undone in reverse order
    assert rows["fail parked"] == "failed|grabbed/held, grabbed/there, m[1], m[0], booked|stamped|ok"
    assert "12 of 12 cases passed" in result.stdout


def _drill_with(faults: str, folder: Path, project: Path, reactor: str):  # type: ignore[no-untyped-def]
    file = folder / "faults.toml"
    file.write_text(faults)
    return drill(reactor, "--project", str(project), "--faults", str(file))


def _fails_naming(result, message: str, step: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert message in " ".join(result.stdout.split())
    assert result.stdout.rstrip().endswith(f"left un-undone or undone wrongly: {step}")


def test_an_undo_that_always_fails_fails_the_drill_naming_the_step(tmp_path: Path) -> None:
    result = _drill_with('[[fault]]\ncommand = "home"\nerror = "stuck"\n', tmp_path, EXAMPLE, "PickAndPlace")
    _fails_naming(result, "FAILED fail grip: the undo of step approach failed: home failed: stuck", "approach")


def test_a_broken_undo_inside_a_composed_reactor_is_named_by_its_path(job: Path) -> None:
    result = _drill_with('[[fault]]\ncommand = "open_gripper"\nerror = "stuck"\n', job, job, "Job")
    _fails_naming(result, "the undo of step grabbed/held failed: open_gripper failed: stuck", "grabbed/held")


def test_a_broken_action_undo_fails_the_drill(job: Path) -> None:
    (job / "flows" / "cell.flow").write_text(JOB.replace("undo Unbook(slot: booked)", "undo Unbook(slot: -1)"))
    _fails_naming(drill("Job", "--project", str(job)),
                  "the undo of step booked failed: action unreserve: no such slot", "booked")


def test_a_robot_that_stops_during_the_rollback_leaves_steps_un_undone(tmp_path: Path) -> None:
    # the fourth move_to of a case is the first undo of a move (the baseline moves three times): it disarms
    result = _drill_with('[[fault]]\ncommand = "move_to"\ncall = 4\ndisarm = true\n', tmp_path, EXAMPLE,
                         "PickAndPlace")
    assert result.exit_code == 1, result.output
    out = " ".join(result.stdout.split())
    assert "fail lift failed grip, approach - ok" in out  # no undo moves: nothing stops
    assert "FAILED fail placed: expected the run to fail and roll back, it halted" in out
    for step in ("lift", "grip", "approach"):
        assert f"FAILED fail placed: step {step} was undone 0 times, expected once" in out


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
    return [{"event": "step.ok", "run": run, "reactor": "PickAndPlace", "step": s} for s in steps] + \
        [{"event": "undo.ok", "run": run, "reactor": "PickAndPlace", "step": s} for s in undone]


def _sent(undone: list[str]) -> list[Call]:
    commands = {"approach": "home", "grip": "open_gripper", "lift": "move_to", "placed": "move_to"}
    return [("undo", "r1", ((s, ()),), 1, commands[s]) for s in undone]


FAILED = RunResult("r1", "PickAndPlace", "failed", error=RuntimeFailure("boom", "command"))


@pytest.mark.parametrize(("undone", "problem"), [
    (["lift", "grip", "approach"], None),
    (["lift", "approach"], "step grip was undone 0 times, expected once"),
    (["lift", "grip", "grip", "approach"], "step grip was undone 2 times, expected once"),
    (["grip", "lift", "approach"], "undone in the order grip, lift, approach, expected lift, grip, approach"
                                   " (reverse order of completion)"),
])
def test_the_judge_of_a_case(program, undone: list[str], problem: str | None) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    case = check_case(program, reactor, "fail placed", FAILED,
                      _events("r1", ["ready", "approach", "grip", "gripped", "lift"], undone), _sent(undone), "armed")
    if problem is None:
        assert case.passed, case.problems
    else:
        assert problem in case.problems and not case.passed


def test_the_judge_names_an_effectful_step_left_without_undo(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    # release is irreversible: acknowledged; a completed step the rollback skipped is named
    case = check_case(program, reactor, "fail x", FAILED, _events("r1", ["approach", "release"], []), [], "armed")
    assert case.acknowledged == ("release",)
    assert case.at_fault == ("approach",)


def test_the_judge_follows_composed_runs(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    # a composed run (keyed under its composing step, here `gripped`) that succeeded inside a run that rolled
    # back must be undone as well
    paths: dict[str, Key] = {"r1": (), "c1": (("gripped", ()),)}
    events = [*_events("c1", ["approach"], []),
              {"event": "run.ok", "run": "c1", "reactor": "PickAndPlace", "step": None, "parent": "r1"},
              *_events("r1", ["gripped"], [])]
    events[0]["parent"] = "r1"
    case = check_case(program, reactor, "fail x", FAILED, events, [], "armed", paths)
    assert case.problems == ("step gripped/approach was undone 0 times, expected once",)
    assert case.at_fault == ("gripped/approach",)
    # undone, though the run around it was not rolled back
    events = [*_events("c1", ["approach"], ["approach"]),
              {"event": "run.ok", "run": "c1", "reactor": "PickAndPlace", "step": None, "parent": "r1"}]
    events[0]["parent"] = "r1"
    case = check_case(program, reactor, "fail x", FAILED, events, [], "armed", paths)
    assert case.problems == ("step gripped/approach was undone, but its run was not rolled back",)


def test_the_robot_must_still_be_armed(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    case = check_case(program, reactor, "fail grip", FAILED, _events("r1", ["ready", "approach"], ["approach"]),
                      _sent(["approach"]), "disarmed")
    assert case.problems == ("the robot is disarmed after the rollback, expected armed",)
    case = check_case(program, reactor, "fail grip", FAILED, _events("r1", ["ready", "approach"], ["approach"]),
                      [], "armed")
    assert case.problems == ("step approach: its undo home never reached the robot",)


def test_a_case_whose_undo_fault_never_hit_proves_nothing(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    events = _events("r1", ["ready", "approach"], ["approach"])
    case = check_case(program, reactor, "fail grip, undo of approach fails once", FAILED, events,
                      _sent(["approach"]), "armed", undo_fails=(("approach", ()),))
    assert case.problems == ("the undo of step approach ran without the failure the case injects",)
    events.insert(2, {"event": "undo.error", "run": "r1", "reactor": "PickAndPlace", "step": "approach",
                      "attempt": 1})
    assert check_case(program, reactor, "fail grip, undo of approach fails once", FAILED, events,
                      _sent(["approach"]), "armed", undo_fails=(("approach", ()),)).passed


def test_a_failure_a_fallback_absorbs_needs_no_rollback(program) -> None:  # type: ignore[no-untyped-def]
    reactor = program.find("reactors", "PickAndPlace")
    ok = RunResult("r1", "PickAndPlace", "ok")
    events = _events("r1", ["ready", "approach", "grip"], [])
    assert check_case(program, reactor, "fail grip", ok, events, [], "armed", absorbed=True).passed
    assert not check_case(program, reactor, "fail grip", ok, events, [], "armed").passed
