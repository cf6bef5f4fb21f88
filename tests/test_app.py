"""bbflow.runtime.app and run_plan in-process, on virtual time: planning, reactors, agents, interrupts, safe stop."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bbflow.build import compile_project
from bbflow.project import AgentConfig, Project, RobotConfig, load_project
from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer
from bbflow.runtime.app import Session, Status
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.liveview import Board, PlainLog, describe
from bbflow.runtime.run_plan import RunOptions, UsageError, parse_inputs, plan_run
from bbflow.runtime.stdin import InputLines, stdin_source
from run_helpers import PICK_INPUTS, PLACE, REQUEST, names, write_project

SIM = {"duration": "100ms", "events": [{"after": "close_gripper", "event": "force", "data": {"newtons": 12.0}}]}


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> model.Program:
    root = write_project(tmp_path_factory.mktemp("cell"))
    diagnostics, program = compile_project(root)
    assert program is not None, diagnostics.items
    return program


def project(tmp_path: Path, robots: dict[str, RobotConfig] | None = None, **kw: Any) -> Project:
    if robots is None:
        robots = {"arm": RobotConfig("cell.Arm", sim=SIM)}
    return Project("cell", tmp_path, tmp_path, robots, kw.pop("agents", {}), kw.pop("run_agents", ("cell.Picker",)))


def reactor_options(**kw: Any) -> RunOptions:
    return RunOptions(reactor="PickAndPlace", inputs=PICK_INPUTS[1::2], **kw)


class Lines:
    """Input lines for a session, as the standard-input reader gives them."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for line in self.lines:
            yield line


def session(plan: Any, *, lines: Lines | None = None) -> tuple[Session, Recorder, list[str]]:
    recorder, notes = Recorder(), []
    return Session(plan, observer=recorder, lines=lines, note=notes.append), recorder, notes


def play(s: Session, *interrupts: float) -> Any:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        for at in interrupts:
            loop.call_later(at, s.interrupt)
        return await s.run()

    return run_virtual(main())


# --- planning: everything refused before anything moves -----------------------------------------


def test_inputs_are_conformed_to_the_parameter_types(program: model.Program, tmp_path: Path) -> None:
    plan = plan_run(program, project(tmp_path), RunOptions(reactor="PickAndPlace",
                                                           inputs=('pick={"x": 1, "y": 0, "z": 0}', "place=" + str(PLACE).replace("'", '"'))))
    assert plan.inputs["pick"] == {"x": 1.0, "y": 0.0, "z": 0.0}
    assert isinstance(plan.inputs["pick"]["x"], float)
    assert plan.reactor is not None and plan.reactor.name == "PickAndPlace"
    assert plan.reactor_robot == "arm" and [r.instance for r in plan.robots] == ["arm"]


@pytest.mark.parametrize("inputs, words", [
    (('pick="north"', 'place={"x": 0, "y": 0, "z": 0}'), ["input pick", "expected", "north"]),
    (('pick={"x": 0, "y": "up", "z": 0}', 'place={"x": 0, "y": 0, "z": 0}'), ["pick.y", "expected float", "up"]),
    (('place={"x": 0, "y": 0, "z": 0}',), ["missing input 'pick'"]),
    (('pick={}', 'place={}', 'speed=1'), ["no parameter 'speed'"]),
    (("pick={x: 1}",), ["--input pick: not JSON"]),
    (("pick",), ["expected NAME=JSON"]),
    (('pick={}', 'pick={}'), ["given twice"]),
])
def test_bad_inputs_are_refused_naming_the_input(program: model.Program, tmp_path: Path, inputs: tuple[str, ...],
                                                 words: list[str]) -> None:
    with pytest.raises(UsageError) as refused:
        plan_run(program, project(tmp_path), RunOptions(reactor="PickAndPlace", inputs=inputs))
    for word in words:
        assert word in str(refused.value)


def test_a_bare_word_input_gets_a_hint_about_quotes() -> None:
    with pytest.raises(UsageError, match="a string is written in quotes"):
        parse_inputs(["name=hello"])
    assert parse_inputs(["name=\"hello\"", "n=3", "xs=[1, 2]"]) == {"name": "hello", "n": 3, "xs": [1, 2]}


