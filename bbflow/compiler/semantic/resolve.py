"""Declarations to symbols, type expressions to types, signatures and robots.

``declare`` makes a module's own symbol table (BBF102 for a name declared
twice). ``Resolver`` turns type expressions into compiler types (BBF101 with
"did you mean" from the names in scope), and describes what callables and
robots look like: parameter lists, result types, states, commands, events and
category limits. Everything is memoised per declaration, so a mistake in a
declaration is reported once however often the declaration is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.diagnostics.suggest import a_or_an, closest
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import Facts
from bbflow.compiler.semantic.symbols import DECL_KINDS, ModuleScope, Symbol, SymKind

#: the safety states every robot has
SAFETY_STATES = ("disarmed", "armed", "disarming", "fault")
#: commands every robot has
BUILTIN_COMMANDS = ("arm", "disarm")


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The help text naming the closest candidates, or None when nothing is close."""
    hits = closest(name, candidates)
    if not hits:
        return None
    return "did you mean " + " or ".join(f"`{h}`" for h in hits) + "?"


def duplicate(diags: Diagnostics, what: str, name: ast.Ident, first: Any) -> None:
    """BBF102 at ``name`` with a label at the first definition (a node or a span)."""
    first_span = getattr(first, "span", first)
    diags.error(codes.BBF102, f"{what} `{name.name}` is already defined", name.span,
                labels=(Label(first_span, "first defined here"),))


def positive_timeout(diags: Diagnostics, timeout: ast.DurationLit | None, what: str) -> None:
    """BBF201 for a ``timeout`` of no time: ``what`` (each attempt of a step, a run) would time out at once."""
    if timeout is not None and timeout.seconds <= 0:
        diags.error(codes.BBF201, f"a timeout is more than 0s: with `timeout {timeout.text}` {what} would time out "
                    "at once", timeout.span, help="give the longest time it may take, or leave the timeout out")


def declare(module: ast.Module, diags: Diagnostics) -> dict[str, Symbol]:
    """The module's own top-level symbols; BBF102 for a name declared twice."""
    table: dict[str, Symbol] = {}
    for decl in module.decls:
        kind = DECL_KINDS.get(type(decl))
        if kind is None or isinstance(decl, ast.SignalDecl):  # signals are keyed by type, not by name
            continue
        name = decl.name.name
        if name in table:
            duplicate(diags, kind.value, decl.name, table[name].decl.name)
            continue
        table[name] = Symbol(kind, name, f"{module.name}.{name}", decl, module.name)
    return table


@attrs.frozen(slots=True)
class ParamSig:
    name: str
    type: T.Type
    has_default: bool
    node: ast.Param


@attrs.frozen(slots=True)
class Signature:
    """What a command, action or reactor takes and gives (``result`` NONE when it declares none)."""

    params: tuple[ParamSig, ...]
    result: T.Type

    def param(self, name: str) -> ParamSig | None:
        for p in self.params:
            if p.name == name:
                return p
        return None


@attrs.define
class RobotInfo:
    """A robot interface: states, commands, events and category limits, checked once."""

    qualname: str
    decl: ast.RobotDecl
    module: str
    states: dict[str, ast.Ident | None]  # operational and safety states; None: built in
    commands: dict[str, ast.CommandDecl]
    events: dict[str, ast.EventDecl]
    limits: dict[str, int]

    def limit(self, category: str) -> int:
        return self.limits.get(category, 1)


#: a dotted name that did not resolve, already reported (or silently unknown)
UNRESOLVED = None


