"""Compiler types to runtime type descriptors, and descriptors to Python source.

The checker's types (``bbflow.compiler.semantic.types``) describe values for the
proof; the runtime's descriptors (``bbflow.runtime.types``) validate them at
trust boundaries. A generated module defines each distinct descriptor once,
as a module constant (``_T1 = _t.Record(...)``), in order of first use.
"""

from __future__ import annotations

import attrs

from bbflow.compiler.codegen.src import Call, Raw, Seq, Src, literal
from bbflow.compiler.semantic import types as ct
from bbflow.runtime import types as rt

_PRIMS = {"bool": "BOOL", "int": "INT", "float": "FLOAT", "str": "STR", "duration": "DURATION", "any": "ANY",
          "none": "NONE"}


def to_rtype(t: ct.Type | None) -> rt.RType:
    """The runtime descriptor of a compiler type.

    ``none`` (a call that declares no result) and ``<error>`` (never reaches
    codegen: modules with errors are not generated) become ``any``.
    """
    if isinstance(t, ct.Prim):
        return rt.Prim(t.name)
    if isinstance(t, ct.ListT):
        return rt.ListOf(to_rtype(t.item))
    if isinstance(t, ct.MapT):
        return rt.MapOf(to_rtype(t.item))
    if isinstance(t, ct.OptionalT):
        return rt.Optional(to_rtype(t.inner))
    if isinstance(t, ct.RecordT):
        return rt.Record(tuple((name, to_rtype(ft)) for name, ft in t.fields))
    if isinstance(t, ct.EnumT):
        return rt.Enum(t.name, t.members)
    return rt.ANY


def widens(actual: ct.Type | None, expected: rt.RType) -> bool:
    """Does a value of compiler type ``actual`` hold an ``int`` where ``expected`` wants a ``float``?

    The checker lets an int stand for a float (``speed: 1``); the generated
    code converts it so that values stay well-typed at run time.
    """
    if actual is None:
        return False
    if isinstance(expected, rt.Optional):
        return widens(ct.strip_optional(actual), expected.inner)
    if isinstance(expected, rt.Prim):
        return expected.name in ("float", "duration") and actual == ct.INT
    if isinstance(expected, rt.ListOf) and isinstance(actual, ct.ListT):
        return widens(actual.item, expected.item)
    if isinstance(expected, rt.MapOf) and isinstance(actual, ct.MapT):
        return widens(actual.item, expected.item)
    if isinstance(expected, rt.Record) and isinstance(actual, ct.RecordT):
        return any(widens(actual.field(name), ft) for name, ft in expected.fields)
    return False


@attrs.define
class TypeTable:
    """The descriptors one module uses, each defined once as ``_T<n>``."""

    names: dict[rt.RType, str] = attrs.Factory(dict)
    defs: list[tuple[str, Src, str]] = attrs.Factory(list)  # (name, constructor, flow spelling)

    def ref(self, t: rt.RType) -> str:
        """The source that names ``t``: a shared constant for primitives, else a module constant."""
        if isinstance(t, rt.Prim) and t.name in _PRIMS:
            return f"_t.{_PRIMS[t.name]}"
        if t not in self.names:
            src = self._build(t)  # children first, so that they get the lower numbers
            name = f"_T{len(self.defs) + 1}"
            self.names[t] = name
            self.defs.append((name, src, str(t)))
        return self.names[t]

    def _build(self, t: rt.RType) -> Src:
        if isinstance(t, rt.Optional):
            return Call("_t.Optional", (Raw(self.ref(t.inner)),))
        if isinstance(t, rt.ListOf):
            return Call("_t.ListOf", (Raw(self.ref(t.item)),))
        if isinstance(t, rt.MapOf):
            return Call("_t.MapOf", (Raw(self.ref(t.item)),))
        if isinstance(t, rt.Record):
            fields = tuple(Seq((Raw(literal(n)), Raw(self.ref(ft)))) for n, ft in t.fields)
            return Call("_t.Record", (Seq(fields),))
        if isinstance(t, rt.Enum):
            return Call("_t.Enum", (Raw(literal(t.name)), Seq(tuple(Raw(literal(m)) for m in t.members))))
        if isinstance(t, rt.Prim):  # a primitive the runtime has no constant for
            return Call("_t.Prim", (Raw(literal(t.name)),))
        raise TypeError(f"no source for {t!r}")  # pragma: no cover - all descriptors are covered
