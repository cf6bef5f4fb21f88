"""A journaled reactor with an action step that has an undo, for the crash test of actions.

``python tests/journal_actions.py JOURNAL WORLD`` runs ``Job`` (command ``grip``,
then action ``mark``, then command ``place``) with a journal; every command and
action appends a line to WORLD (fsynced). ``mark`` kills its own process with
SIGKILL once it has done its work: the crash comes after the action moved the
world and before its result was recorded (the action is *in doubt*).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from bbflow.runtime import model
from bbflow.runtime.executor import run_reactor
from bbflow.runtime.journal import Journal, JournalConfig
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.types import INT, STR

WORLD = "BBFLOW_TEST_WORLD"


def record(what: str, **args: Any) -> None:
    with open(os.environ[WORLD], "a", encoding="utf-8") as out:
        out.write(json.dumps({"do": what, **args}) + "\n")
        out.flush()
        os.fsync(out.fileno())


def world(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mark(tag: str) -> str:
    record("mark", tag=tag)
    if os.environ.get("BBFLOW_TEST_CRASH") == "mark":
        os.kill(os.getpid(), signal.SIGKILL)
    return tag


def unmark(tag: str) -> None:
    record("unmark", tag=tag)


ACTIONS = {"t:mark": mark, "t:unmark": unmark}


def resolve(target: str) -> Any:
    return ACTIONS[target]


class Gripper:
    """A driver whose commands are recorded in the world file."""

    def __init__(self, handle: Any, options: Any) -> None:
        pass

    async def grip(self, job: int) -> int:
        record("grip", job=job)
        return job

    async def release(self, job: int) -> int:
        record("release", job=job)
        return job

    async def place(self, job: int) -> int:
        if job == 0:
            raise RuntimeError("no room for job 0")
        record("place", job=job)
        return job


SPEC = model.Robot("Cell", "t.Cell", ("idle",), (), {
    name: model.Command(name, (model.Param("job", INT),), INT, timeout=5.0)
    for name in ("grip", "release", "place")
}, {})


def program() -> tuple[model.Program, model.Reactor]:
    job = lambda s: {"job": s["job"]}  # noqa: E731
    steps = (
        model.Step("grip", model.CommandCall("grip", job), undo=model.Undo(model.CommandCall("release", job))),
        model.Step("mark", model.ActionCall("mark", lambda s: {"tag": f"job-{s['job']}"}), deps=("grip",),
                   undo=model.Undo(model.ActionCall("unmark", lambda s: {"tag": f"job-{s['job']}"}))),
        model.Step("place", model.CommandCall("place", job), deps=("mark",)),
    )
    reactor = model.Reactor("Job", "t.Job", (model.Param("job", INT),), None, "t.Cell", model.Body(steps, None))
    out = model.Program()
    out.add(SPEC)
    out.add(model.Action("mark", "t.mark", (model.Param("tag", STR),), STR, "t:mark"))
    out.add(model.Action("unmark", "t.unmark", (model.Param("tag", STR),), None, "t:unmark"))
    out.add(reactor)
    return out, reactor


async def main(path: Path) -> None:
    prog, reactor = program()
    journal = Journal.open(JournalConfig(path, keep=None), "actions")
    journal.start(asyncio.get_running_loop())
    try:
        async with RobotProxy(SPEC, "cell", Gripper) as robot:
            await robot.call("arm", {})
            await run_reactor(prog, reactor, {"job": 7}, robot=robot, journal=journal, observer=journal.observe,
                              actions=resolve)
    finally:
        journal.close()


if __name__ == "__main__":
    os.environ[WORLD] = sys.argv[2]
    asyncio.run(main(Path(sys.argv[1])))
