"""The door: where a signal from outside the process becomes an envelope, or is refused with a reason.

Every way in (standard input, the fleet bus, the HTTP ingress) hands each raw
signal to one ``Door``. ``Door.admit`` never raises: it returns the accepted
``Envelope`` or a ``Refusal`` saying why not.

>>> door = Door(catalog)                        # the door of standard input
>>> door.admit(b'{"type": "cell.alarm"}')       # bytes (one line), str, or a parsed object
Envelope(type='cell.alarm', source='/stdin', ...)

What the door refuses, and why:

- a line over ``MAX_LINE_BYTES`` (1 MiB): nothing that large is a signal, and
  reading it whole would let one line exhaust memory (a reader that meets such
  a line hands over a ``LineTooLong`` instead of the line);
- bytes that are not UTF-8: they would otherwise be silently replaced; and
  ``\\u`` escapes that leave half of a UTF-16 surrogate pair (``"\\ud800"``):
  no character, so no UTF-8 either, and the journal, the event log and every
  event stream would fail to write it;
- text that is not JSON, or JSON nested deeper than ``MAX_DEPTH``: a hostile
  nesting must not exhaust the stack of whatever handles the data later;
- ``NaN``, ``Infinity`` and numbers too large for a float (read as infinite):
  they are not JSON, and a non-finite coordinate must never reach a robot;
- a standard robot signal (``robot.safety.changed``, ``robot.state.changed``,
  ``robot.error``, ``robot.event.*``) unless this door is its robot's own
  (``Door(catalog, robot="arm")``, source ``/robot/arm``): only a robot speaks
  for itself;
- an undeclared type, or data that does not conform to the declared payload;
- with ``needs_id`` (the fleet bus's door), a signal without an ``id``: the
  door fills one in for input, but a repeat from the bus is known by its id.

A ``Refusal`` with a ``type`` is a *drop* (a signal that was refused, reported
as ``signal.dropped``); one without is input that was not a signal at all.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

import attrs

from bbflow.runtime.jsonout import SURROGATE
from bbflow.runtime.signals import (
    Envelope,
    SignalCatalog,
    SignalRejected,
    is_robot_bound,
    parse_signal,
    robot_source,
)
from bbflow.runtime.types import non_finite

__all__ = ["MAX_DEPTH", "MAX_LINE_BYTES", "Door", "LineTooLong", "Refusal", "loads_strict"]

#: The largest line (in bytes, without its newline) the door reads.
MAX_LINE_BYTES = 1 << 20
#: The deepest nesting of objects and lists a signal may have (the envelope counts as one).
MAX_DEPTH = 64


@attrs.frozen(slots=True)
class LineTooLong:
    """Stands for a line that was too large to read: only its size (at least ``size`` bytes) is known."""

    size: int


@attrs.frozen(slots=True)
class Refusal:
    """A raw signal the door refused. ``type`` is set when it was a signal (then it is a drop)."""

    reason: str
    type: str | None = None

    @property
    def is_drop(self) -> bool:
        return self.type is not None


class StrictJsonError(ValueError):
    """Raised by ``loads_strict``: the text is not standard JSON within the limits."""


def loads_strict(text: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that refuses what is not standard, finite JSON within ``max_depth``.

    Raises ``StrictJsonError`` (a ``ValueError``) with a readable reason: not
    UTF-8, not JSON, nested too deeply, ``NaN``/``Infinity``, a number that is
    infinite as a float, an integer too long to read, a lone surrogate.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrictJsonError(f"not UTF-8: byte 0x{text[exc.start]:02x} at offset {exc.start} ({exc.reason})") from None
    try:
        value = _DECODE(text)
    except RecursionError:
        raise StrictJsonError(f"nested too deeply (the limit is {max_depth})") from None
    except StrictJsonError:
        raise
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's own limit on reading a long integer
            raise StrictJsonError(f"an integer of more than {sys.get_int_max_str_digits()} digits is too long "
                                  "to read") from None
        raise StrictJsonError(f"not JSON: {exc}") from None
    # a value is nested no deeper than the text has `[` and `{` (a count in C): walk it only when it may be
    if _openers(text) > max_depth and _depth(value, max_depth) > max_depth:
        raise StrictJsonError(f"nested too deeply (the limit is {max_depth})")
    if _SURROGATE_ESCAPE.search(text) is not None:  # only then may a string hold half a pair: walk it
        lone = _lone_surrogate(value)
        if lone is not None:
            raise StrictJsonError(f"\\u{ord(lone):04x} is half of a UTF-16 surrogate pair, not a character "
                                  "(text must be valid Unicode)")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in a string (a key included) of ``value``, or ``None``; without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = SURROGATE.search(item)
            if found is not None:
                return found.group()
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _openers(text: str) -> int:
    """How many ``[`` and ``{`` the text has (an upper bound on how deep its value is nested)."""
    return text.count("[") + text.count("{")


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number (non-finite numbers are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {_clip(text)} is too large for a float (non-finite numbers are refused)")
    return value


#: one decoder for all (``json.loads`` with hooks makes one per call)
_DECODE = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float).decode


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of ``value`` (a scalar is 0), counted without recursion; stops past ``limit``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


class Door:
    """The check every signal from outside passes: ``admit(raw)`` gives an ``Envelope`` or a ``Refusal``.

    ``catalog`` holds the declared signal types and payloads. ``source`` is
    the source given to a signal that names none (``/stdin``). ``robot`` names
    the robot instance whose driver this door belongs to: only then are the
    standard robot signals admitted, and only with source ``/robot/ROBOT``.
    """

    def __init__(
        self,
        catalog: SignalCatalog,
        *,
        source: str = "/stdin",
        robot: str | None = None,
        max_bytes: int = MAX_LINE_BYTES,
        max_depth: int = MAX_DEPTH,
        needs_id: bool = False,
    ) -> None:
        self.catalog = catalog
        self.needs_id = needs_id
        self.robot = robot
        self.source = robot_source(robot) if robot is not None and source == "/stdin" else source
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def admit(self, raw: bytes | bytearray | str | Mapping[str, Any] | LineTooLong) -> Envelope | Refusal:
        """Check one raw signal: a line (bytes or text, without its newline), a parsed object, or a
        ``LineTooLong``. Never raises."""
        try:
            return self._admit(raw)
        except RecursionError:
            return Refusal(f"nested too deeply (the limit is {self.max_depth})")

    def _admit(self, raw: Any) -> Envelope | Refusal:
        if isinstance(raw, LineTooLong):
            return self._too_large(raw.size)
        if isinstance(raw, (bytes, bytearray, str)):
            size = len(raw) if not isinstance(raw, str) or len(raw) * 4 <= self.max_bytes else len(raw.encode("utf-8", "surrogatepass"))
            if size > self.max_bytes:
                return self._too_large(size)
            try:
                obj = loads_strict(raw, max_depth=self.max_depth)
            except StrictJsonError as exc:
                return Refusal(str(exc))
            parsed = True
        else:
            obj, parsed = raw, False
            if _depth(obj, self.max_depth) > self.max_depth:
                return Refusal(f"nested too deeply (the limit is {self.max_depth})")
        signal_type = obj.get("type") if isinstance(obj, Mapping) else None
        where = None if parsed else non_finite(obj)  # loads_strict refused them already in text
        if where is not None:
            return Refusal(f"{where or 'the signal'}: NaN and infinite numbers are refused", _typed(signal_type))
        if isinstance(signal_type, str) and signal_type and is_robot_bound(signal_type):
            refused = self._robot_signal(obj, signal_type)
            if refused is not None:
                return refused
        try:
            envelope = parse_signal(dict(obj) if isinstance(obj, Mapping) else obj, self.catalog, source=self.source)
        except SignalRejected as rejected:
            return Refusal(rejected.reason, rejected.type)
        if self.needs_id and not obj.get("id"):
            return Refusal("no 'id': an event from another process carries its own (a repeat is known by it)",
                           envelope.type)
        return envelope

    def _robot_signal(self, obj: Mapping[str, Any], signal_type: str) -> Refusal | None:
        if self.robot is None:
            return Refusal(f"{signal_type} is a standard robot signal: only the robot's own driver sends it "
                           f"(this came from {obj.get('source') or self.source})", signal_type)
        own = robot_source(self.robot)
        claimed = obj.get("source") or own
        if claimed != own:
            return Refusal(f"{signal_type} with source {claimed!r} from the driver of robot {self.robot!r} "
                           f"(a robot speaks only for itself, as {own})", signal_type)
        return None

    def _too_large(self, size: int) -> Refusal:
        return Refusal(f"line too large: {size} bytes (the limit is {self.max_bytes} bytes)")


def _typed(signal_type: Any) -> str | None:
    return signal_type if isinstance(signal_type, str) and signal_type else None


def _clip(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."
