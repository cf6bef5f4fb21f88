"""Signals: the CloudEvents 1.0 envelope, UUIDv7 ids, and the check at the door.

Every signal that moves on the bus is an ``Envelope`` (CloudEvents 1.0,
structured JSON form). Signals that come from outside (standard input, a
robot) are parsed with ``parse_signal``: the type must be declared and the
data must conform to the declared payload type, else the signal is refused
with a ``SignalRejected`` carrying the reason. A refusal with ``type`` set is
a *drop* (reported as ``signal.dropped``); one without is not a signal at all
(not a JSON object, or no string ``type``), which the caller reports as it sees fit.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from bbflow.runtime import model
from bbflow.runtime.contract import ROBOT_EVENT_PREFIX
from bbflow.runtime.ids import uuid7
from bbflow.runtime.types import ANY, SAFETY, STR, Record, RType, TypeMismatch

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

#: The standard robot signals of ``std.prelude``; used when a program does not declare them itself.
STANDARD_SIGNALS: tuple[model.Signal, ...] = (
    model.Signal("robot.safety.changed", Record((("from", SAFETY), ("to", SAFETY)))),
    model.Signal("robot.state.changed", Record((("from", STR), ("to", STR)))),
    model.Signal("robot.error", Record((("message", STR),))),
)
_ROBOT_BOUND = frozenset(s.type for s in STANDARD_SIGNALS)


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- tracing (W3C Trace Context, as the CloudEvents distributed tracing extension) ------

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


#: RFC 3339's date-time (section 5.6): a full date, ``T``, a full time and its offset (``Z`` or ``+hh:mm``)
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))", re.ASCII)


def is_rfc3339(value: str) -> bool:
    """Whether ``value`` is an RFC 3339 timestamp (``2026-01-02T03:04:05.678Z``): its form, and a date and
    a time that exist (a leap second ``:60`` included)."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute)
    except ValueError:
        return False
    return second <= 60 and int(m[7] or 0) <= 23 and int(m[8] or 0) <= 59


def valid_traceparent(value: Any) -> str | None:
    """``value`` if it is a version-00 ``traceparent`` with non-zero ids, else None (ignored, as W3C says)."""
    if not isinstance(value, str):
        return None
    m = _TRACEPARENT.match(value)
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return value


def child_traceparent(parent: str | None) -> str:
    """The ``traceparent`` of a signal caused by one carrying ``parent``: the same trace (id and flags)
    with a span id of its own; a new sampled trace when ``parent`` is None."""
    span = os.urandom(8).hex()
    if parent is None:
        return f"00-{os.urandom(16).hex()}-{span}-01"
    return f"{parent[:36]}{span}{parent[52:]}"


# --- the envelope -----------------------------------------------------------------


@attrs.frozen(slots=True)
class Envelope:
    """A CloudEvents 1.0 event. ``data`` has already been checked against the payload type."""

    type: str
    source: str
    id: str = attrs.field(factory=uuid7)
    time: str = attrs.field(factory=now_rfc3339)
    data: Any = None
    subject: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = CONTENT_TYPE
    traceparent: str | None = None  # W3C Trace Context (CloudEvents distributed tracing extension)

    def binding(self) -> dict[str, Any]:
        """What a route's ``as NAME`` binds: ``type source id time subject data``."""
        return {
            "type": self.type,
            "source": self.source,
            "id": self.id,
            "time": self.time,
            "subject": self.subject,
            "data": self.data,
        }

    def to_json(self) -> dict[str, Any]:
        """The CloudEvents structured form (optional attributes left out when unset)."""
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        if self.traceparent is not None:
            out["traceparent"] = self.traceparent
        if self.data is not None:
            out["data"] = self.data
        return out


def is_robot_bound(signal_type: str) -> bool:
    """Standard robot signals reach only the agents bound to the robot that raised them."""
    return signal_type in _ROBOT_BOUND or signal_type.startswith(ROBOT_EVENT_PREFIX)


def robot_source(instance: str) -> str:
    return f"/robot/{instance}"


def robot_of_source(source: str) -> str | None:
    """The robot instance named by a ``/robot/INSTANCE`` source, else ``None``."""
    if source.startswith("/robot/"):
        instance = source[len("/robot/") :]
        if instance and "/" not in instance:
            return instance
    return None


# --- the door ---------------------------------------------------------------------


