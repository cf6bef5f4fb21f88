"""Processes of a fleet on 127.0.0.1 for the fleet bus tests: free ports, event logs, and every process stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bbflow.project import BusConfig, Project
from bbflow.runtime.signals import Envelope

T = TypeVar("T")

#: a guard against a hung process, not a measurement
PATIENCE = 60.0

#: multicast scouting off and a listener on a free loopback port: nothing leaves 127.0.0.1
ZENOH_CONFIG = '{ mode: "peer", scouting: { multicast: { enabled: false } }, listen: { endpoints: ["tcp/127.0.0.1:0"] } }\n'


TOML = """\
[project]
name = "fleet"
source = "flows"

[robot.left]
interface = "cell.Arm"
queue = 32                 # 20 jobs arrive at once: room for all in the arm's queue (default 16)
[robot.left.sim]
duration = "20ms"

[bus]
kind = "zenoh"
prefix = "test/fleet"
config = "zenoh.json5"
"""

FLOW = """\
type Pose = {x: float, y: float, z: float}
signal job.requested: {job: int, to: Pose}
signal job.assigned: {job: int, to: Pose}
signal job.done: {job: int}

robot Arm {
    states idle, busy
    command move_to(target: Pose) -> Pose category motion timeout 10s
    command home() -> Pose category motion
}

reactor Go(to: Pose) -> Pose on Arm {
    step moved = move_to(target: to) undo home()
    return moved
}

agent Picker on Arm {
    on job.assigned as j {
        run Go(to: j.data.to) then { emit job.done {job: j.data.job} }
    }
    on robot.** { }
}

agent Boss {
    state { done: int = 0 }
    on job.requested as r { emit job.assigned {job: r.data.job, to: r.data.to} }
    on job.done { set done = done + 1 }
    on fleet.peer.** { }
}
"""


def write_fleet_project(root: Path, *, bus: bool = True) -> Path:
    """A robot ``left`` with a ``Picker``, and a ``Boss`` that assigns jobs; ``bus``: over Zenoh."""
    (root / "flows").mkdir(parents=True)
    toml = TOML if bus else TOML[:TOML.index("[bus]")]
    (root / "bbflow.toml").write_text(toml)
    (root / "zenoh.json5").write_text(ZENOH_CONFIG)
    (root / "flows" / "cell.flow").write_text(FLOW)
    return root


class Collector:
    """An agent (what the bus needs of one) that routes every signal and keeps what it is given."""

    name = "A"
    robot_instance = None

    def __init__(self) -> None:
        self.got: list[Envelope] = []

    def routes(self, signal_type: str) -> bool:
        return True

    def deliver(self, envelope: Envelope) -> None:
        self.got.append(envelope)

    async def room(self) -> None:
        return None


async def until(test: Callable[[], bool], what: str, patience: float = PATIENCE, poll: float = 0.05) -> None:
    """Wait on the running loop until ``test()`` holds; fail the test if it does not within ``patience`` s."""
    deadline = time.monotonic() + patience
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {patience}s")
        await asyncio.sleep(poll)


def bus_project(folder: Path, name: str = "t", **bus: Any) -> Project:
    """A project of ``folder`` with the ``[bus]`` table ``bus``."""
    return Project(name, folder, folder, bus=BusConfig(**bus))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """One ``bbflow run`` of the fleet, with its event log; ``fleet``: every process the test started (this one
    among them), each of which must not end unless stopped."""

    def __init__(self, name: str, project: Path, folder: Path, args: list[str], *, stdin: bool,
                 fleet: list[Process]) -> None:
        self.name = name
        self.fleet = fleet
        self.stopped = False  # by the test (``stop``): its end is expected
        self.events_file = folder / f"{name}.events.jsonl"
        self.stderr_file = folder / f"{name}.stderr"
        with open(self.stderr_file, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "bbflow", "run", str(project), "--events", str(self.events_file), *args],
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                text=True, env={**os.environ, "NO_COLOR": "1"},
            )

    def events(self) -> list[dict[str, Any]]:
        if not self.events_file.exists():
            return []
        lines = self.events_file.read_text().split("\n")[:-1]  # the last piece may be a line being written
        return [json.loads(line) for line in lines if line]

    def stderr(self) -> str:
        return self.stderr_file.read_text()

    def send(self, *signals: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        for sig in signals:
            self.popen.stdin.write(json.dumps(sig) + "\n")
        self.popen.stdin.flush()

    def wait_for(self, what: str, test: Callable[[list[dict[str, Any]]], bool], patience: float = PATIENCE,
                 poll: float = 0.05) -> list[dict[str, Any]]:
        """The events once ``test`` holds of them; fails at once when any process of the fleet ended that the test
        did not stop (waiting on another's events would only time out, saying nothing of why)."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            events = self.events()
            if test(events):
                return events
            for proc in self.fleet:
                if not proc.stopped and proc.popen.poll() is not None:
                    pytest.fail(f"{proc.name} ended early ({proc.popen.returncode}) while {self.name} waited for "
                                f"{what}:\n{self.report()}")
            time.sleep(poll)
        pytest.fail(f"{self.name}: no {what} within {patience}s:\n{self.report()}")

    def report(self) -> str:
        """Every process's state and standard error."""
        return "\n".join(f"--- {p.name} ({'running' if p.popen.poll() is None else f'ended {p.popen.returncode}'}"
                         f"{', stopped' if p.stopped else ''}):\n{p.stderr()}" for p in self.fleet)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.stopped = True
        self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.name} did not stop after signal {sig}:\n{self.stderr()}")


