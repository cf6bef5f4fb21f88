"""A small pick-and-place project for the ``bbflow run`` tests, written into a temporary folder."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arm_spec import GRIP_ENUM, POSE_TYPE, arm_robot

PICK_SIGNALS = """\
signal pick.requested: {pick: Pose, place: Pose}
signal pick.completed: {at: Pose}
signal pick.failed: {reason: str}
signal pick.rejected: {reason: str}
"""

CELL_FLOW = f"{POSE_TYPE}\n{GRIP_ENUM}\n\n{PICK_SIGNALS}\n{arm_robot()}\n" + """
robot Conveyor {
    command advance(mm: float) -> float
}

reactor PickAndPlace(pick: Pose, place: Pose) -> Pose on Arm {
    step ready    = wait_state(idle) timeout 5s
    step approach = move_to(target: pick) after ready retry 2 backoff 50ms undo home()
    step grip     = close_gripper(force: 15.0) after approach
    step gripped  = wait_event(force) where gripped.newtons > 5.0 timeout 2s after grip
    step lift     = move_to(target: {x: pick.x, y: pick.y, z: pick.z + 0.1}) after gripped
                        undo move_to(target: pick)
    step placed   = move_to(target: place) after lift undo move_to(target: lift)
    step release  = open_gripper() after placed irreversible "the part is placed"
    return placed
}

reactor Shift(to: Pose) -> Pose on Arm {
    step moved = move_to(target: to) undo home()
    step held  = close_gripper(force: 12.0) after moved
    return moved
}

reactor Feed(mm: float = 10.0) -> float on Conveyor {
    step moved = advance(mm: mm) irreversible "the belt moves on"
    return moved
}

agent Picker on Arm {
    state {
        busy: bool = false
        done: int = 0
    }
    on pick.requested as req when not busy {
        set busy = true
        run PickAndPlace(pick: req.data.pick, place: req.data.place)
            then { set busy = false  set done = done + 1  emit pick.completed {at: result} }
            else { set busy = false  emit pick.failed {reason: error.message} }
    }
    on pick.requested priority -1 { emit pick.rejected {reason: "busy"} }
    on pick.completed { }
    on pick.failed { }
    on pick.rejected { }
    on robot.** { }
}
"""

PICK = {"x": 0.2, "y": 0.0, "z": 0.1}
PLACE = {"x": 0.0, "y": 0.3, "z": 0.1}
REQUEST = json.dumps({"type": "pick.requested", "source": "/test", "data": {"pick": PICK, "place": PLACE}})
PICK_INPUTS = ("--input", "pick=" + json.dumps(PICK), "--input", "place=" + json.dumps(PLACE))


def arm_table(name: str = "arm", *, driver: str = "sim", duration: str = "20ms", extra: str = "") -> str:
    return f"""
[robot.{name}]
interface = "cell.Arm"
driver = "{driver}"
{extra}
[robot.{name}.sim]
duration = "{duration}"

[[robot.{name}.sim.events]]
after = "close_gripper"
event = "force"
data = {{newtons = 12.0}}
"""


def write_project(folder: Path, robots: str | None = None, *, tail: str = "", flow: str = CELL_FLOW) -> Path:
    """A project in ``folder``: flows/cell.flow, and bbflow.toml with ``robots`` (default: one sim arm)."""
    (folder / "flows").mkdir(parents=True, exist_ok=True)
    (folder / "flows" / "cell.flow").write_text(flow)
    robots = arm_table() if robots is None else robots
    (folder / "bbflow.toml").write_text(
        f'[project]\nname = "cell"\nsource = "flows"\n{robots}\n[run]\nagents = ["cell.Picker"]\n{tail}'
    )
    return folder


#: how long a test waits for a ``bbflow run`` child to reach a point, at most
PATIENCE = 60.0


def wait_while_running(proc: subprocess.Popen[str], test: Callable[[], bool], what: str, poll: float = 0.05) -> None:
    """Poll ``test()`` until it holds; fail (killing ``proc``) if ``proc`` ends first or after ``PATIENCE`` s."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if test():
            return
        if proc.poll() is not None:
            pytest.fail(f"bbflow run ended early ({proc.returncode}): {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(poll)
    proc.kill()
    pytest.fail(f"no {what} within {PATIENCE}s")


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def names(events: list[dict[str, Any]], *, step: bool = False) -> list[Any]:
    """Event names (with their step, if asked) in order, for compact assertions."""
    return [(e["event"], e.get("step")) if step else e["event"] for e in events]
