"""The hand-built Arm of tests/arm_spec.py is the interface its .flow text declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arm_spec import ARM, ARM_FLOW
from codegen_helpers import build_and_load

from bbflow.runtime import model


def described(robot: model.Robot) -> dict[str, Any]:
    """Everything about an interface that can be compared (defaults and undo arguments evaluated)."""

    def command(c: model.Command) -> tuple[Any, ...]:
        params = [(p.name, p.type, p.default({}) if p.default is not None else None) for p in c.params]
        undo = (c.undo.command, c.undo.args({"args": {}, "result": None})) if isinstance(c.undo, model.CommandCall) \
            else c.undo
        return (params, c.result, c.category, c.timeout, c.readonly, c.allowed, undo)

    return {
        "name": robot.name, "qualname": robot.qualname, "states": robot.states, "limits": robot.limits,
        "events": robot.events, "commands": {name: command(c) for name, c in robot.commands.items()},
    }


def test_the_hand_built_arm_is_the_compiled_one(tmp_path: Path) -> None:
    program = build_and_load(tmp_path, {"cell.flow": ARM_FLOW})
    assert described(ARM) == described(program.robots["cell.Arm"])
