"""Faults files (``bbflow run --faults FILE``): drills that make a robot misbehave on purpose.

::

    [[fault]]
    command = "close_gripper"   # which command
    call = 1                    # on its first call (1-based); omit for every call
    error = "jammed"            # fail with this message; or
    # delay = "3s"              # take this much longer; or
    # disarm = true             # drop to disarmed while it runs

Faults are applied by the robot proxy (``bbflow.runtime.proxy``), so they
work with every driver: an ``error`` fault fails the command before it reaches
the driver, a ``delay`` holds it back that long first, a ``disarm`` fault
disarms the robot right after the command starts. Calls are counted per
command, from 1, over every call the robot admits (retries and undos count).
When several faults match one call, the first in the file applies.

A bad file is a ``FaultsError`` naming the file, the fault's index and the key,
raised before anything moves.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from bbflow.runtime import model
from bbflow.runtime.durations import parse_duration

_EFFECTS = ("error", "delay", "disarm")
_KEYS = ("command", "call", *_EFFECTS)


class FaultsError(Exception):
    """A faults file that cannot be used; the message names the file, fault and key."""


@attrs.frozen(slots=True)
class Fault:
    """One ``[[fault]]``; exactly one of ``error``, ``delay``, ``disarm`` is set."""

    index: int  # 1-based position in the file
    command: str
    call: int | None = None  # None: every call
    error: str | None = None
    delay: float | None = None
    disarm: bool = False

    def matches(self, command: str, call: int) -> bool:
        return self.command == command and (self.call is None or self.call == call)


@attrs.frozen(slots=True)
class Faults:
    source: str  # the file, for messages
    faults: tuple[Fault, ...] = ()

    def for_call(self, command: str, call: int) -> Fault | None:
        """The fault for the ``call``-th (1-based) call of ``command``, if any."""
        for fault in self.faults:
            if fault.matches(command, call):
                return fault
        return None

    def validate(self, robot: model.Robot) -> None:
        """Check that every fault names a command of ``robot``."""
        for fault in self.faults:
            if fault.command in ("arm", "disarm") and fault.command not in robot.commands:
                raise FaultsError(
                    f"{self.source}: fault {fault.index}: command: {fault.command} is built into every robot and "
                    f"cannot be made to misbehave; name a command of {robot.name} (`disarm = true` on one drills "
                    f"an emergency stop)"
                )
            if fault.command not in robot.commands:
                raise FaultsError(
                    f"{self.source}: fault {fault.index}: command: {robot.name} has no command "
                    f"{fault.command!r}{_suggest(fault.command, robot.commands)}"
                )


def load_faults(path: str | Path) -> Faults:
    """Read and check a faults file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte order mark (some editors write one) is not TOML
    except OSError as exc:
        raise FaultsError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise FaultsError(f"{source}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FaultsError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib reads a nested array or inline table by recursion
        raise FaultsError(f"{source}: not valid TOML: arrays or inline tables nested too deeply to be read") from None
    return parse_faults(data, source)


def parse_faults(data: Mapping[str, Any], source: str = "<faults>") -> Faults:
    """Check already-parsed TOML data of a faults file."""
    for key in data:
        if key != "fault":
            raise FaultsError(f"{source}: unknown table {key!r} (a faults file holds [[fault]] entries)")
    entries = data.get("fault", [])
    if not isinstance(entries, list):
        raise FaultsError(f"{source}: fault: write each fault as a [[fault]] table")
    return Faults(source, tuple(_parse_fault(entry, i, source) for i, entry in enumerate(entries, 1)))


def _parse_fault(entry: Any, index: int, source: str) -> Fault:
    where = f"{source}: fault {index}"
    if not isinstance(entry, dict):
        raise FaultsError(f"{where}: expected a table")
    for key in entry:
        if key not in _KEYS:
            raise FaultsError(
                f"{where}: unknown key {key!r}{_suggest(key, _KEYS)} (keys: {', '.join(_KEYS)})"
            )
    command = entry.get("command")
    if command is None:
        raise FaultsError(f"{where}: command: missing (which command should misbehave?)")
    if not isinstance(command, str) or not command:
        raise FaultsError(f"{where}: command: expected a command name, got {command!r}")
    call = entry.get("call")
    if call is not None and (not isinstance(call, int) or isinstance(call, bool) or call < 1):
        raise FaultsError(f"{where}: call: expected a call number from 1, got {call!r}")
    effects = [key for key in _EFFECTS if key in entry]
    if not effects:
        raise FaultsError(f"{where}: give one of error, delay or disarm")
    if len(effects) > 1:
        raise FaultsError(f"{where}: {effects[1]}: a fault has one effect, this one also has {effects[0]}")
    effect = effects[0]
    value = entry[effect]
    if effect == "error":
        if not isinstance(value, str) or not value:
            raise FaultsError(f"{where}: error: expected a message, got {value!r}")
        return Fault(index, command, call, error=value)
    if effect == "delay":
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise FaultsError(f"{where}: delay: {exc}") from None
        return Fault(index, command, call, delay=seconds)
    if value is not True:
        raise FaultsError(f"{where}: disarm: expected true, got {value!r}")
    return Fault(index, command, call, disarm=True)


def _suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