@pytest.mark.parametrize("options, message", [
    (RunOptions(inputs=("a=1",)), "--input needs --reactor"),
    (RunOptions(reactor="PickAndPlace", agents=("Picker",)), "not both"),
    (RunOptions(reactor="Nope"), "no reactor named 'Nope'"),
    (RunOptions(agents=("Nobody",)), "no agent named 'Nobody'"),
])
def test_usage_mistakes_are_refused(program: model.Program, tmp_path: Path, options: RunOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_run(program, project(tmp_path), options)


def test_nothing_to_run_is_refused(program: model.Program, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to run"):
        plan_run(program, project(tmp_path, run_agents=()), RunOptions())


def test_agents_come_from_the_options_or_the_run_table(program: model.Program, tmp_path: Path) -> None:
    default = plan_run(program, project(tmp_path), RunOptions())
    assert [a.spec.name for a in default.agents] == ["Picker"] and default.agents[0].robot == "arm"
    given = plan_run(program, project(tmp_path, run_agents=()), RunOptions(agents=("Picker", "cell.Picker")))
    assert [a.spec.qualname for a in given.agents] == ["cell.Picker"]  # one agent, named twice


def test_robot_binding_with_several_candidates(program: model.Program, tmp_path: Path) -> None:
    robots = {"left": RobotConfig("cell.Arm"), "right": RobotConfig("cell.Arm"), "belt": RobotConfig("cell.Conveyor")}
    with pytest.raises(UsageError, match=r"several robots implement it \(left, right\).*--robot"):
        plan_run(program, project(tmp_path, robots), reactor_options())
    assert plan_run(program, project(tmp_path, robots), reactor_options(robots=("right",))).reactor_robot == "right"
    with pytest.raises(UsageError, match="'belt' is a cell.Conveyor"):
        plan_run(program, project(tmp_path, robots), reactor_options(robots=("belt",)))
    with pytest.raises(UsageError, match="no robot instance 'nope'"):
        plan_run(program, project(tmp_path, robots), reactor_options(robots=("nope",)))
    with pytest.raises(UsageError, match=r"\[agent.NAME\] robot"):
        plan_run(program, project(tmp_path, robots), RunOptions())
    bound = plan_run(program, project(tmp_path, robots, agents={"Picker": AgentConfig("left")}), RunOptions())
    assert bound.agents[0].robot == "left" and [r.instance for r in bound.robots] == ["left"]


def test_a_reactor_on_a_robot_nobody_configured_is_refused(program: model.Program, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match='no robot in .* implements it: add \\[robot.NAME\\] with interface = "cell.Conveyor"'):
        plan_run(program, project(tmp_path), RunOptions(reactor="Feed"))


def test_an_unknown_interface_in_the_project_is_refused(program: model.Program, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="robot.arm.interface: no robot interface 'cell.Armm'"):
        plan_run(program, project(tmp_path, {"arm": RobotConfig("cell.Armm")}), reactor_options())


def test_arming_rules(program: model.Program, tmp_path: Path) -> None:
    def arms(config: RobotConfig, **kw: Any) -> tuple[bool, str]:
        plan = plan_run(program, project(tmp_path, {"arm": config}), reactor_options(**kw))
        return plan.robots[0].arm, plan.robots[0].driver

    real = RobotConfig("cell.Arm", driver="toy_arm:ToyArm")
    assert arms(RobotConfig("cell.Arm")) == (True, "sim")  # a simulated robot is armed
    assert arms(RobotConfig("cell.Arm"), arm=False) == (False, "sim")  # unless --no-arm
    assert arms(real) == (False, "toy_arm:ToyArm")  # a real one only when told
    assert arms(real, arm=True) == (True, "toy_arm:ToyArm")
    assert arms(RobotConfig("cell.Arm", driver="toy_arm:ToyArm", arm=True)) == (True, "toy_arm:ToyArm")
    assert arms(real, driver="sim") == (True, "sim")  # --driver sim: simulated, so armed


def test_faults_files_are_checked_and_shared_out_by_command(program: model.Program, tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[fault]]\ncommand = "close_gripper"\nerror = "jammed"\n')
    plan = plan_run(program, project(tmp_path), reactor_options(faults=str(faults)))
    assert plan.robots[0].faults is not None and plan.robots[0].faults.faults[0].error == "jammed"
    faults.write_text('[[fault]]\ncommand = "close_griper"\nerror = "jammed"\n')
    with pytest.raises(UsageError, match="did you mean 'close_gripper'"):
        plan_run(program, project(tmp_path), reactor_options(faults=str(faults)))
    faults.write_text('[[fault]]\ncommand = "close_gripper"\nerror = "jammed"\ndisarm = true\n')
    with pytest.raises(UsageError, match="a fault has one effect"):
        plan_run(program, project(tmp_path), reactor_options(faults=str(faults)))
    with pytest.raises(UsageError, match="cannot read"):
        plan_run(program, project(tmp_path), reactor_options(faults=str(tmp_path / "missing.toml")))


# --- a reactor ------------------------------------------------------------------------------------


def test_a_reactor_runs_to_its_result_and_the_robot_is_disarmed_after(program: model.Program, tmp_path: Path) -> None:
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options()))
    outcome = play(s)
    assert outcome.status is Status.OK and outcome.result == PLACE and outcome.has_result
    assert outcome.summary == 'PickAndPlace ok: {"x": 0.0, "y": 0.3, "z": 0.1}'
    work = [e for e in recorder.events if not e["event"].startswith("robot.")]
    assert names(work)[0] == "run.start" and names(work)[-1] == "run.ok"
    assert [(e["from"], e["to"]) for e in recorder.named("robot.safety")] == [
        ("disarmed", "armed"), ("armed", "disarming"), ("disarming", "disarmed")]
    assert {e["robot"] for e in recorder.named("robot.safety")} == {"arm"}
    assert s.robots[0].safety == "disarmed"


