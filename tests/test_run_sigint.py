"""SIGINT/SIGTERM during ``bbflow run`` (a real process): the run is cancelled, rolled back while armed,
the robot disarmed, and the process exits 130 even with standard input still open."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from run_helpers import PATIENCE, PICK_INPUTS, REQUEST, arm_table, read_events, wait_while_running, write_project


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def slow_cell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each command takes 300 ms, so that there is time to interrupt between two steps."""
    return write_project(tmp_path_factory.mktemp("slow"), arm_table(duration="300ms"))


def start(project: Path, events: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bbflow", "run", str(project), "--events", str(events), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(proc: subprocess.Popen[str], events: Path, event: str, step: str) -> None:
    wait_while_running(proc, lambda: events.exists() and any(
        e["event"] == event and e.get("step") == step for e in _complete(events)), f"{event} {step}", poll=0.02)


def _complete(events: Path) -> list[dict[str, Any]]:
    lines = events.read_text().split("\n")[:-1]  # the last piece may be a line being written
    return [json.loads(line) for line in lines if line]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("bbflow run did not exit after the signal")
    return proc.returncode, err


def steps(events: list[dict[str, Any]], name: str) -> list[str]:
    return [e["step"] for e in events if e["event"] == name]


def cut_off(events: list[dict[str, Any]]) -> list[str]:
    """The steps cut off at the driver (undone first). ``grip``, in flight when the signal is sent, is at the
    driver, or, on a loaded machine, may still wait for its intent to be journaled: then nothing moved."""
    return [e["step"] for e in events if e["event"] == "step.error" and e.get("in_doubt")]


def test_sigint_during_a_reactor_rolls_back_and_exits_130(slow_cell: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    proc = start(slow_cell, events, "--reactor", "PickAndPlace", *PICK_INPUTS)
    wait_for(proc, events, "step.ok", "approach")  # grip is in flight now
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    got = [e for e in read_events(events) if not e["event"].startswith("robot.")]
    # grip, cut off in flight (it may have closed part-way), is reopened first, then approach undone
    assert cut_off(got) in (["grip"], [])
    assert steps(got, "undo.start") == [*cut_off(got), "approach"] and steps(got, "undo.ok") == steps(got, "undo.start")
    assert "lift" not in steps(got, "step.start")
    failed = [e for e in got if e["event"] == "run.failed"]
    assert len(failed) == 1 and failed[0]["error"]["code"] == "interrupted" and failed[0]["undo_errors"] == []
    assert got[-1]["event"] == "run.failed"
    lines = err.splitlines()
    assert "arm  disarming -> disarmed" in lines[-2]  # the robot is disarmed before the process ends
    assert lines[-1].startswith("interrupted: PickAndPlace rolled back: PickAndPlace was interrupted")


def test_sigterm_stops_the_agents_with_input_still_open(slow_cell: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    proc = start(slow_cell, events)  # the agents of [run] agents, no --until-idle
    assert proc.stdin is not None
    proc.stdin.write(REQUEST + "\n")
    proc.stdin.flush()  # and left open: the reader thread is blocked on it when the signal comes
    wait_for(proc, events, "step.ok", "approach")
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc)
    assert code == 130, err
    got = read_events(events)
    assert cut_off(got) in (["grip"], []) and steps(got, "undo.ok") == [*cut_off(got), "approach"]
    assert [e["error"]["code"] for e in got if e["event"] == "run.failed"] == ["interrupted"]
    assert err.splitlines()[-1].startswith("interrupted: agents stopped; 1 signals in")


def test_sigint_during_the_first_motion_undoes_it_as_cut_off_in_flight(slow_cell: Path, tmp_path: Path) -> None:
    """The arm cut off half-way to ``pick`` may have moved: its undo (``home()``) runs, marked in doubt.
    Without a journal, nothing is awaited between ``step.start`` and the driver: the move is at the driver."""
    events = tmp_path / "events.jsonl"
    proc = start(slow_cell, events, "--reactor", "PickAndPlace", "--no-journal", *PICK_INPUTS)
    wait_for(proc, events, "step.start", "approach")
    proc.send_signal(signal.SIGINT)
    code, err = finish(proc)
    assert code == 130, err
    got = [e for e in read_events(events) if not e["event"].startswith("robot.")]
    assert not steps(got, "step.ok")[1:]  # only `ready` completed
    assert [(e["step"], e.get("in_doubt")) for e in got if e["event"] == "undo.start"] == [("approach", True)]
    assert [e["event"] for e in got][-4:] == ["step.error", "undo.start", "undo.ok", "run.failed"]


GATED_DRIVER = """
import time
from pathlib import Path

from bbflow.runtime.sim import SimDriver

HERE = Path(__file__).parent
BLOCKS = "{blocks}"


def gate():  # code that blocks the event loop (a vendor SDK's import or connect) until the test opens the gate
    (HERE / "blocked").touch()
    deadline = time.monotonic() + 60
    while not (HERE / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


if BLOCKS == "import":
    gate()


class Arm(SimDriver):
    async def connect(self):
        if BLOCKS == "connect":
            gate()
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("blocks", ["import", "connect"])
def test_a_signal_while_a_driver_blocks_the_start_stops_before_the_robot_is_armed(
        tmp_path: Path, blocks: str, sig: signal.Signals) -> None:
    """Ctrl-C while a driver's import or connect blocks the event loop: the loop sees the signal only once that
    code returns, and the session went on to arm the robot and start the reactor (its first motion sent, then
    rolled back) before the interrupt was handled. Nothing may move after the operator's Ctrl-C."""
    project = write_project(tmp_path, arm_table(driver="gated:Arm"))
    (project / "gated.py").write_text(GATED_DRIVER.replace("{blocks}", blocks))
    events = tmp_path / "events.jsonl"
    proc = start(project, events, "--reactor", "PickAndPlace", *PICK_INPUTS, "--arm")
    wait_while_running(proc, (project / "blocked").exists, "the driver blocking")
    proc.send_signal(sig)
    (project / "go").touch()
    code, err = finish(proc)
    assert code == 130, err
    assert err.splitlines()[-1] == "interrupted before PickAndPlace started"
    assert not [e for e in read_events(events) if e["event"] != "robot.state"]  # never armed, no run


def test_a_hangup_rolls_back_and_disarms_as_ctrl_c_does(slow_cell: Path, tmp_path: Path) -> None:
    """SIGHUP (the ssh session or the terminal gone) killed the process mid-run: nothing rolled back, the robot
    left armed. It is now an interrupt like Ctrl-C."""
    events = tmp_path / "events.jsonl"
    proc = start(slow_cell, events, "--reactor", "PickAndPlace", *PICK_INPUTS)
    wait_for(proc, events, "step.ok", "approach")
    proc.send_signal(signal.SIGHUP)
    code, err = finish(proc)
    assert code == 130, err
    got = read_events(events)
    assert cut_off(got) in (["grip"], []) and steps(got, "undo.ok") == [*cut_off(got), "approach"]
    assert got[-1]["to"] == "disarmed"
    assert err.splitlines()[-1].startswith("interrupted: PickAndPlace rolled back")


def test_a_hangup_nohup_ignores_is_still_ignored(slow_cell: Path, tmp_path: Path) -> None:
    """``nohup bbflow run ...``: the caller asked to survive the hangup, and the run goes on to its end."""
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bbflow", "run", str(slow_cell), "--events", str(events), "--reactor", "PickAndPlace",
         *PICK_INPUTS], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for(proc, events, "step.ok", "approach")
    proc.send_signal(signal.SIGHUP)
    code, err = finish(proc)
    assert code == 0, err
    assert [e["event"] for e in read_events(events) if e["event"].startswith("run.")] == ["run.start", "run.ok"]
