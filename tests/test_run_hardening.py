"""``bbflow run`` under misbehaving code: huge and non-finite results, stuck drivers and actions, interrupts
during rollback, undo errors. Each test reproduces a failure found by an adversarial review."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bbflow.cli import main
from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.types import FLOAT
from run_helpers import PATIENCE, wait_while_running


ACTIONS = '''\
def big():
    return 7 ** 6000

def nap(s):
    import time
    time.sleep(s)
    return s
'''

STUBBORN = '''
import asyncio
from pathlib import Path
from typing import Any
from bbflow.runtime.driver import Driver

class Stubborn(Driver):
    async def move(self, p):
        Path(__file__).with_name("moving").touch()  # the command has reached the driver
        while True:  # a driver that swallows its cancellation: it cannot be stopped
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass

    async def back(self):
        return 0.0

    async def reading(self):  # a sensor's NaN: a driver's result may be one (an action's may not)
        return float("nan")
'''

FLOW = '''\
action big() -> int pure = "acts:big"

reactor Big() -> int {
    step b = big()
    return b
}

action nap(s: float) -> float = "acts:nap"

reactor Sleepy() -> float {
    step n = nap(s: 3600.0) timeout 1s
    return n
}

robot Jog {
    command move(p: float) -> float undo back()
    command back() -> float
    command reading() -> float readonly
}

reactor Nan() -> float on Jog {
    step b = reading()
    return b
}

reactor Go() -> float on Jog {
    step m = move(p: 1.0)
    return m
}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening")
    (root / "bbflow.toml").write_text('[project]\nname = "hard"\n\n'
                                      '[robot.jog]\ninterface = "hard.Jog"\ndriver = "stubborn:Stubborn"\narm = true\n')
    (root / "hard.flow").write_text(FLOW)
    (root / "acts.py").write_text(ACTIONS)
    (root / "stubborn.py").write_text(STUBBORN)
    return root


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["run", str(project), *args])


def test_a_result_over_4300_digits_is_written_as_exact_hex(project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run(project, "--reactor", "Big", "--events", str(events))
    assert result.exit_code == 0, result.output
    assert int(json.loads(result.stdout), 16) == 7 ** 6000
    assert result.stderr.splitlines()[-1].startswith('Big ok: "0x')
    ok = [json.loads(line) for line in events.read_text().splitlines()][-1]
    assert ok["event"] == "run.ok" and int(ok["result"], 16) == 7 ** 6000


def test_a_nan_result_is_never_written_as_non_standard_json(project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run(project, "--reactor", "Nan", "--events", str(events))
    assert result.exit_code == 0, result.output
    strict = {"parse_constant": lambda c: pytest.fail(f"non-standard JSON: {c}")}
    assert json.loads(result.stdout, **strict) == "NaN"
    for line in events.read_text().splitlines():
        json.loads(line, **strict)


# --- code that will not stop ------------------------------------------------------------------------------


def start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(project), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("bbflow run did not exit")
    return proc.returncode, err


def wait_for_line(path: Path, text: str, proc: subprocess.Popen[str]) -> None:
    wait_while_running(proc, lambda: path.exists() and text in path.read_text(), repr(text))


def test_a_command_the_driver_will_not_stop_is_given_up_on() -> None:
    """In-process, on virtual time: the caller is cancelled, the driver swallows it; after the grace
    period the command is reported stuck, the robot goes to fault and is disarmed, and the call returns."""
    jog = model.Robot("Jog", "hard.Jog", ("idle",), (), {"move": model.Command("move", (model.Param("p", FLOAT),), FLOAT)}, {})

    class Stubborn:
        def __init__(self, handle: object, options: object) -> None:
            self.disarmed = False

        async def move(self, p: float) -> float:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    pass

        async def disarm(self) -> None:
            self.disarmed = True

    async def main() -> tuple[RobotProxy, float, BaseException | None]:
        proxy = RobotProxy(jog, "jog", Stubborn, stop_grace=2.0)
        await proxy.start()
        await proxy.call("arm", {})
        call = asyncio.ensure_future(proxy.call("move", {"p": 1.0}))
        await asyncio.sleep(1)
        call.cancel()
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        try:
            await call
            error = None
        except BaseException as exc:  # noqa: BLE001 - what it ended with is the point
            error = exc
        took = loop.time() - cancelled_at
        await asyncio.sleep(0.1)  # the disarm it started
        await proxy.close()
        return proxy, took, error

    proxy, took, error = run_virtual(main(), grace=1.0)
    assert took == pytest.approx(2.0)
    assert isinstance(error, (asyncio.CancelledError, RuntimeFailure))
    assert proxy.stuck == ["move"] and proxy.safety == "disarmed" and proxy.driver.disarmed


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_with_a_stuck_driver_halts_and_exits_3(project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    moving = project / "moving"
    moving.unlink(missing_ok=True)
    proc = start(project, "--reactor", "Go", "--events", str(events))
    wait_for_line(events, '"step.start"', proc)
    # the step starts, its intent is journaled, then the driver moves
    wait_while_running(proc, moving.exists, "move reaching the driver", poll=0.01)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # and insisting does not make it hang either
    code, err = finish(proc)
    assert code == 3, err
    assert "halted: jog.move stuck" in err.splitlines()[-1]


def test_a_blocking_plain_function_action_never_keeps_the_process_alive(project: Path) -> None:
    started = time.monotonic()
    code, err = finish(start(project, "--reactor", "Sleepy"))
    assert code == 1, err
    assert "nap(s: 3600.0) timed out" in err or "timed out after 1s" in err
    assert time.monotonic() - started < PATIENCE


# --- memory held for a session's life ----------------------------------------------------------------------


def test_the_board_keeps_counts_of_run_endings_not_the_events() -> None:
    from bbflow.runtime.liveview import KEEP_FINISHED, Board

    program = model.Program.__new__(model.Program)
    board = Board(program)
    board._steps_of = lambda reactor: {}  # type: ignore[method-assign]
    for i in range(5_000):
        board({"event": "run.start", "run": str(i), "reactor": "R", "parent": None, "time": 0.0})
        board({"event": "run.ok" if i % 2 else "run.failed", "run": str(i), "reactor": "R", "time": 1.0,
               "result": "x" * 100, "error": {"message": "m", "code": "c"}})
    assert board.endings == {"run.ok": 2_500, "run.failed": 2_500}
    assert board.last_ending is not None and board.last_ending["run"] == "4999"
    assert not board.runs and len(board.finished) <= KEEP_FINISHED


def test_a_long_string_literal_is_lexed_without_a_frame_per_character() -> None:
    import tracemalloc

    from bbflow.compiler.diagnostics.core import Diagnostics
    from bbflow.compiler.source import SourceFile
    from bbflow.compiler.syntax.parser import parse_module

    size = 1_000_000
    text = 'reactor R() -> str {\n    return "' + "x" * size + '"\n}\n'
    parse_module(SourceFile("warm.flow", "reactor W() -> int {\n    return 1\n}\n"), "warm", Diagnostics())
    tracemalloc.start()
    try:
        parse_module(SourceFile("big.flow", text), "big", Diagnostics())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * size  # it was over 300 bytes per character (a regex frame for each)


# --- a preemption that lands as the run it preempts ends ------------------------------------------

PREEMPTED_CELL = '''\
enum Grip { open, closed }
signal go
signal nest
signal half
signal needy
signal stop
signal gripped: {ok: bool, why: str}

robot Arm {
    states idle, busy
    command close_gripper() -> Grip undo open_gripper()
    command open_gripper() -> Grip
    command home() -> bool
    command squeeze(force: float) -> float undo release(width: result)
    command release(width: float) -> float
}

reactor Inner() -> Grip on Arm {
    step a = close_gripper()
    step b = close_gripper() after a
    return b
}

reactor Outer() -> Grip on Arm {
    step i = Inner()
    return i
}

agent Picker on Arm {
    on go {                                 # the stop lands as the grip ends, 1s later
        schedule stop in 1s
        run close_gripper() then { emit gripped {ok: true, why: ""} } else { emit gripped {ok: false, why: error.code} }
    }
    on nest {
        schedule stop in 1500ms             # the stop lands during Inner's second step
        run Outer()
    }
    on half {                               # the stop lands half-way through the grip
        schedule stop in 500ms
        run close_gripper() else { emit gripped {ok: false, why: error.code} }
    }
    on needy {                              # the same, for a command whose undo needs its result
        schedule stop in 500ms
        run squeeze(force: 2.0)
    }
    on stop { run home() preempt }
}
'''


def preempting(tmp_path: Path, signal_type: str) -> list[dict[str, Any]]:
    """The events of a ``bbflow run`` of PREEMPTED_CELL (1 s per command, virtual time) given one signal."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "cell.flow").write_text(PREEMPTED_CELL)
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "cell"\nsource = "flows"\n\n[robot.arm]\n'
                                          'interface = "cell.Arm"\n\n[robot.arm.sim]\nduration = "1s"\n\n'
                                          '[robot.arm.sim.commands.close_gripper]\nresult = "closed"\n\n'
                                          '[run]\nagents = ["cell.Picker"]\n')
    events = tmp_path / "events.jsonl"
    out = CliRunner().invoke(main, ["run", str(tmp_path), "--virtual-time", "--until-idle", "--events", str(events)],
                             input=json.dumps({"type": signal_type, "source": "/op"}) + "\n")
    assert out.exit_code == 0, out.output
    return [json.loads(line) for line in events.read_text().splitlines()]