@contextmanager
def fleet(project: Path, folder: Path) -> Iterator[Callable[..., Process]]:
    """``start(name, *args, stdin=False)`` starts a process of ``project``; all are killed on the way out."""
    started: list[Process] = []

    def start(name: str, *args: str, stdin: bool = False) -> Process:
        proc = Process(name, project, folder, list(args), stdin=stdin, fleet=started)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait()
            if proc.popen.stdin is not None:
                proc.popen.stdin.close()


def of(events: list[dict[str, Any]], event: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]


async def take_left(link: Any, project: Project, endpoint: str) -> Any:
    """Lose ``link``'s Zenoh session (its claims go with it) and, before it opens a new one, claim robot ``left``
    as process ``thief-9-a1b2c3`` through ``endpoint``, once the process there has seen those claims go: the
    thief's link (close it)."""
    from bbflow.runtime.fleet import AlreadyRun, bus_settings, make_link

    taken = threading.Event()
    reopen = link.reopen

    async def reopen_once_taken() -> None:  # on whichever loop the link runs on
        await asyncio.get_running_loop().run_in_executor(None, taken.wait, PATIENCE)
        await reopen()

    link.reopen = reopen_once_taken
    link._session.close()  # lost: Zenoh failed under the process
    try:
        for _ in range(int(PATIENCE / 0.1)):
            thief = make_link(bus_settings(project, connect=[endpoint]), process="thief-9-a1b2c3", robots=["left"],
                              agents=["Picker"])
            try:
                await thief.join()
                return thief
            except AlreadyRun:
                await asyncio.sleep(0.1)
        pytest.fail(f"the claims of the lost session were still seen at {endpoint} after {PATIENCE}s")
    finally:
        taken.set()


async def beside_a_thief(project: Project, endpoint: str, work: Awaitable[T], ready: Callable[[], bool],
                         link: Callable[[], Any]) -> T:
    """``work``'s result, its process reaching a hub that listens at ``endpoint``: once ``ready()``, robot ``left``
    is taken from the process's ``link()`` while its session is lost (``take_left``)."""
    from bbflow.runtime.fleet import bus_settings, make_link

    hub = make_link(bus_settings(project, listen=[endpoint]), process="hub", robots=[], agents=[])
    await hub.join()
    thief = None
    try:
        task = asyncio.ensure_future(work)
        await until(ready, "the process ready")
        thief = await take_left(link(), project, endpoint)
        return await asyncio.wait_for(task, PATIENCE)
    finally:
        if thief is not None:
            await thief.close()
        await hub.close()
