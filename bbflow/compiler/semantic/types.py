"""Compiler types: what the checker knows about a value before anything runs.

Records are structural (width subtyping: extra fields are fine), lists and
maps are covariant (values are immutable), ``int`` widens to ``float``,
``none`` fits any ``T?``, ``any`` fits both ways, enums are nominal. The
``Error`` type is given to anything that failed to resolve or type-check; it
fits both ways too, so one mistake yields one diagnostic and no follow-ons.
"""

from __future__ import annotations

import attrs

from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Code


@attrs.frozen(slots=True)
class Prim:
    """``bool int float str duration any``."""

    name: str

    def __str__(self) -> str:
        return self.name


@attrs.frozen(slots=True)
class ListT:
    item: Type

    def __str__(self) -> str:
        return f"list[{self.item}]"


@attrs.frozen(slots=True)
class MapT:
    item: Type

    def __str__(self) -> str:
        return f"map[{self.item}]"


@attrs.frozen(slots=True)
class OptionalT:
    inner: Type

    def __str__(self) -> str:
        return f"{self.inner}?"


@attrs.frozen(slots=True)
class RecordT:
    """A structural record; ``name`` (a ``type`` alias, for messages only) is not part of its identity."""

    fields: tuple[tuple[str, Type], ...]
    name: str | None = attrs.field(default=None, eq=False)

    def field(self, name: str) -> Type | None:
        for n, t in self.fields:
            if n == name:
                return t
        return None

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.fields]

    def __str__(self) -> str:
        if self.name:
            return self.name
        return "{" + ", ".join(f"{n}: {t}" for n, t in self.fields) + "}"


@attrs.frozen(slots=True)
class EnumT:
    """A nominal enum: two enums with the same members are still different types."""

    qualname: str
    members: tuple[str, ...] = attrs.field(eq=False)
    #: the members as a set: whether a name is one costs the same for 3 members or 30,000
    member_set: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "member_set", frozenset(self.members))

    @property
    def name(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]

    def __str__(self) -> str:
        return self.name


@attrs.frozen(slots=True)
class NoneT:
    """The type of ``none``, and the value of a call that declares no result."""

    def __str__(self) -> str:
        return "none"


@attrs.frozen(slots=True)
class ErrorT:
    """A value that already failed to check; fits everywhere and reports nothing more."""

    def __str__(self) -> str:
        return "<error>"


Type = Prim | ListT | MapT | OptionalT | RecordT | EnumT | NoneT | ErrorT

BOOL = Prim("bool")
INT = Prim("int")
FLOAT = Prim("float")
STR = Prim("str")
DURATION = Prim("duration")
ANY = Prim("any")
NONE = NoneT()
ERROR = ErrorT()

PRIMITIVES: dict[str, Prim] = {p.name: p for p in (BOOL, INT, FLOAT, STR, DURATION, ANY)}

#: the envelope a route binds with ``as NAME`` (``data`` is filled in per route)
ERROR_RECORD = RecordT((("message", STR), ("code", STR)))


def envelope(data: Type) -> RecordT:
    """``{type, source, id, time, subject?, data}`` of a signal whose payload has type ``data``."""
    return RecordT((("type", STR), ("source", STR), ("id", STR), ("time", STR),
                    ("subject", OptionalT(STR)), ("data", data)))


def optional(t: Type) -> Type:
    """``t?`` without doubling (``T??`` is ``T?``; ``none?`` and ``any?`` stay as they are)."""
    if isinstance(t, (OptionalT, NoneT, ErrorT)) or t == ANY:
        return t
    return OptionalT(t)


def strip_optional(t: Type) -> Type:
    return t.inner if isinstance(t, OptionalT) else t


def is_numeric(t: Type) -> bool:
    return t in (INT, FLOAT)


def is_lenient(t: Type) -> bool:
    """``any`` and ``<error>``: operations on them are not checked."""
    return isinstance(t, ErrorT) or t == ANY


def has_error(t: Type) -> bool:
    """Whether ``<error>`` is ``t`` or a part of it (``{x: <error>}``, ``list[<error>]``)."""
    if isinstance(t, ErrorT):
        return True
    if isinstance(t, (ListT, MapT)):
        return has_error(t.item)
    if isinstance(t, OptionalT):
        return has_error(t.inner)
    if isinstance(t, RecordT):
        return any(has_error(f) for _, f in t.fields)
    return False


def assignable(src: Type, dst: Type) -> bool:
    """Can a value of type ``src`` be used where ``dst`` is expected?"""
    if is_lenient(src) or is_lenient(dst) or src == dst:
        return True
    if isinstance(dst, OptionalT):
        if isinstance(src, (NoneT, OptionalT)):
            return isinstance(src, NoneT) or assignable(src.inner, dst.inner)
        return assignable(src, dst.inner)
    if src == INT and dst == FLOAT:
        return True
    if isinstance(src, ListT) and isinstance(dst, ListT):
        return assignable(src.item, dst.item)
    if isinstance(src, MapT) and isinstance(dst, MapT):
        return assignable(src.item, dst.item)
    if isinstance(src, RecordT) and isinstance(dst, RecordT):
        return not record_problems(src, dst)
    return False


def record_problems(src: RecordT, dst: RecordT) -> list[str]:
    """Why ``src`` does not fit ``dst``: missing fields and fields of the wrong type."""
    problems = []
    for name, want in dst.fields:
        got = src.field(name)
        if got is None:
            if not isinstance(want, OptionalT):
                problems.append(f"missing field `{name}: {want}`")
        elif not assignable(got, want):
            problems.append(f"field `{name}` is {got}, expected {want}")
    return problems


def mismatch_code(src: Type, dst: Type) -> Code | None:
    """None if ``src`` fits ``dst``; BBF204 for an optional that would fit once unwrapped; else BBF201."""
    if assignable(src, dst):
        return None
    if isinstance(src, OptionalT) and assignable(src.inner, dst):
        return codes.BBF204
    return codes.BBF201


def join(a: Type, b: Type) -> Type | None:
    """The common type of two values (branches of a switch), or None if they have none."""
    if isinstance(a, ErrorT) or isinstance(b, ErrorT):
        return ERROR
    if a == ANY or b == ANY:
        return ANY
    if assignable(b, a):
        return a
    if assignable(a, b):
        return b
    if isinstance(a, NoneT):
        return optional(b)
    if isinstance(b, NoneT):
        return optional(a)
    if isinstance(a, OptionalT) or isinstance(b, OptionalT):
        inner = join(strip_optional(a), strip_optional(b))
        return optional(inner) if inner is not None else None
    return None


def comparable(a: Type, b: Type) -> bool:
    """May ``a == b`` be asked? When either side fits the other (numbers always)."""
    if is_numeric(strip_optional(a)) and is_numeric(strip_optional(b)):
        return True
    return assignable(a, b) or assignable(b, a)


def ordered(t: Type) -> bool:
    """May values of ``t`` be compared with ``< <= > >=``?"""
    return is_lenient(t) or t in (INT, FLOAT, STR, DURATION)