def test_a_failed_run_is_rolled_back_and_exits_1(program: model.Program, tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[fault]]\ncommand = "move_to"\ncall = 3\nerror = "collision"\n')
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options(faults=str(faults))))
    outcome = play(s)
    assert outcome.status is Status.FAILED == 1
    assert outcome.summary == "PickAndPlace failed: move_to failed: collision; rolled back, no undo errors"
    undone = [e["step"] for e in recorder.named("undo.ok")]
    assert undone == ["lift", "grip", "approach"]


def test_a_disarm_halts_the_run_and_exits_3(program: model.Program, tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[fault]]\ncommand = "move_to"\ncall = 2\ndisarm = true\n')
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options(faults=str(faults))))
    outcome = play(s)
    assert outcome.status is Status.HALTED == 3
    assert "completed: ready, approach, grip, gripped; nothing undone" in outcome.summary
    assert not recorder.named("undo.start")


def test_no_arm_leaves_the_robot_disarmed_so_the_first_command_fails(program: model.Program, tmp_path: Path) -> None:
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options(arm=False)))
    outcome = play(s)
    assert outcome.status is Status.FAILED
    assert "move_to refused: arm is disarmed, not armed" in outcome.summary


def test_a_driver_that_cannot_be_loaded_is_a_usage_error(program: model.Program, tmp_path: Path) -> None:
    robots = {"arm": RobotConfig("cell.Arm", driver="no_such_module_here:Driver")}
    s, recorder, _ = session(plan_run(program, project(tmp_path, robots), reactor_options()))
    outcome = play(s)
    assert outcome.status is Status.USAGE and "cannot import no_such_module_here" in outcome.summary
    assert not recorder.events


# --- interrupts -----------------------------------------------------------------------------------


def test_an_interrupt_cancels_the_run_rolls_back_while_armed_then_disarms(program: model.Program, tmp_path: Path) -> None:
    s, recorder, notes = session(plan_run(program, project(tmp_path), reactor_options()))
    outcome = play(s, 0.15)  # approach done at 0.1 s, grip in flight
    assert outcome.status is Status.INTERRUPTED == 130
    work = [e for e in recorder.events if not e["event"].startswith("robot.")]
    # grip, cut off in flight (it may have closed part-way), is reopened first
    assert names(work, step=True)[-6:] == [
        ("step.error", "grip"), ("undo.start", "grip"), ("undo.ok", "grip"), ("undo.start", "approach"),
        ("undo.ok", "approach"), ("run.failed", None)]
    assert recorder.named("run.failed")[0]["error"]["code"] == "interrupted"
    assert outcome.summary.startswith("interrupted: PickAndPlace rolled back: PickAndPlace was interrupted")
    assert "interrupt again to disarm now" in notes[0]
    assert s.robots[0].safety == "disarmed"