class SignalRejected(Exception):
    """A signal refused at the door.

    ``type`` is the signal's type when it had one (a *drop*: undeclared type or
    bad data), ``None`` when the input was not a signal at all.
    """

    def __init__(self, reason: str, type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.type = type


class SignalCatalog:
    """The declared signal types and their payload types.

    Built from a program: its declared signals, the standard robot signals
    (unless the program declares them itself, as ``std.prelude`` does), and
    ``robot.event.NAME`` for every event of every robot interface. Two robots
    that declare one event name with different payloads make that signal's
    data ``any`` at the door; the robot glue checks events against their own robot.
    """

    def __init__(self, signals: Mapping[str, RType | None]) -> None:
        self._payloads = dict(signals)

    @classmethod
    def from_program(cls, program: model.Program) -> SignalCatalog:
        payloads: dict[str, RType | None] = {s.type: s.payload for s in STANDARD_SIGNALS}
        for robot in program.robots.values():
            for event in robot.events.values():
                key = ROBOT_EVENT_PREFIX + event.name
                if key in payloads and payloads[key] != event.payload:
                    payloads[key] = ANY
                else:
                    payloads[key] = event.payload
        payloads.update({t: s.payload for t, s in program.signals.items()})
        return cls(payloads)

    @classmethod
    def of(cls, *signals: model.Signal) -> SignalCatalog:
        return cls({s.type: s.payload for s in signals})

    def __contains__(self, signal_type: str) -> bool:
        return signal_type in self._payloads

    def types(self) -> list[str]:
        return sorted(self._payloads)

    def payload(self, signal_type: str) -> RType | None:
        """The payload type of a declared signal (``None``: it carries no data); ``KeyError`` if undeclared."""
        return self._payloads[signal_type]

    def conform(self, signal_type: str, data: Any) -> Any:
        """``data`` checked (and normalised) against the payload of ``signal_type``.

        Raises ``SignalRejected`` (with the type) when the type is undeclared or
        the data does not conform. A signal declared without a payload takes no
        data (``null`` or an empty object are accepted and read as no data).
        """
        if signal_type not in self._payloads:
            close = difflib.get_close_matches(signal_type, list(self._payloads), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SignalRejected(f"undeclared signal type {signal_type!r}{hint}", signal_type)
        payload = self._payloads[signal_type]
        if payload is None:
            if data is None or data == {}:
                return None
            raise SignalRejected(f"{signal_type} carries no data, got {_short(data)}", signal_type)
        try:
            return payload.conform(data, "data")
        except TypeMismatch as exc:
            raise SignalRejected(f"bad data: {exc}", signal_type) from None


def parse_signal(obj: Any, catalog: SignalCatalog, *, source: str = "/stdin") -> Envelope:
    """An envelope from a CloudEvents structured-form object, checked at the door.

    At least ``type`` (and ``data`` when the payload needs it) must be given;
    ``id`` (UUIDv7), ``time`` (now) and ``source`` (the ``source`` argument) are
    filled in when missing. Raises ``SignalRejected``.
    """
    if not isinstance(obj, dict):
        raise SignalRejected(f"not a JSON object: {_short(obj)}")
    signal_type = obj.get("type")
    if not isinstance(signal_type, str) or not signal_type:
        raise SignalRejected("no string 'type'")
    specversion = obj.get("specversion", SPECVERSION)
    if specversion != SPECVERSION:
        raise SignalRejected(f"unsupported specversion {specversion!r} (expected '1.0')", signal_type)
    content_type = obj.get("datacontenttype", CONTENT_TYPE)
    if content_type != CONTENT_TYPE:
        raise SignalRejected(f"unsupported datacontenttype {content_type!r}", signal_type)
    for attr in ("id", "source", "time", "subject", "traceparent"):
        if attr in obj and not isinstance(obj[attr], str):
            raise SignalRejected(f"attribute {attr!r} must be a string", signal_type)
    if obj.get("time") and not is_rfc3339(obj["time"]):
        raise SignalRejected(f"attribute 'time' must be an RFC 3339 timestamp (such as 2026-01-02T03:04:05.678Z), "
                             f"got {_short(obj['time'])}", signal_type)
    data = catalog.conform(signal_type, obj.get("data"))
    return Envelope(
        type=signal_type,
        source=obj.get("source") or source,
        id=obj.get("id") or uuid7(),
        time=obj.get("time") or now_rfc3339(),
        data=data,
        subject=obj.get("subject") or None,  # "" addresses no robot: no subject, as an empty id or source is none
        traceparent=valid_traceparent(obj.get("traceparent")),
    )



def _short(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."
