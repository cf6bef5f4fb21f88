"""The simulated robot (``driver = "sim"``, the default): implements any interface from its declaration.

Options come from the robot's ``sim`` table in ``bbflow.toml``::

    [robot.arm.sim]
    duration = "20ms"              # how long each command takes (default 20ms)
    busy_state = "busy"            # optional: the state reported while an effectful command runs

    [robot.arm.sim.commands.read_force]
    result = 7.5                   # what this command returns
    duration = "5ms"               # and how long it takes

    record = "world.jsonl"         # optional: one JSON line per completed command (see below)

    [[robot.arm.sim.events]]
    after = "close_gripper"        # after each successful close_gripper,
    event = "force"                # publish force
    data = {newtons = 12.0}        # with this payload
    delay = "10ms"                 # this long after the command completes (default 10ms)

A command takes its duration, then returns its configured ``result``; failing
that, the first argument whose type is the result type; failing that, the
zero value of the result type. Arming, allowed states, category limits and
faults are the robot proxy's, as for every driver, and the robot starts
disarmed. The simulated robot stays ``idle`` unless ``busy_state`` is given.

With ``record``, every command that completes appends ``{"command", "args",
"result"}`` to the file (relative to the project's folder), flushed and
fsynced before the command returns: what the simulated world saw, even across
a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import copy
import difflib
import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from bbflow.runtime import model
from bbflow.runtime.driver import Driver, DriverError, DriverHandle
from bbflow.runtime.durations import parse_duration
from bbflow.runtime.jsonout import dumps
from bbflow.runtime.types import TypeMismatch

DEFAULT_DURATION = 0.020
DEFAULT_EVENT_DELAY = 0.010

_UNSET: Any = object()


class SimConfigError(DriverError):
    """A bad ``[robot.X.sim]`` table; the message names the key."""


@attrs.frozen(slots=True)
class SimCommand:
    duration: float | None = None
    result: Any = _UNSET


@attrs.frozen(slots=True)
class SimEvent:
    after: str
    event: str
    data: Any = None
    delay: float = DEFAULT_EVENT_DELAY


@attrs.frozen(slots=True)
class SimOptions:
    duration: float = DEFAULT_DURATION
    busy_state: str | None = None
    commands: Mapping[str, SimCommand] = attrs.Factory(dict)
    events: tuple[SimEvent, ...] = ()
    record: str | None = None


class SimDriver(Driver):
    """A generic driver: every command arrives through ``run_command``."""

    def __init__(self, handle: DriverHandle, options: Mapping[str, Any]) -> None:
        super().__init__(handle, options)
        self.config = parse_sim_options(handle.robot, options.get("sim", {}), f"robot.{handle.instance}.sim")
        self._timers: dict[int, asyncio.TimerHandle] = {}  # pending event publications
        self._next_timer = 0
        self._moving = 0
        self._record: Path | None = None
        if self.config.record is not None:
            self._record = Path(options.get("project_root", ".")) / self.config.record

    async def run_command(self, name: str, kwargs: dict[str, Any]) -> Any:
        command = self.handle.robot.commands[name]
        configured = self.config.commands.get(name, SimCommand())
        duration = configured.duration if configured.duration is not None else self.config.duration
        busy_state = None if command.readonly else self.config.busy_state
        busy = busy_state is not None
        if busy_state is not None:
            self._moving += 1
            self.handle.set_state(busy_state)
        try:
            await asyncio.sleep(duration)
        finally:
            if busy:
                self._moving -= 1
                if self._moving == 0:
                    self.handle.set_state("idle")
        result = configured.result if configured.result is not _UNSET else _echo_or_zero(command, kwargs)
        if self._record is not None:
            self._write_record(name, kwargs, result)
        self._schedule_events(name)
        return copy.deepcopy(result)

    async def connect(self) -> None:
        """A ``record`` file that cannot be written is refused before anything moves, not after a motion."""
        path = self._record
        if path is None:
            return
        problem = None  # checked without creating the file: no file means nothing moved
        if not path.parent.is_dir():
            problem = errno.ENOENT
        elif path.is_dir() or not os.access(path if path.exists() else path.parent, os.W_OK):
            problem = errno.EISDIR if path.is_dir() else errno.EACCES
        if problem is not None:
            raise SimConfigError(f"robot.{self.handle.instance}.sim.record: cannot write {path}: "
                                 f"{os.strerror(problem)}")

    def _write_record(self, name: str, kwargs: dict[str, Any], result: Any) -> None:
        """Append what the world saw, durably, before the command returns (blocking: a test tool)."""
        line = dumps({"command": name, "args": kwargs, "result": result}, default=repr) + "\n"
        assert self._record is not None
        with open(self._record, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    async def disconnect(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _schedule_events(self, command: str) -> None:
        loop = asyncio.get_running_loop()
        for event in self.config.events:
            if event.after == command:
                self._next_timer += 1
                self._timers[self._next_timer] = loop.call_later(event.delay, self._fire, self._next_timer, event)

    def _fire(self, key: int, event: SimEvent) -> None:
        del self._timers[key]
        self.handle.publish(event.event, copy.deepcopy(event.data))


def _echo_or_zero(command: model.Command, kwargs: Mapping[str, Any]) -> Any:
    for param in command.params:
        if param.type == command.result and param.name in kwargs:
            return kwargs[param.name]
    return command.result.zero()


# --- options ------------------------------------------------------------------------


def parse_sim_options(robot: model.Robot, table: Any, where: str = "sim") -> SimOptions:
    """Check a ``sim`` table against the interface; ``SimConfigError`` names the bad key."""
    table = _table(table, where)
    _known_keys(table, ("duration", "busy_state", "commands", "events", "record"), where)
    duration = _duration(table["duration"], f"{where}.duration") if "duration" in table else DEFAULT_DURATION
    busy_state = table.get("busy_state")
    if busy_state is not None and (busy_state not in robot.states or busy_state == "idle"):
        raise SimConfigError(
            f"{where}.busy_state: expected one of {robot.name}'s states other than idle "
            f"({', '.join(s for s in robot.states if s != 'idle') or 'it has none'}), got {busy_state!r}"
        )
    commands = {}
    for name, entry in _table(table.get("commands", {}), f"{where}.commands").items():
        commands[name] = _sim_command(robot, name, entry, f"{where}.commands.{name}")
    events_list = table.get("events", [])
    if not isinstance(events_list, list):
        raise SimConfigError(f"{where}.events: write each event as a [[{where}.events]] table")
    events = tuple(_sim_event(robot, entry, f"{where}.events[{i}]") for i, entry in enumerate(events_list, 1))
    record = table.get("record")
    if record is not None and (not isinstance(record, str) or not record):
        raise SimConfigError(f"{where}.record: expected a file name, got {record!r}")
    return SimOptions(duration, busy_state, commands, events, record)


def _sim_command(robot: model.Robot, name: str, entry: Any, where: str) -> SimCommand:
    command = robot.commands.get(name)
    if command is None:
        raise SimConfigError(f"{where}: {robot.name} has no command {name!r}{_suggest(name, robot.commands)}")
    entry = _table(entry, where)
    _known_keys(entry, ("duration", "result"), where)
    duration = _duration(entry["duration"], f"{where}.duration") if "duration" in entry else None
    result = _UNSET
    if "result" in entry:
        try:
            result = command.result.conform(entry["result"])
        except TypeMismatch as exc:
            raise SimConfigError(f"{where}.result: not a {command.result}: {exc}") from None
    return SimCommand(duration, result)


def _sim_event(robot: model.Robot, entry: Any, where: str) -> SimEvent:
    entry = _table(entry, where)
    _known_keys(entry, ("after", "event", "data", "delay"), where)
    for key in ("after", "event"):
        if key not in entry:
            raise SimConfigError(f"{where}.{key}: missing")
    after, name = entry["after"], entry["event"]
    if after not in robot.commands:
        raise SimConfigError(f"{where}.after: {robot.name} has no command {after!r}{_suggest(str(after), robot.commands)}")
    event = robot.events.get(name)
    if event is None:
        raise SimConfigError(f"{where}.event: {robot.name} declares no event {name!r}{_suggest(str(name), robot.events)}")
    data = entry.get("data")
    if event.payload is None and data is not None:
        raise SimConfigError(f"{where}.data: event {name} has no payload")
    if event.payload is not None:
        try:
            data = event.payload.conform(data)
        except TypeMismatch as exc:
            raise SimConfigError(f"{where}.data: not a payload of {name}: {exc}") from None
    delay = _duration(entry["delay"], f"{where}.delay") if "delay" in entry else DEFAULT_EVENT_DELAY
    return SimEvent(after, name, data, delay)


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SimConfigError(f"{where}: expected a table, got {value!r}")
    return value


def _known_keys(table: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in keys:
            raise SimConfigError(f"{where}: unknown key {key!r}{_suggest(key, keys)} (keys: {', '.join(keys)})")


def _duration(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise SimConfigError(f"{where}: {exc}") from None


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