def test_a_command_the_driver_finished_as_a_preemption_landed_is_reported_done(tmp_path: Path) -> None:
    """The grip completed at the driver in the moment the stop preempted it: the journal recorded it done
    (it happened, and a preemption that comes too late undoes nothing), and the agent was told
    ``preempted``, so its ``else`` ran while the gripper was closed."""
    events = preempting(tmp_path, "go")
    emitted = [e["data"] for e in events if e["event"] == "signal.emit" and e["type"] == "gripped"]
    assert emitted == [{"ok": True, "why": ""}]
    runs = CliRunner().invoke(main, ["runs", str(tmp_path), "--format", "json"])
    assert {(r["reactor"], r["status"]) for r in json.loads(runs.stdout)} == {("close_gripper", "ok"), ("home", "ok")}


def test_an_agents_command_cut_off_half_way_by_a_preemption_is_undone(tmp_path: Path) -> None:
    """A grip an agent ran, preempted half-way, stayed half closed (a reactor's step was not undone either);
    it is now undone with the command's default undo, before the preempting run starts."""
    events = preempting(tmp_path, "half")
    mine = [e for e in events if e.get("command") == "close_gripper"]
    assert [e["event"] for e in mine] == ["run.start", "undo.start", "undo.ok", "run.failed"]
    assert mine[1]["in_doubt"] is True and mine[1]["reactor"] is None and mine[1]["robot"] == "arm"
    assert mine[-1]["error"]["code"] == "preempted" and mine[-1]["undo_errors"] == []
    home = next(e for e in events if e["event"] == "run.start" and e.get("command") == "home")
    assert home["time"] >= mine[2]["time"]  # the undo is inside the preempted run's hold
    assert [e["data"] for e in events if e["event"] == "signal.emit" and e["type"] == "gripped"] == [
        {"ok": False, "why": "preempted"}]
    runs = CliRunner().invoke(main, ["runs", str(tmp_path), "--format", "json"])
    assert {(r["reactor"], r["status"]) for r in json.loads(runs.stdout)} == {("close_gripper", "failed"),
                                                                             ("home", "ok")}