def test_a_second_interrupt_disarms_at_once_and_the_rollback_halts(program: model.Program, tmp_path: Path) -> None:
    s, recorder, notes = session(plan_run(program, project(tmp_path), reactor_options()))
    outcome = play(s, 0.15, 0.2)  # the second while the first undo (of grip, cut off in flight) moves
    assert outcome.status is Status.INTERRUPTED
    assert names(recorder.events)[-1] == "run.halted" and not recorder.named("undo.ok")
    assert outcome.summary.startswith("interrupted: PickAndPlace halted")
    assert notes[-1] == "interrupted again: disarming every robot now"


def test_an_interrupt_before_work_starts(program: model.Program, tmp_path: Path) -> None:
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options()))
    outcome = play(s, 0.0)
    assert outcome.status is Status.INTERRUPTED
    assert all(e["event"] != "undo.start" for e in recorder.events)


# --- agents ---------------------------------------------------------------------------------------


def test_agents_until_idle_handle_the_input_then_stop(program: model.Program, tmp_path: Path) -> None:
    plan = plan_run(program, project(tmp_path), RunOptions(until_idle=True))
    s, recorder, notes = session(plan, lines=Lines(REQUEST, "", "not json", '{"data": 1}', REQUEST))
    outcome = play(s)
    assert outcome.status is Status.OK
    assert notes == ["input line 3: skipped: not JSON: Expecting value: line 1 column 1 (char 0)",
                     "input line 4: skipped: no string 'type'"]
    emitted = [e["type"] for e in recorder.named("signal.emit")]
    assert emitted == ["pick.rejected", "pick.completed"]
    assert len(recorder.named("run.ok")) == 1
    assert outcome.summary.startswith("idle: ") and "1 runs (1 ok, 0 failed, 0 halted)" in outcome.summary
    assert s.robots[0].safety == "disarmed"


def test_ill_typed_signals_are_dropped_at_the_door(program: model.Program, tmp_path: Path) -> None:
    plan = plan_run(program, project(tmp_path), RunOptions(until_idle=True))
    s, recorder, notes = session(plan, lines=Lines('{"type": "pick.requested", "data": {"pick": "there"}}',
                                                   '{"type": "nobody.knows"}'))
    assert play(s).status is Status.OK
    dropped = recorder.named("signal.dropped")
    assert [d["type"] for d in dropped] == ["pick.requested", "nobody.knows"]
    assert "bad data" in dropped[0]["reason"] and not notes


def test_agents_run_until_interrupted_and_runs_in_flight_roll_back(program: model.Program, tmp_path: Path) -> None:
    plan = plan_run(program, project(tmp_path), RunOptions())
    s, recorder, notes = session(plan, lines=Lines(REQUEST))
    outcome = play(s, 0.15)
    assert outcome.status is Status.INTERRUPTED
    assert notes[0].startswith("input closed; the agents go on until interrupted")
    assert [e["step"] for e in recorder.named("undo.ok")] == ["grip", "approach"]  # grip: cut off in flight
    assert recorder.named("run.failed")[0]["error"]["code"] == "interrupted"
    assert outcome.summary.startswith("interrupted: agents stopped; 1 signals in")


