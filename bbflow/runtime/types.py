"""Runtime type descriptors: what generated code says a value must look like.

Values at run time are plain JSON-like Python data: records are ``dict``,
lists are ``list``, maps are ``dict`` with ``str`` keys, enum members are the
member name as ``str``, durations are ``float`` seconds, ``none`` is ``None``.

A descriptor validates (and lightly normalises: ``int`` widens to ``float``)
values that cross a trust boundary: signal payloads at the door, ``--input``
values, and driver results. A duration may come as seconds or as a string
spelled like a ``.flow`` literal (``"250ms"``). ``conform`` returns the
normalised value or raises ``TypeMismatch`` with a path to the offending part
(``data.pick.x``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from bbflow.runtime.durations import parse_duration

#: an int wider than this is shown by its length in a mismatch, not by its digits
_SHOWN_BITS = 128

def non_finite(value: Any) -> str | None:
    """Where a NaN or infinite float is in ``value`` (``pick.x``, ``[2]``; ``""`` for ``value`` itself), else None.

    Every command's arguments are checked: a first look without naming any place (what nearly every call
    needs, a third of the cost), then, only if one is found, the walk that names it."""
    return None if _finite(value) else _not_finite(value)[0]


def finite(value: Any) -> Any:
    """``value``, or ``TypeMismatch`` naming the NaN or infinite float in it: what a Python action returns
    into a flow, where no expression makes one."""
    if _finite(value):
        return value
    path, bad = _not_finite(value)
    raise TypeMismatch(path, "a finite float", bad)


def _finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return True


def _not_finite(value: Any) -> tuple[str, float]:
    """Where the NaN or infinite float ``_finite`` found in ``value`` is, and which it is."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, item
        if isinstance(item, Mapping):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    raise AssertionError("only called on a value that is not finite")


class TypeMismatch(Exception):
    """A value does not have the declared type; ``path`` says where; ``choices``: the enum members it
    could have been (for a "did you mean")."""

    def __init__(self, path: str, expected: str, got: Any, choices: tuple[str, ...] = ()) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        self.choices = choices
        where = f"{path}: " if path else ""
        super().__init__(f"{where}expected {expected}, got {_describe(got)}")


def _describe(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}"
    if isinstance(value, int) and value.bit_length() > _SHOWN_BITS:  # its digits could be thousands long
        return f"int of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, (int, float)):
        return f"{type(value).__name__} {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"str {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a record"
    return type(value).__name__


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


class RType:
    """Base of runtime type descriptors."""

    __slots__ = ()

    def conform(self, value: Any, path: str = "") -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def zero(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        try:
            self.conform(value)
        except TypeMismatch:
            return False
        return True


@attrs.frozen(slots=True)
class Prim(RType):
    """``bool int float str duration any``, and ``none``: the result of a command that declares none, which is
    ``none`` in the flow whatever its driver returns (the checker types it so)."""

    name: str

    def conform(self, value: Any, path: str = "") -> Any:
        n = self.name
        if n == "any":
            return value
        if n == "none":
            return None
        if n == "bool":
            if isinstance(value, bool):
                return value
        elif n == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif n in ("float", "duration"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    return float(value)
                except OverflowError:  # an int too large for a float
                    raise TypeMismatch(path, n, value) from None
            if n == "duration" and isinstance(value, str):  # "250ms", "1.5s": as written in .flow and TOML
                try:
                    return parse_duration(value)
                except ValueError:
                    raise TypeMismatch(path, 'duration (seconds, or a string like "250ms" or "2s")', value) from None
        elif n == "str" and isinstance(value, str):
            return value
        raise TypeMismatch(path, n, value)

    def zero(self) -> Any:
        return {"bool": False, "int": 0, "float": 0.0, "duration": 0.0, "str": "", "any": None, "none": None}[self.name]

    def __str__(self) -> str:
        return self.name


@attrs.frozen(slots=True)
class Optional(RType):
    inner: RType

    def conform(self, value: Any, path: str = "") -> Any:
        if value is None:
            return None
        return self.inner.conform(value, path)

    def zero(self) -> Any:
        return None

    def __str__(self) -> str:
        return f"{self.inner}?"


@attrs.frozen(slots=True)
class ListOf(RType):
    item: RType

    def conform(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, list):
            raise TypeMismatch(path, str(self), value)
        return [self.item.conform(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def zero(self) -> Any:
        return []

    def __str__(self) -> str:
        return f"list[{self.item}]"


@attrs.frozen(slots=True)
class MapOf(RType):
    item: RType

    def conform(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise TypeMismatch(path, str(self), value)
        return {k: self.item.conform(v, _join(path, k)) for k, v in value.items()}

    def zero(self) -> Any:
        return {}

    def __str__(self) -> str:
        return f"map[{self.item}]"


@attrs.frozen(slots=True)
class Record(RType):
    """A structural record. Extra fields are accepted and kept (width subtyping)."""

    fields: tuple[tuple[str, RType], ...]

    def conform(self, value: Any, path: str = "") -> Any:
        if not isinstance(value, dict):
            raise TypeMismatch(path, str(self), value)
        out = dict(value)
        for name, ftype in self.fields:
            if name not in value:
                if isinstance(ftype, Optional):
                    out[name] = None
                    continue
                raise TypeMismatch(_join(path, name), f"a field of type {ftype}", None)
            out[name] = ftype.conform(value[name], _join(path, name))
        return out

    def zero(self) -> Any:
        return {name: ftype.zero() for name, ftype in self.fields}

    def __str__(self) -> str:
        inner = ", ".join(f"{n}: {t}" for n, t in self.fields)
        return "{" + inner + "}"


@attrs.frozen(slots=True)
class Enum(RType):
    """A nominal enum; members travel as their names."""

    name: str
    members: tuple[str, ...]

    def conform(self, value: Any, path: str = "") -> Any:
        if isinstance(value, str) and value in self.members:
            return value
        raise TypeMismatch(path, f"{self.name} (one of {', '.join(self.members)})", value, self.members)

    def zero(self) -> Any:
        return self.members[0]

    def __str__(self) -> str:
        return self.name


ANY = Prim("any")
NONE = Prim("none")
BOOL = Prim("bool")
INT = Prim("int")
FLOAT = Prim("float")
STR = Prim("str")
DURATION = Prim("duration")
SAFETY = Enum("Safety", ("disarmed", "armed", "disarming", "fault"))
