"""``bbflow run`` through the command line (click's CliRunner, in-process): scenarios, exit codes, events, drivers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bbflow.cli import main
from run_helpers import CELL_FLOW, PICK_INPUTS, PLACE, REQUEST, arm_table, names, read_events, write_project

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "pick_and_place"
DRIVERS = REPO / "examples" / "drivers"


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project for most tests, so that it is compiled once (the cache does the rest)."""
    return write_project(tmp_path_factory.mktemp("cell"))


def bbflow_run(project: Path, *args: str, stdin: str | None = None, events: Path | None = None) -> Result:
    argv = ["run", str(project), *args]
    if events is not None:
        argv += ["--events", str(events)]
    return CliRunner().invoke(main, argv, input=stdin)


def faults(tmp_path: Path, text: str) -> str:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    return str(path)


def subsequence(events: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> bool:
    """``wanted`` appear in ``events`` in this order (each matched on the fields it gives)."""
    it = iter(events)
    return all(any(all(e.get(k) == v for k, v in want.items()) for e in it) for want in wanted)


# --- the scenarios of the conformance run cases -------------------------------------------------------

SCENARIOS = {
    "ok": ([], None, None, 0, [
        {"event": "run.start", "reactor": "PickAndPlace"}, {"event": "step.ok", "step": "approach"},
        {"event": "step.ok", "step": "release"}, {"event": "run.ok", "result": PLACE}]),
    "grip fails": (["--faults"], '[[fault]]\ncommand = "close_gripper"\nerror = "jammed"\n', None, 1, [
        {"event": "step.ok", "step": "approach"}, {"event": "step.error", "step": "grip"},
        {"event": "undo.start", "step": "approach"}, {"event": "undo.ok", "step": "approach"},
        {"event": "run.failed", "reactor": "PickAndPlace"}]),
    "undo order": (["--faults"], '[[fault]]\ncommand = "move_to"\ncall = 3\nerror = "collision"\n', None, 1, [
        {"event": "step.error", "step": "placed"}, {"event": "undo.ok", "step": "lift"},
        {"event": "undo.ok", "step": "grip"}, {"event": "undo.ok", "step": "approach"}, {"event": "run.failed"}]),
    "retry": (["--faults"], '[[fault]]\ncommand = "move_to"\ncall = 1\nerror = "slip"\n', None, 0, [
        {"event": "step.retry", "step": "approach"}, {"event": "step.ok", "step": "approach"}, {"event": "run.ok"}]),
    "halt": (["--faults"], '[[fault]]\ncommand = "move_to"\ncall = 2\ndisarm = true\n', None, 3, [
        {"event": "step.ok", "step": "gripped"}, {"event": "run.halted", "reactor": "PickAndPlace"}]),
    "agent picks": ([], None, REQUEST + "\n", 0, [
        {"event": "signal.in", "type": "pick.requested"},
        {"event": "signal.routed", "type": "pick.requested", "agent": "Picker", "route": "pick.requested"},
        {"event": "run.start"}, {"event": "run.ok"}, {"event": "signal.emit", "type": "pick.completed"}]),
    "agent busy": ([], None, REQUEST + "\n" + REQUEST + "\n", 0, [
        {"event": "run.start"}, {"event": "signal.emit", "type": "pick.rejected", "agent": "Picker"},
        {"event": "run.ok"}, {"event": "signal.emit", "type": "pick.completed"}]),
    "agent fails": (["--faults"], '[[fault]]\ncommand = "close_gripper"\nerror = "jammed"\n', REQUEST + "\n", 0, [
        {"event": "run.failed"}, {"event": "signal.emit", "type": "pick.failed",
                                  "data": {"reason": "close_gripper failed: jammed"}}]),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios(cell: Path, tmp_path: Path, name: str) -> None:
    flags, fault_text, stdin, exit_code, wanted = SCENARIOS[name]
    args = list(PICK_INPUTS) if stdin is None else ["--until-idle"]
    if stdin is None:
        args = ["--reactor", "PickAndPlace", *args]
    if fault_text is not None:
        args += [*flags, faults(tmp_path, fault_text)]
    result = bbflow_run(cell, *args, stdin=stdin, events=tmp_path / "events.jsonl")
    assert result.exit_code == exit_code, result.stderr
    events = read_events(tmp_path / "events.jsonl")
    assert subsequence(events, wanted), names(events, step=True)


def test_the_result_goes_to_stdout_and_the_summary_to_stderr(cell: Path) -> None:
    result = bbflow_run(cell, "--reactor", "PickAndPlace", *PICK_INPUTS)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == PLACE
    assert result.stderr.splitlines()[-1] == 'PickAndPlace ok: {"x": 0.0, "y": 0.3, "z": 0.1}'
    assert "run.start      PickAndPlace" in result.stderr  # plain lines, not a terminal


def test_a_failed_run_reports_the_error_and_undo_errors(cell: Path, tmp_path: Path) -> None:
    path = faults(tmp_path, '[[fault]]\ncommand = "close_gripper"\nerror = "jammed"\n'
                            '[[fault]]\ncommand = "home"\nerror = "stuck"\n')
    result = bbflow_run(cell, "--reactor", "PickAndPlace", *PICK_INPUTS, "--faults", path)
    assert result.exit_code == 4 and result.stdout == ""  # not 1: the robot may not be safe
    assert result.stderr.splitlines()[-1] == (
        "PickAndPlace failed: close_gripper failed: jammed; rolled back; undo errors: approach: home failed: stuck")


def test_bad_input_is_refused_before_anything_moves(cell: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = bbflow_run(cell, "--reactor", "PickAndPlace", "--input", 'pick="north"',
                        "--input", "place=" + json.dumps(PLACE), events=events)
    assert result.exit_code == 2
    assert "error: --input: PickAndPlace: input pick: expected {x: float, y: float, z: float}, got str 'north'" \
        in result.stderr
    assert not events.exists() or not read_events(events)


def test_missing_input_and_bad_faults_file_exit_2(cell: Path, tmp_path: Path) -> None:
    result = bbflow_run(cell, "--reactor", "PickAndPlace", "--input", "place=" + json.dumps(PLACE))
    assert result.exit_code == 2 and "missing input 'pick'" in result.stderr
    path = faults(tmp_path, '[[fault]]\ncommand = "teleport"\nerror = "no"\n')
    result = bbflow_run(cell, "--reactor", "PickAndPlace", *PICK_INPUTS, "--faults", path)
    assert result.exit_code == 2 and "has no command 'teleport'" in result.stderr
    path = faults(tmp_path, "[[fault]\n")
    result = bbflow_run(cell, "--reactor", "PickAndPlace", *PICK_INPUTS, "--faults", path)
    assert result.exit_code == 2 and "not valid TOML" in result.stderr


def test_a_default_that_fails_when_it_runs_is_bad_input_not_a_crash(tmp_path: Path) -> None:
    # `x: float = 1 / 0` type-checks; computed before the run, it escaped `bbflow run` as a traceback
    project = write_project(tmp_path, flow=CELL_FLOW + "reactor Odd(x: float = 1 / 0) -> float { return x }\n")
    result = bbflow_run(project, "--reactor", "Odd")
    assert result.exit_code == 2, result.output
    line = CELL_FLOW.count("\n") + 1
    assert f"error: --input: Odd: the default of input 'x': division by zero (at cell.flow:{line})" in result.stderr
    assert bbflow_run(project, "--reactor", "Odd", "--input", "x=2").exit_code == 0  # given: no default computed


def test_bad_lines_are_reported_on_stderr_and_skipped(cell: Path, tmp_path: Path) -> None:
    stdin = "this is not json\n" + json.dumps({"type": "pick.requested", "data": {"pick": "over there"}}) + \
        "\n[1, 2]\n" + REQUEST + "\n"
    result = bbflow_run(cell, "--until-idle", stdin=stdin, events=tmp_path / "events.jsonl")
    assert result.exit_code == 0, result.stderr
    assert "input line 1: skipped: not JSON" in result.stderr
    assert "input line 3: skipped: not a JSON object: [1, 2]" in result.stderr
    events = read_events(tmp_path / "events.jsonl")
    dropped = [e for e in events if e["event"] == "signal.dropped"]
    assert dropped[0]["type"] == "pick.requested" and dropped[0]["reason"].startswith("bad data: data.pick")
    assert names(events).count("run.start") == 1 and "run.ok" in names(events)
    assert result.stderr.splitlines()[-1].startswith("idle: 2 signals in")


def test_every_event_has_the_fields_of_the_contract(cell: Path, tmp_path: Path) -> None:
    result = bbflow_run(cell, "--until-idle", stdin=REQUEST + "\n", events=tmp_path / "events.jsonl")
    assert result.exit_code == 0
    events = read_events(tmp_path / "events.jsonl")
    for e in events:
        assert {"event", "reactor", "step", "run", "time"} <= set(e), e
        assert isinstance(e["time"], float)
    by: dict[str, dict[str, Any]] = {}
    for e in events:
        by.setdefault(e["event"], e)  # the first of each
    assert by["run.ok"]["result"] == PLACE and by["run.ok"]["reactor"] == "PickAndPlace"
    assert by["step.ok"]["result"] is not None
    assert by["signal.in"]["data"]["place"] == PLACE and by["signal.in"]["type"] == "pick.requested"
    assert by["signal.routed"]["agent"] == "Picker" and by["signal.routed"]["route"] == "pick.requested"
    assert by["signal.emit"]["data"] == {"at": PLACE}
    runs = {e["run"] for e in events if e["event"].startswith(("run.", "step."))}
    assert len(runs) == 1  # one run, one id on all its events


def test_agents_given_on_the_command_line(cell: Path) -> None:
    result = bbflow_run(cell, "--agent", "Picker", "--until-idle", stdin="")
    assert result.exit_code == 0 and result.stderr.splitlines()[-1].startswith("idle: 0 signals in")
    result = bbflow_run(cell, "--agent", "Placer", "--until-idle", stdin="")
    assert result.exit_code == 2 and "no agent named 'Placer' (agents in the project: Picker)" in result.stderr


def test_compile_errors_are_shown_and_exit_2(tmp_path: Path) -> None:
    project = write_project(tmp_path, flow="reactor Broken() { step a = nowhere() }\n")
    result = bbflow_run(project, "--reactor", "Broken")
    assert result.exit_code == 2
    assert "error[BBF101]" in result.stderr and "cell.flow:1:" in result.stderr


def test_compile_errors_of_a_file_with_a_byte_order_mark_point_where_check_points(tmp_path: Path) -> None:
    """A leading byte order mark is no part of the text (the compiler drops it): the line shown under a
    diagnostic drops it too, or the caret stood one column left of the mistake."""
    project = write_project(tmp_path, flow="reactor Broken() { step a = nowhere() }\n")
    (project / "flows" / "cell.flow").write_bytes("\ufeffreactor Broken() { step a = nowhere() }\r\n".encode())
    result = bbflow_run(project, "--reactor", "Broken")
    lines = result.stderr.splitlines()
    shown = next(i for i, line in enumerate(lines) if "reactor Broken()" in line)
    assert "\ufeff" not in lines[shown]
    caret = lines[shown + 1]
    column = lines[shown].index("nowhere")
    assert caret[column] == "^" and caret[column - 1] != "^"


def test_no_project_is_a_usage_error(tmp_path: Path) -> None:
    result = bbflow_run(tmp_path, "--reactor", "X")
    assert result.exit_code == 2 and "no bbflow.toml" in result.stderr


def test_a_project_error_is_a_usage_error(tmp_path: Path) -> None:
    write_project(tmp_path, robots='[robot.arm]\ninterfce = "cell.Arm"\n')
    result = bbflow_run(tmp_path, "--reactor", "PickAndPlace")
    assert result.exit_code == 2 and "robot.arm.interfce: unknown key" in result.stderr


# --- drivers --------------------------------------------------------------------------------------------


def test_driver_sim_runs_a_project_configured_for_a_python_driver(tmp_path: Path) -> None:
    project = write_project(tmp_path, arm_table(driver="not_installed.anywhere:Arm"))
    result = bbflow_run(project, "--reactor", "PickAndPlace", *PICK_INPUTS)
    assert result.exit_code == 2 and "cannot import not_installed.anywhere" in result.stderr
    result = bbflow_run(project, "--reactor", "PickAndPlace", *PICK_INPUTS, "--driver", "sim")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == PLACE


def test_a_python_driver_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DRIVERS))
    project = write_project(tmp_path, arm_table(driver="toy_arm:ToyArm"))
    near = ("--input", 'to={"x": 0.0, "y": 0.05, "z": 0.5}')  # 5 cm from the toy arm's home
    events = tmp_path / "events.jsonl"
    # a real robot is not armed unless told: the first motion is refused, nothing moved
    result = bbflow_run(project, "--reactor", "Shift", *near)
    assert result.exit_code == 1
    assert "robot arm is not armed (a real robot is armed only with --arm or arm = true)" in result.stderr
    assert result.stderr.splitlines()[-1] == "Shift failed: move_to refused: arm is disarmed, not armed; rolled back, no undo errors"
    result = bbflow_run(project, "--reactor", "Shift", *near, "--arm", events=events)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"x": 0.0, "y": 0.05, "z": 0.5}
    held = next(e for e in read_events(events) if e["event"] == "step.ok" and e["step"] == "held")
    assert held["result"] == "closed"  # the toy arm's own answer (the simulator would say "open", the zero value)