def test_when_supervision_gives_up_the_robots_are_disarmed(program: model.Program, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(self: AgentServer, envelope: Any) -> None:
        raise RuntimeError("a bug in the agent server")

    monkeypatch.setattr(AgentServer, "_signal_turn", crash)
    plan = plan_run(program, project(tmp_path), RunOptions())
    s, recorder, notes = session(plan, lines=Lines(*[REQUEST] * 6))
    outcome = play(s)
    assert outcome.status is Status.HALTED
    assert outcome.summary.startswith("safe stop, robots disarmed: supervisor 'root' gave up: child 'agents' "
                                      "failed: supervisor 'agents' gave up: child 'Picker' failed: RuntimeError")
    gave_up = next(i for i, e in enumerate(recorder.events)
                   if e["event"] == "supervisor.gave_up" and e["supervisor"] == "root")
    disarmed = [e for e in recorder.events[gave_up:]
                if e["event"] == "signal.in" and e["type"] == "robot.safety.changed" and e["data"]["to"] == "disarmed"]
    assert disarmed, "the safe stop disarms the robot while it is still connected to the bus"
    assert any(n.startswith("supervision gave up, disarming every robot") for n in notes)


# --- the view ---------------------------------------------------------------------------------------


def test_plain_log_has_one_line_per_notable_event(program: model.Program, tmp_path: Path) -> None:
    out = io.StringIO()
    log = PlainLog(out, start=0.0)
    s = Session(plan_run(program, project(tmp_path), reactor_options()), observer=log)
    play(s)
    lines = out.getvalue().splitlines()
    assert lines[0] == "   0.000s robot.safety   arm  disarmed -> armed"
    assert lines[1] == "   0.000s run.start      PickAndPlace"
    assert '   0.100s step.ok        PickAndPlace.approach  {"x": 0.2, "y": 0.0, "z": 0.1}' in lines
    assert not any("step.start" in line for line in lines)
    assert any(line.endswith('run.ok         PickAndPlace  result {"x": 0.0, "y": 0.3, "z": 0.1}') for line in lines)


def test_plain_log_and_board_show_long_times_readably() -> None:
    """A long run on the virtual clock printed ``720000000000000.000s``: past 10,000 of a unit, the next one."""
    out = io.StringIO()
    log = PlainLog(out, start=0.0)
    for at in (9999.9994, 9999.9996, 720_000.0, 3.6e7, 8.64e8, 7.2e14):
        log.line(at, "x")
    assert out.getvalue().splitlines() == ["9999.999s x", " 166.667m x", " 200.000h x", " 416.667d x",
                                           "  27.379y x", "2.28e+07y x"]
    board = Board(model.Program(), start=0.0)
    board({"event": "run.start", "run": "r", "reactor": "Job", "time": 0.0})
    board({"event": "run.ok", "run": "r", "reactor": "Job", "time": 7.2e14, "result": 1})
    console = Console(file=io.StringIO(), width=120)
    console.print(board.render(7.2e14))
    assert "2.28e+07y" in console.file.getvalue() and "720000000" not in console.file.getvalue()


def test_describe_events() -> None:
    assert describe({"event": "step.start", "reactor": "R", "step": "a"}) is None
    assert describe({"event": "step.error", "reactor": "R", "step": "g", "error": {"message": "g was cancelled"},
                     "in_doubt": True}) == \
        "step.error     R.g  g was cancelled (cut off at the driver: it may have moved part-way)"
    # `attempt` of step.retry is the attempt about to start (2 after the first failure)
    assert describe({"event": "step.retry", "reactor": "R", "step": "a", "attempt": 2, "delay": 0.05}) == \
        "step.retry     R.a  attempt 2 in 0.05s"
    assert describe({"event": "signal.dropped", "type": "x.y", "agent": "P", "reason": "no route matches"}) == \
        "signal.dropped P  x.y: no route matches"
    # a gap on the bus: the line said "signal.lost" and nothing else
    assert describe({"event": "signal.lost", "type": "robot.task.**", "count": 3, "source": "p/9",
                     "reason": "missed on the bus"}) == "signal.lost      robot.task.**: 3 from p/9: missed on the bus"
    assert describe({"event": "signal.lost", "type": "task.*", "count": 7, "reason": "the queue before the door was "
                     "full"}) == "signal.lost      task.*: 7: the queue before the door was full"
    assert describe({"event": "run.failed", "reactor": "R", "error": {"message": "boom"},
                     "undo_errors": [{"step": "a", "message": "stuck"}]}) == \
        "run.failed     R  boom; undo errors: a: stuck"


def live_frame(program: model.Program, tmp_path: Path, width: int) -> str:
    """The live view of the example cell ``width`` columns wide, 0.25 s into the first run (in its lift)."""
    board = Board(program)
    s = Session(plan_run(program, project(tmp_path), RunOptions(until_idle=True)), board=board,
                lines=Lines(REQUEST))
    frames: list[str] = []

    async def main() -> None:
        async def snapshot() -> None:
            await asyncio.sleep(0.25)  # the run is in its lift
            console = Console(file=io.StringIO(), width=width, color_system=None)
            console.print(board.render(asyncio.get_running_loop().time()))
            frames.append(console.file.getvalue())  # type: ignore[attr-defined]

        async with asyncio.TaskGroup() as group:
            group.create_task(snapshot())
            await s.run()

    run_virtual(main())
    return frames[0]


def test_the_live_view_shows_steps_agents_and_robots(program: model.Program, tmp_path: Path) -> None:
    frame = live_frame(program, tmp_path, 160)
    assert "PickAndPlace" in frame and "running" in frame
    assert "✓ approach" in frame and "✓ grip" in frame and "· release" in frame
    assert "Picker" in frame and "robot.event.force" in frame  # the agent's last signal
    assert "arm" in frame and "armed" in frame


def test_on_a_narrow_terminal_the_live_view_cuts_the_steps_not_the_reactor_and_its_status(
        program: model.Program, tmp_path: Path) -> None:
    """80 columns: the steps and the outcome end in an ellipsis; the reactor, its status and time stay whole
    (every column used to be shrunk alike, and the first three, the narrowest, vanished), one line per run."""
    frame = live_frame(program, tmp_path, 80)
    run = next(line for line in frame.splitlines() if "PickAndPlace" in line)
    assert "running" in run and "0.25s" in run and "✓ approach" in run
    assert max(len(line) for line in frame.splitlines()) <= 80


# --- standard input ----------------------------------------------------------------------------------


def test_input_lines_from_a_pipe_and_from_a_stream() -> None:
    read, write = os.pipe()
    os.write(write, "one\r\ntwo\n\nthré".encode())
    os.close(write)

    async def collect(source: Any) -> list[str]:
        return [line async for line in InputLines(source)]

    assert asyncio.run(collect(read)) == [b"one", b"two", b"", "thré".encode()]
    os.close(read)
    assert asyncio.run(collect(io.StringIO("a\nb\n"))) == ["a", "b"]
    assert stdin_source(io.StringIO()) is not None and isinstance(stdin_source(open(os.devnull)), int)


def test_the_project_file_round_trip(tmp_path: Path) -> None:
    """The helper's project is what the CLI tests run: it loads, with the arm bound to the sim."""
    loaded = load_project(write_project(tmp_path))
    assert loaded.robots["arm"].interface == "cell.Arm" and loaded.run_agents == ("cell.Picker",)


# --- hostile input at the door ---------------------------------------------------------------------


def test_hostile_lines_are_skipped_with_a_reason_and_the_run_goes_on(program: model.Program, tmp_path: Path) -> None:
    deep = '{"type": "pick.requested", "data": ' + "[" * 1000 + "]" * 1000 + "}"
    nan = REQUEST.replace('"x": 0.2', '"x": NaN')
    fake_safety = '{"type": "robot.safety.changed", "source": "/robot/arm", "data": {"from": "armed", "to": "fault"}}'
    fake_force = '{"type": "robot.event.force", "source": "/robot/arm", "data": {"newtons": 50.0}}'
    bad_utf8 = REQUEST.encode().replace(b"/test", b"/t\xffst")
    plan = plan_run(program, project(tmp_path), RunOptions(until_idle=True))
    s, recorder, notes = session(plan, lines=Lines(deep, nan, fake_safety, fake_force, bad_utf8, REQUEST))  # type: ignore[arg-type]
    outcome = play(s)
    assert outcome.status is Status.OK, outcome.summary
    assert notes[0].startswith("input line 1: skipped: nested too deeply")
    assert notes[1].startswith("input line 2: skipped: NaN is not a JSON number")
    assert notes[2].startswith("input line 5: skipped: not UTF-8: byte 0xff")
    dropped = recorder.named("signal.dropped")
    assert [d["type"] for d in dropped] == ["robot.safety.changed", "robot.event.force"]
    assert all("only the robot's own driver" in d["reason"] for d in dropped)
    assert [e["type"] for e in recorder.named("signal.in")][0] == "pick.requested"  # the fakes never got in
    assert len(recorder.named("run.ok")) == 1  # the good line after them all still ran


def test_more_lines_than_a_mailbox_holds_lose_nothing(program: model.Program, tmp_path: Path) -> None:
    count = 10_050  # over the 10,000 of a mailbox: the input waits for the agent instead of overflowing it
    line = json.dumps({"type": "pick.rejected", "data": {"reason": "r"}})
    plan = plan_run(program, project(tmp_path), RunOptions(until_idle=True))
    s, recorder, notes = session(plan, lines=Lines(*[line] * count))
    outcome = play(s)
    assert outcome.status is Status.OK and not notes
    assert not recorder.named("signal.dropped")
    assert f"{count} signals in, {count} handled" in outcome.summary


def test_a_second_interrupt_during_the_rollback_says_exactly_what_was_undone(program: model.Program,
                                                                            tmp_path: Path) -> None:
    s, recorder, _ = session(plan_run(program, project(tmp_path), reactor_options()))
    outcome = play(s, 0.35, 0.5)  # the first while `placed` moves, the second while undoing `grip`
    undone = [e["step"] for e in recorder.named("undo.ok")]
    assert undone and "nothing undone" not in outcome.summary
    assert f"undone: {', '.join(undone)}" in outcome.summary
    assert outcome.summary.count("halted") == 1, outcome.summary
    (halted,) = recorder.named("run.halted")
    assert halted["undone"] == undone


# --- a driver whose shutdown hooks fail ------------------------------------------------------------


def on_driver(program: model.Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
              driver: str) -> tuple[Session, Recorder, list[str]]:
    """A session running the reactor on a driver class ``driver`` of a module holding ``source``."""
    module = f"{driver.lower()}_driver"
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    robots = {"arm": RobotConfig("cell.Arm", driver=f"{module}:{driver}", arm=True, sim=SIM)}
    return session(plan_run(program, project(tmp_path, robots), reactor_options()))

FAILING_HOOKS = '''
from bbflow.runtime.sim import SimDriver


class FailingDisarm(SimDriver):
    async def disarm(self):
        raise RuntimeError("brakes did not engage")


class FailingDisconnect(SimDriver):
    async def disconnect(self):
        raise RuntimeError("socket already closed")
'''


def test_a_disarm_hook_that_fails_at_shutdown_halts_the_session(
    program: model.Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, _, _ = on_driver(program, tmp_path, monkeypatch, FAILING_HOOKS, "FailingDisarm")
    outcome = play(s)
    # the reactor succeeded, but the robot was left in fault, not disarmed: not a clean exit
    assert outcome.status is Status.HALTED
    assert "PickAndPlace ok" in outcome.summary
    assert "not disarmed at shutdown (the robot may not be safe): arm: disarm failed: brakes did not engage" \
        in outcome.summary


def test_a_disconnect_hook_that_fails_is_a_note(
    program: model.Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, _, notes = on_driver(program, tmp_path, monkeypatch, FAILING_HOOKS, "FailingDisconnect")
    outcome = play(s)
    assert outcome.status is Status.OK
    assert "robot arm: disarmed, but its driver did not disconnect: RuntimeError: socket already closed" in notes


SLOW_HOOKS = '''
import asyncio

from bbflow.runtime.sim import SimDriver


class SlowToConnect(SimDriver):
    async def connect(self):
        await asyncio.sleep(12)  # a TCP connect to a wrong address, without a timeout


class SlowToArm(SimDriver):
    async def arm(self):
        await asyncio.sleep(12)
'''


@pytest.mark.parametrize(("driver", "said"), [
    ("SlowToConnect", "still waiting for its driver to connect (5s so far, given up at 30s; Ctrl-C stops)"),
    ("SlowToArm", "still waiting for its driver to arm (5s so far; Ctrl-C stops)"),
])
def test_a_driver_slow_to_connect_or_arm_is_announced_once(
    program: model.Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, driver: str, said: str
) -> None:
    s, _, notes = on_driver(program, tmp_path, monkeypatch, SLOW_HOOKS, driver)
    assert play(s).status is Status.OK
    assert notes.count(f"robot arm: {said}") == 1