class Resolver:
    """Resolves type expressions and describes declarations, recording into ``facts``."""

    def __init__(self, scopes: dict[str, ModuleScope], facts: Facts, diags: Diagnostics) -> None:
        self.scopes = scopes
        self.facts = facts
        self.diags = diags
        self._aliases: dict[ast.TypeAlias, T.Type] = {}
        self._resolving: set[ast.TypeAlias] = set()
        self._enums: dict[ast.EnumDecl, T.EnumT] = {}
        self._sigs: dict[ast.CommandDecl | ast.ActionDecl | ast.ReactorDecl, Signature] = {}
        self._robots: dict[ast.RobotDecl, RobotInfo] = {}

    # --- names ---------------------------------------------------------------------

    def lookup(self, parts: tuple[ast.Ident, ...], scope: ModuleScope, kinds: tuple[SymKind, ...],
               what: str, extra: Iterable[str] = ()) -> Symbol | None:
        """A dotted name (``Pose``, ``arm.Pose``) as a symbol of one of ``kinds``.

        Reports BBF101 (with "did you mean" from the names of those kinds in
        scope, plus ``extra``) and returns None when it does not resolve; a
        name that failed to import or lives in a module with syntax errors is
        returned as None silently.
        """
        first = parts[0]
        sym = scope.lookup(first.name)
        if sym is None:
            if first.name not in extra and not scope.broken:
                self.diags.error(codes.BBF101, f"unknown {what} `{first.name}`", first.span,
                                 help=did_you_mean(first.name, [*scope.names(*kinds), *extra]))
            return UNRESOLVED
        for part in parts[1:]:
            if sym.kind is SymKind.UNKNOWN:
                return UNRESOLVED
            if sym.kind is not SymKind.MODULE:
                self.diags.error(codes.BBF101, f"`{sym.name}` is {a_or_an(sym.kind.value)}, not a module: "
                                 f"it has no member `{part.name}`", part.span)
                return UNRESOLVED
            target = self.scopes.get(sym.decl)
            member = target.own.get(part.name) if target else None
            if member is None:
                if target is not None and not target.broken:
                    self.diags.error(codes.BBF101, f"module `{sym.decl}` has no {what} `{part.name}`", part.span,
                                     help=did_you_mean(part.name, [n for n, s in target.own.items()
                                                                   if s.kind in kinds]))
                return UNRESOLVED
            sym = member
        if sym.kind is SymKind.UNKNOWN:
            return UNRESOLVED
        if sym.kind not in kinds:
            self.diags.error(codes.BBF201, f"`{'.'.join(p.name for p in parts)}` is {a_or_an(sym.kind.value)}, "
                             f"not {a_or_an(what)}", parts[-1].span)
            return UNRESOLVED
        return sym

    # --- types ---------------------------------------------------------------------

    def type_of(self, texpr: ast.TypeExpr, scope: ModuleScope) -> T.Type:
        """The compiler type of a type expression (ERROR when it names something unknown)."""
        t = self._type_of(texpr, scope)
        self.facts.types[texpr] = t
        return t

    def _type_of(self, texpr: ast.TypeExpr, scope: ModuleScope) -> T.Type:
        if isinstance(texpr, ast.NamedType):
            if len(texpr.parts) == 1 and texpr.parts[0].name in T.PRIMITIVES:
                sym = scope.lookup(texpr.parts[0].name)
                if sym is None:
                    return T.PRIMITIVES[texpr.parts[0].name]
            sym = self.lookup(texpr.parts, scope, (SymKind.TYPE, SymKind.ENUM), "type",
                              extra=T.PRIMITIVES)
            if sym is None:
                return T.ERROR
            return self.symbol_type(sym)
        if isinstance(texpr, ast.ListType):
            return T.ListT(self.type_of(texpr.item, scope))
        if isinstance(texpr, ast.MapType):
            return T.MapT(self.type_of(texpr.item, scope))
        if isinstance(texpr, ast.OptionalType):
            return T.optional(self.type_of(texpr.inner, scope))
        if isinstance(texpr, ast.RecordType):
            fields: dict[str, T.Type] = {}
            first: dict[str, ast.FieldType] = {}
            for f in texpr.fields:
                ft = self.type_of(f.type, scope)
                if f.name.name in first:
                    duplicate(self.diags, "field", f.name, first[f.name.name])
                    continue
                first[f.name.name] = f
                fields[f.name.name] = ft
            return T.RecordT(tuple(fields.items()))
        raise TypeError(f"not a type expression: {texpr!r}")  # pragma: no cover - guarded by the AST

    def symbol_type(self, sym: Symbol) -> T.Type:
        """The type a TYPE or ENUM symbol stands for."""
        if sym.kind is SymKind.ENUM:
            return self.enum_type(sym)
        decl: ast.TypeAlias = sym.decl
        key = decl
        if key in self._aliases:
            return self._aliases[key]
        if key in self._resolving:
            self.diags.error(codes.BBF201, f"type `{decl.name.name}` is defined in terms of itself", decl.name.span,
                             help="a type cannot contain itself, not even in a list, a map or an optional; "
                                  "write `any` where it would")
            self._aliases[key] = T.ERROR
            return T.ERROR
        self._resolving.add(key)
        t = self.type_of(decl.type, self.scopes[sym.module])
        self._resolving.discard(key)
        if key in self._aliases:  # reported as a loop while resolving
            return self._aliases[key]
        if isinstance(t, T.RecordT) and t.name is None:
            t = T.RecordT(t.fields, decl.name.name)
        self._aliases[key] = t
        self.facts.decl_types[key] = t
        return t

    def enum_type(self, sym: Symbol) -> T.EnumT:
        decl: ast.EnumDecl = sym.decl
        key = decl
        if key not in self._enums:
            members: dict[str, ast.Ident] = {}
            for m in decl.members:
                if m.name in members:
                    duplicate(self.diags, "enum member", m, members[m.name])
                else:
                    members[m.name] = m
            self._enums[key] = T.EnumT(sym.qualname, tuple(members))
            self.facts.decl_types[key] = self._enums[key]
        return self._enums[key]

    # --- callables -----------------------------------------------------------------

    def signature(self, decl: ast.CommandDecl | ast.ActionDecl | ast.ReactorDecl, module: str) -> Signature:
        """Parameters and result of a callable declared in ``module`` (BBF102 for a repeated parameter)."""
        key = decl
        if key not in self._sigs:
            scope = self.scopes[module]
            params: list[ParamSig] = []
            seen: dict[str, ast.Param] = {}
            for p in decl.params:
                pt = self.type_of(p.type, scope)
                self.facts.decl_types[p] = pt
                if p.name.name in seen:
                    duplicate(self.diags, "parameter", p.name, seen[p.name.name])
                    continue
                seen[p.name.name] = p
                params.append(ParamSig(p.name.name, pt, p.default is not None, p))
            result = self.type_of(decl.result, scope) if decl.result is not None else T.NONE
            self._sigs[key] = Signature(tuple(params), result)
            self.facts.decl_types[key] = result
        return self._sigs[key]

    def bound_robot(self, decl: ast.ReactorDecl | ast.AgentDecl, module: str) -> tuple[bool, str | None]:
        """(resolved, the qualified name of the robot interface ``decl`` is `on`, None without `on`),
        without reporting anything: a name that does not resolve is reported where it is declared."""
        if decl.robot is None:
            return True, None
        scope = self.scopes.get(module)
        if scope is None:
            return False, None
        saved, self.diags = self.diags, Diagnostics()
        try:
            sym = self.lookup(decl.robot.parts, scope, (SymKind.ROBOT,), "robot")
        finally:
            self.diags = saved
        return (True, sym.qualname) if sym is not None else (False, None)

    def robot(self, sym: Symbol) -> RobotInfo:
        """The robot interface behind a ROBOT symbol, its duplicates reported once."""
        decl: ast.RobotDecl = sym.decl
        key = decl
        if key in self._robots:
            return self._robots[key]
        states: dict[str, ast.Ident | None] = {"idle": None, **dict.fromkeys(SAFETY_STATES)}
        for sd in decl.states:
            for s in sd.names:
                if s.name in SAFETY_STATES:
                    self.diags.error(codes.BBF102, f"`{s.name}` is a built-in safety state of every robot",
                                     s.span, help="declare only operational states; safety states are built in")
                elif states.get(s.name) is not None:
                    duplicate(self.diags, "state", s, states[s.name])
                elif s.name != "idle":
                    states[s.name] = s
        limits: dict[str, int] = {}
        limit_decls: dict[str, ast.LimitDecl] = {}
        for ld in decl.limits:
            if ld.category.name in limit_decls:
                duplicate(self.diags, "limit of category", ld.category, limit_decls[ld.category.name])
                continue
            limit_decls[ld.category.name] = ld
            limits[ld.category.name] = ld.limit
            if ld.limit < 1:  # no command of the category could ever start: a run would wait forever
                self.diags.error(codes.BBF201, f"the limit of category `{ld.category.name}` is at least 1, found "
                                 f"{ld.limit}", ld.span, help=f"write `limit {ld.category.name} 1` (the default)")
        commands: dict[str, ast.CommandDecl] = {}
        for c in decl.commands:
            if c.name.name in BUILTIN_COMMANDS:
                self.diags.error(codes.BBF102, f"`{c.name.name}` is a built-in command of every robot", c.name.span)
            elif c.name.name in commands:
                duplicate(self.diags, "command", c.name, commands[c.name.name])
            else:
                commands[c.name.name] = c
            positive_timeout(self.diags, c.timeout, f"every call of `{c.name.name}`")
        events: dict[str, ast.EventDecl] = {}
        for e in decl.events:
            if e.name.name in events:
                duplicate(self.diags, "event", e.name, events[e.name.name])
            else:
                events[e.name.name] = e
        info = RobotInfo(sym.qualname, decl, sym.module, states, commands, events, limits)
        self._robots[key] = info
        return info

    def event_payload(self, event: ast.EventDecl, module: str) -> T.Type:
        """The payload record of a robot event (``{}`` when it declares none)."""
        key = event
        if key not in self.facts.decl_types:
            t = (self.type_of(event.payload, self.scopes[module]) if event.payload is not None
                 else T.RecordT(()))
            if not isinstance(t, T.RecordT) and not T.is_lenient(t):
                self.diags.error(codes.BBF201, f"the payload of event `{event.name.name}` must be a record, found {t}",
                                 event.payload.span if event.payload is not None else event.span, help=f"name the value: `event {event.name.name}: {{value: {t}}}`")
                t = T.ERROR
            self.facts.decl_types[key] = t
        return self.facts.decl_types[key]