def test_pick_and_place_on_the_toy_arm_waits_for_its_force_sensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy arm's wrist sensor reports the grip periodically, so `wait_event(force)` after the grip sees it;
    and its own settings come from [robot.arm.options]."""
    monkeypatch.syspath_prepend(str(DRIVERS))
    fast = "[robot.arm.options]\nmax_speed = 20.0\n"
    project = write_project(tmp_path, arm_table(driver="toy_arm:ToyArm").replace("[robot.arm.sim]", fast + "[robot.arm.sim]"))
    events = tmp_path / "events.jsonl"
    result = bbflow_run(project, "--reactor", "PickAndPlace", *PICK_INPUTS, "--arm", events=events)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == PLACE
    gripped = next(e for e in read_events(events) if e["event"] == "step.ok" and e["step"] == "gripped")
    assert gripped["result"] == {"newtons": 15.0}  # the force the reactor closed the gripper with


# --- the example -----------------------------------------------------------------------------------------


def test_the_example_readme_starts_with_this_run(tmp_path: Path) -> None:
    readme = (EXAMPLE / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.startswith("    bbflow ")]
    assert commands[0] == "bbflow run examples/pick_and_place --until-idle < examples/pick_and_place/signals.jsonl"
    usage = CliRunner().invoke(main, ["run", "--help"]).stdout  # the options the README uses exist
    for option in ("--until-idle", "--reactor", "--input", "--faults", "--events", "--robot", "--no-arm"):
        assert option in usage


def test_the_example_drill_rolls_back(tmp_path: Path) -> None:
    project = tmp_path / "pick_and_place"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".bbflow"))
    result = bbflow_run(project, "--reactor", "PickAndPlace", *PICK_INPUTS, "--faults", str(project / "jammed.toml"))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "PickAndPlace failed: close_gripper failed: jammed; rolled back, no undo errors"


def test_the_example_project_runs_its_sample_signals(tmp_path: Path) -> None:
    project = tmp_path / "pick_and_place"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".bbflow"))
    result = bbflow_run(project, "--until-idle", stdin=(EXAMPLE / "signals.jsonl").read_text(),
                        events=tmp_path / "events.jsonl")
    assert result.exit_code == 0, result.stderr
    emitted = [e["type"] for e in read_events(tmp_path / "events.jsonl") if e["event"] == "signal.emit"]
    assert emitted == ["pick.rejected", "pick.completed"]


COMMANDING = """\
signal go
robot Arm {
    limit motion 1
    command close_gripper(force: float = 20.0) -> bool category motion undo open_gripper()
    command open_gripper() -> bool
}
agent Gripper on Arm {
    on go { run close_gripper(force: 5.0) }
    on robot.** { }
}
"""


def test_a_command_an_agent_runs_is_reported_and_counted_as_a_run(tmp_path: Path) -> None:
    """A run of one step: its events (run.start, run.ok) name the command, and the summary, the journal and
    the event log agree (the summary counted only the one refused as busy: '1 runs (0 ok, 1 failed)')."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "cell.flow").write_text(COMMANDING)
    (tmp_path / "bbflow.toml").write_text(
        '[project]\nname = "commanding"\nsource = "flows"\n[robot.arm]\ninterface = "cell.Arm"\ndriver = "sim"\n'
        'queue = 1\n[robot.arm.sim]\nduration = "20ms"\n[run]\nagents = ["cell.Gripper"]\n')
    go = json.dumps({"type": "go", "source": "/test"}) + "\n"
    result = bbflow_run(tmp_path, "--until-idle", stdin=go * 3, events=tmp_path / "events.jsonl")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith("3 runs (2 ok, 1 failed, 0 halted)")
    runs = [e for e in read_events(tmp_path / "events.jsonl") if e["event"].startswith("run.")]
    ended = {e["run"]: e["event"] for e in runs if e["event"] in ("run.ok", "run.failed")}
    starts = [e for e in runs if e["event"] == "run.start"]
    assert sorted(ended.values()) == ["run.failed", "run.ok", "run.ok"]
    assert [(s["command"], s["reactor"], s["robot"], s["inputs"]) for s in starts] == \
        [("close_gripper", None, "arm", {"force": 5.0})] * 2
    assert all(ended[s["run"]] == "run.ok" for s in starts)  # the busy one never started
    listed = CliRunner().invoke(main, ["runs", str(tmp_path), "--format", "json"])
    assert sorted(r["status"] for r in json.loads(listed.stdout)) == ["failed", "ok", "ok"], listed.output