def test_an_agents_command_cut_off_whose_undo_needs_its_result_reports_an_undo_error(tmp_path: Path) -> None:
    events = preempting(tmp_path, "needy")
    failed = next(e for e in events if e["event"] == "run.failed" and e.get("command") == "squeeze")
    [error] = failed["undo_errors"]
    assert (error["code"], error["attempts"], error["step"]) == ("in_doubt", 0, "squeeze")
    assert "squeeze was cut off in flight" in error["message"]
    assert not [e for e in events if e["event"] == "undo.start"]


def test_a_composed_run_cut_short_by_a_preemption_says_preempted_as_its_parent_does(tmp_path: Path) -> None:
    """Inner, composed by Outer, was cut short by a preemption: its step and its run said ``cancelled``
    while Outer's said ``preempted``."""
    events = preempting(tmp_path, "nest")
    codes = [(e["event"], e["reactor"], e.get("step"), e["error"]["code"]) for e in events
             if e["event"] in ("step.error", "run.failed")]
    assert codes == [("step.error", "Inner", "b", "preempted"), ("run.failed", "Inner", None, "preempted"),
                     ("step.error", "Outer", "i", "preempted"), ("run.failed", "Outer", None, "preempted")]
    undone = [(e["reactor"], e["step"]) for e in events if e["event"] == "undo.ok"]
    assert undone == [("Inner", "b"), ("Inner", "a")]  # b was cut off in flight
