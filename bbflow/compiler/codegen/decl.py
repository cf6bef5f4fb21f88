"""Declarations to model constructors (``_m.Robot(...)``, ``_m.Reactor(...)``, ...).

Structure is data: each top-level declaration becomes one nested constructor
call (a ``codegen_src`` tree); expressions inside become calls to the
module's ``_eN`` functions (``codegen_expr``). Imported declarations are
referred to by qualified name (``_m.ReactorCall("cell.arm.Inner", ...)``),
so a generated module never imports another one.

What is filled in here so the runtime need not know the declarations: the
default of every omitted argument (``args`` returns complete kwargs), a step's
timeout (its own, else its command's), and each node's ``deps``
(data references plus ``after``; for ``switch``/``map`` also the outer names
their bodies use).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.codegen.expr import CodegenError, ExprGen
from bbflow.compiler.codegen.src import Call, Pair, Raw, Seq, Src, literal
from bbflow.compiler.codegen.types import to_rtype
from bbflow.compiler.semantic.facts import CallKind, Facts
from bbflow.runtime import types as rt

_BINDERS = (ast.StepStmt, ast.LetStmt, ast.SwitchStmt, ast.MapStmt)


def expr_refs(node: Any) -> Iterator[ast.Name | ast.Attr]:
    """Every ``Name`` and ``Attr`` inside ``node`` (a node or a tuple of nodes), depth first."""
    if isinstance(node, tuple):
        for item in node:
            yield from expr_refs(item)
    elif isinstance(node, (ast.Name, ast.Attr)):
        yield node
        if isinstance(node, ast.Attr):
            yield from expr_refs(node.obj)
    elif attrs.has(type(node)):
        for f in attrs.fields(type(node)):
            if f.name != "span":
                yield from expr_refs(getattr(node, f.name))


def after_names(node: Any) -> Iterator[str]:
    """The names in every ``after`` inside ``node``, nested bodies included."""
    if isinstance(node, tuple):
        for item in node:
            yield from after_names(item)
    elif isinstance(node, ast.AfterMod):
        yield from (i.name for i in node.names)
    elif attrs.has(type(node)) and not isinstance(node, (ast.Ident, ast.Comment)):
        for f in attrs.fields(type(node)):
            if f.name != "span":
                yield from after_names(getattr(node, f.name))


@attrs.define
class DeclGen:
    """Generates the declarations of one module."""

    facts: Facts
    exprs: ExprGen
    file: str  # the module's .flow path as shown in comments and line maps

    # --- robots, actions, signals ------------------------------------------------------

    def robot(self, d: ast.RobotDecl) -> Src:
        states = ["idle"]
        for group in d.states:
            states += [s.name for s in group.names if s.name not in states]
        commands = tuple(Pair(Raw(literal(c.name.name)), self.command(c)) for c in d.commands)
        events = tuple(Pair(Raw(literal(e.name.name)), self.event(e)) for e in d.events)
        return Call("_m.Robot", kwargs=(
            ("name", Raw(literal(d.name.name))),
            ("qualname", Raw(literal(self.qualname(d)))),
            ("states", _strings(states)),
            ("limits", Seq(tuple(Seq((Raw(literal(lim.category.name)), Raw(literal(lim.limit)))) for lim in d.limits))),
            ("commands", Seq(commands, "dict")),
            ("events", Seq(events, "dict")),
            ("line", Raw(literal(d.span.line))),
        ), line=d.span.line)

    def command(self, c: ast.CommandDecl) -> Src:
        kwargs: list[tuple[str, Src]] = [
            ("name", Raw(literal(c.name.name))),
            ("params", self.params(c.params)),
            # declaring no result, the command's value is `none` in the flow, whatever its driver returns
            ("result", self.rtype(c.result) if c.result is not None else Raw(self.exprs.types.ref(rt.NONE))),
        ]
        if c.category is not None:
            kwargs.append(("category", Raw(literal(c.category.name))))
        if c.timeout is not None:
            kwargs.append(("timeout", Raw(literal(c.timeout.seconds))))
        if c.readonly:
            kwargs.append(("readonly", Raw("True")))
        if c.allowed:
            kwargs.append(("allowed", _strings([a.name for a in c.allowed])))
        if c.undo is not None:
            kwargs.append(("undo", self.call(c.undo)))
        return Call("_m.Command", kwargs=tuple(kwargs), line=c.span.line)

    def event(self, e: ast.EventDecl) -> Src:
        kwargs: tuple[tuple[str, Src], ...] = (("name", Raw(literal(e.name.name))),)
        if e.payload is not None:
            kwargs += (("payload", self.rtype(e.payload)),)
        return Call("_m.Event", kwargs=kwargs, line=e.span.line)

    def action(self, d: ast.ActionDecl) -> Src:
        kwargs: list[tuple[str, Src]] = [
            ("name", Raw(literal(d.name.name))),
            ("qualname", Raw(literal(self.qualname(d)))),
            ("params", self.params(d.params)),
            ("result", self.rtype(d.result) if d.result is not None else Raw("None")),
            ("target", Raw(literal(d.target.value))),
        ]
        if d.pure:
            kwargs.append(("pure", Raw("True")))
        return Call("_m.Action", kwargs=tuple(kwargs), line=d.span.line)

    def signal(self, d: ast.SignalDecl) -> Src:
        kwargs: tuple[tuple[str, Src], ...] = (("type", Raw(literal(d.type.text))),)
        if d.payload is not None:
            kwargs += (("payload", self.rtype(d.payload)),)
        return Call("_m.Signal", kwargs=kwargs, line=d.span.line)

    # --- reactors ------------------------------------------------------------------------

    def reactor(self, d: ast.ReactorDecl) -> Src:
        result = self.exprs.declared(d.result)
        kwargs: list[tuple[str, Src]] = [
            ("name", Raw(literal(d.name.name))),
            ("qualname", Raw(literal(self.qualname(d)))),
            ("params", self.params(d.params)),
            ("result", Raw(self.exprs.types.ref(result)) if result is not None else Raw("None")),
            ("robot", Raw(literal(self.facts.robots_of.get(d)))),
            ("body", self.body(d.body, result)),
        ]
        for opt in d.options:
            value = opt.value.seconds if isinstance(opt.value, ast.DurationLit) else opt.value.value
            kwargs.append((opt.kind, Raw(literal(value))))
        kwargs += [("file", Raw(literal(self.file))), ("line", Raw(literal(d.span.line)))]
        return Call("_m.Reactor", kwargs=tuple(kwargs), line=d.span.line)

    def body(self, block: ast.Block, result: rt.RType | None = None) -> Src:
        """A body's nodes (with their deps among this body's names) and how it ends."""
        local = {id(s): s.name.name for s in block.stmts if isinstance(s, _BINDERS)}
        nodes: list[Src] = []
        end: Src = Raw("None")
        for stmt in block.stmts:
            if isinstance(stmt, ast.ReturnStmt):
                end = Call("_m.Return", (Raw(self.exprs.fn(stmt.value, result)),),
                           (("line", Raw(literal(stmt.span.line))),), line=stmt.span.line)
            elif isinstance(stmt, ast.FailStmt):
                end = Call("_m.Fail", (Raw(literal(stmt.message.value)),),
                           (("line", Raw(literal(stmt.span.line))),), line=stmt.span.line)
            else:
                nodes.append(self.node(stmt, local))
        kwargs = (("end", end),) if end != Raw("None") else ()
        return Call("_m.Body", (Seq(tuple(nodes)),), kwargs)

    def node(self, stmt: ast.ReactorStmt, local: dict[int, str]) -> Src:
        if isinstance(stmt, ast.StepStmt):
            return self.step(stmt, local)
        if isinstance(stmt, ast.LetStmt):
            return Call("_m.Let", kwargs=(
                ("name", Raw(literal(stmt.name.name))),
                ("expr", Raw(self.exprs.fn(stmt.value))),
                *self._deps(self.deps(stmt.value, (), local, stmt)),
                ("line", Raw(literal(stmt.span.line))),
            ), line=stmt.span.line)
        if isinstance(stmt, ast.SwitchStmt):
            value = self._bound(stmt)  # each case returns the switch's type (int -> float)
            cases = tuple(
                Call("_m.Case", (_values([self.exprs.constant(v) for v in c.values]), self.body(c.body, value)))
                for c in stmt.cases
            )
            kwargs: list[tuple[str, Src]] = [
                ("name", Raw(literal(stmt.name.name))),
                ("subject", Raw(self.exprs.fn(stmt.subject))),
                ("cases", Seq(cases)),
            ]
            if stmt.default is not None:
                kwargs.append(("default", self.body(stmt.default, value)))
            inner: tuple[Any, ...] = (stmt.subject, stmt.cases, stmt.default)
            kwargs += [*self._deps(self.deps(inner, inner, local, stmt)), ("line", Raw(literal(stmt.span.line)))]
            return Call("_m.Switch", kwargs=tuple(kwargs), line=stmt.span.line)
        if isinstance(stmt, ast.MapStmt):
            kwargs = [
                ("name", Raw(literal(stmt.name.name))),
                ("over", Raw(self.exprs.fn(stmt.over, rt.ListOf(rt.ANY)))),
                ("item", Raw(literal(stmt.item.name))),
                ("body", self.body(stmt.body, _item(self._bound(stmt)))),
            ]
            if stmt.concurrency is not None:
                kwargs.append(("concurrency", Raw(literal(stmt.concurrency.value))))
            inner = (stmt.over, stmt.body)
            kwargs += [*self._deps(self.deps(inner, inner, local, stmt)), ("line", Raw(literal(stmt.span.line)))]
            return Call("_m.Map", kwargs=tuple(kwargs), line=stmt.span.line)
        raise CodegenError(f"{stmt.span.file}:{stmt.span.line}: unexpected {type(stmt).__name__} in a body")

    def step(self, s: ast.StepStmt, local: dict[int, str]) -> Src:
        target = self.target(s.call)
        when, where, fallback = s.modifier(ast.WhenMod), s.modifier(ast.WhereMod), s.modifier(ast.FallbackMod)
        timeout, retry, undo = s.modifier(ast.TimeoutMod), s.modifier(ast.RetryMod), s.modifier(ast.UndoMod)
        irreversible = s.modifier(ast.IrreversibleMod)
        kwargs: list[tuple[str, Src]] = [
            ("name", Raw(literal(s.name.name))),
            ("call", self.call(s.call, where.cond if isinstance(where, ast.WhereMod) else None)),
        ]
        used = tuple(m for m in s.modifiers if isinstance(m, (ast.WhenMod, ast.WhereMod, ast.FallbackMod)))
        kwargs += self._deps(self.deps(s.call, used + tuple(m for m in s.modifiers if isinstance(m, ast.AfterMod)),
                                       local, s))
        if isinstance(when, ast.WhenMod):
            kwargs.append(("when", Raw(self.exprs.fn(when.cond, rt.BOOL))))
        seconds = timeout.duration.seconds if isinstance(timeout, ast.TimeoutMod) else None
        if seconds is None and target.kind is CallKind.COMMAND and getattr(target.decl, "timeout", None) is not None:
            seconds = target.decl.timeout.seconds
        if seconds is not None:
            kwargs.append(("timeout", Raw(literal(seconds))))
        if isinstance(retry, ast.RetryMod):
            args: tuple[Src, ...] = (Raw(literal(retry.attempts.value)),)
            if retry.backoff is not None:
                args += (Raw(literal(retry.backoff.seconds)),)
            if retry.max is not None:
                args += (Raw(literal(retry.max.seconds)),)
            kwargs.append(("retry", Call("_m.Retry", args)))
        if isinstance(undo, ast.UndoMod):  # else the executor takes the command's own (Command.undo)
            kwargs.append(("undo", Call("_m.Undo", (self.call(undo.call),))))
        if isinstance(irreversible, ast.IrreversibleMod):
            kwargs.append(("irreversible", Raw(literal(irreversible.reason.value))))
        if isinstance(fallback, ast.FallbackMod):
            result = self.exprs.declared(getattr(target.decl, "result", None))
            kwargs.append(("fallback", Raw(self.exprs.fn(fallback.value, result))))
        kwargs.append(("line", Raw(literal(s.span.line))))
        return Call("_m.Step", kwargs=tuple(kwargs), line=s.span.line)

    def deps(self, data: Any, more: Any, local: dict[int, str], me: Any) -> list[str]:
        """Names of ``local`` nodes that ``data`` and ``more`` refer to (or name in ``after``), in body order."""
        found: set[str] = set()
        for n in expr_refs((data, more)):
            ref = self.facts.ref(n)
            if ref is not None and ref.decl is not None and ref.decl is not me and id(ref.decl) in local:
                found.add(local[id(ref.decl)])
        names = set(local.values())
        found |= {name for name in after_names(more) if name in names}
        return [name for name in local.values() if name in found]

    @staticmethod
    def _deps(names: list[str]) -> list[tuple[str, Src]]:
        return [("deps", _strings(names))] if names else []

    # --- calls -----------------------------------------------------------------------------

    def target(self, call: ast.CallExpr) -> Any:
        target = self.facts.call(call)
        if target is None:
            raise CodegenError(f"{call.span.file}:{call.span.line}: unresolved call")
        return target

    def call(self, call: ast.CallExpr, where: ast.Expr | None = None) -> Src:
        """A step, undo or ``run`` call as a model call; ``where`` goes with a ``wait_event``."""
        t = self.target(call)
        if t.kind is CallKind.COMMAND:
            command = t.qualname.rsplit(".", 1)[-1]  # arm/disarm have no declaration
            return Call("_m.CommandCall", (Raw(literal(command)), Raw(self.exprs.args_fn(call, t))))
        if t.kind is CallKind.ACTION:
            return Call("_m.ActionCall", (Raw(literal(t.qualname)), Raw(self.exprs.args_fn(call, t))))
        if t.kind is CallKind.REACTOR:
            return Call("_m.ReactorCall", (Raw(literal(t.qualname)), Raw(self.exprs.args_fn(call, t))))
        if t.kind is CallKind.WAIT_STATE:
            return Call("_m.WaitState", (_strings(list(t.args["states"])),))
        if t.kind in (CallKind.WAIT_EVENT, CallKind.WAIT_SIGNAL):
            wait = "event" if t.kind is CallKind.WAIT_EVENT else "signal"
            args: tuple[Src, ...] = (Raw(literal(t.args[wait])),)
            if where is not None:
                args += (Raw(self.exprs.fn(where, rt.BOOL)),)
            return Call("_m.WaitEvent" if wait == "event" else "_m.WaitSignal", args)
        raise CodegenError(f"{call.span.file}:{call.span.line}: {t.kind.value} cannot be a step")

    # --- agents -----------------------------------------------------------------------------

    def agent(self, d: ast.AgentDecl) -> Src:
        fields = {f.name.name: self.exprs.declared(f.type) for f in d.state}
        state = tuple(Call("_m.StateField", (
            Raw(literal(f.name.name)), Raw(self.exprs.types.ref(fields[f.name.name])),
            Raw(self.exprs.fn(f.default, fields[f.name.name])),
        ), line=f.span.line) for f in d.state)
        routes = tuple(self.route(r, i, fields) for i, r in enumerate(d.routes))
        return Call("_m.Agent", kwargs=(
            ("name", Raw(literal(d.name.name))),
            ("qualname", Raw(literal(self.qualname(d)))),
            ("robot", Raw(literal(self.facts.robots_of.get(d)))),
            ("state", Seq(state)),
            ("routes", Seq(routes)),
            ("file", Raw(literal(self.file))),
            ("line", Raw(literal(d.span.line))),
        ), line=d.span.line)

    def route(self, r: ast.RouteDecl, index: int, fields: Mapping[str, rt.RType | None]) -> Src:
        kwargs: list[tuple[str, Src]] = [
            ("pattern", Raw(literal(r.pattern.text))),
            ("body", self.stmts(r.body, fields)),
        ]
        if r.bind is not None:
            kwargs.append(("bind", Raw(literal(r.bind.name))))
        if r.when is not None:
            kwargs.append(("when", Raw(self.exprs.fn(r.when, rt.BOOL))))
        if r.priority:
            kwargs.append(("priority", Raw(literal(r.priority))))
        kwargs += [("index", Raw(literal(index))), ("line", Raw(literal(r.span.line)))]
        return Call("_m.Route", kwargs=tuple(kwargs), line=r.span.line)

    def stmts(self, stmts: tuple[ast.AgentStmt, ...], fields: Mapping[str, rt.RType | None]) -> Src:
        return Seq(tuple(self.stmt(s, fields) for s in stmts))

    def stmt(self, s: ast.AgentStmt, fields: Mapping[str, rt.RType | None]) -> Src:
        line = ("line", Raw(literal(s.span.line)))
        if isinstance(s, ast.SetStmt):
            declared = fields.get(s.field.name)
            if s.key is None:
                value = self.exprs.fn(s.value, declared)
                return Call("_m.Set", (Raw(literal(s.field.name)), Raw(value)), (line,), line=s.span.line)
            item = declared.item if isinstance(declared, (rt.ListOf, rt.MapOf)) else None
            key = ("key", Raw(self.exprs.fn(s.key)))
            return Call("_m.Set", (Raw(literal(s.field.name)), Raw(self.exprs.fn(s.value, item))), (key, line),
                        line=s.span.line)
        if isinstance(s, (ast.EmitStmt, ast.ScheduleStmt)):
            kwargs: list[tuple[str, Src]] = [("type", Raw(literal(s.type.text)))]
            if isinstance(s, ast.ScheduleStmt):
                delay = s.delay  # a literal is written as it is; any other duration is computed when the turn runs
                kwargs.append(("delay", Raw(literal(delay.seconds) if isinstance(delay, ast.DurationLit)
                                            else self.exprs.fn(delay, rt.DURATION))))
            if s.data is not None:
                # the agent runtime conforms the data to the signal's payload type (int -> float included)
                kwargs.append(("data", Raw(self.exprs.fn(s.data))))
            if s.to is not None:
                kwargs.append(("to", Raw(self.exprs.fn(s.to, rt.STR))))
            kind = "_m.Emit" if isinstance(s, ast.EmitStmt) else "_m.Schedule"
            return Call(kind, kwargs=(*kwargs, line), line=s.span.line)
        if isinstance(s, ast.RunStmt):
            kwargs = [("call", self.call(s.call))]
            if s.then is not None:
                kwargs.append(("then", self.stmts(s.then, fields)))
            if s.else_ is not None:
                kwargs.append(("else_", self.stmts(s.else_, fields)))
            if s.preempt:
                kwargs.append(("preempt", Raw("True")))
            return Call("_m.Run", kwargs=(*kwargs, line), line=s.span.line)
        if isinstance(s, ast.CancelStmt):
            reactor = self.facts.cancels.get(s)
            if reactor is None:
                raise CodegenError(f"{s.span.file}:{s.span.line}: the checker resolved no reactor for `cancel`")
            return Call("_m.Cancel", (Raw(literal(reactor)),), (line,), line=s.span.line)
        if isinstance(s, ast.IfStmt):
            kwargs = [("cond", Raw(self.exprs.fn(s.cond, rt.BOOL))), ("then", self.stmts(s.then, fields))]
            if s.else_:
                kwargs.append(("else_", self.stmts(s.else_, fields)))
            return Call("_m.If", kwargs=(*kwargs, line), line=s.span.line)
        raise CodegenError(f"{s.span.file}:{s.span.line}: unexpected {type(s).__name__} in a route")

    # --- helpers ----------------------------------------------------------------------------

    def qualname(self, d: Any) -> str:
        name = self.facts.qualnames.get(d)
        if name is None:
            raise CodegenError(f"{d.span.file}:{d.span.line}: the checker recorded no qualified name")
        return name

    def params(self, params: tuple[ast.Param, ...]) -> Src:
        out = []
        for p in params:
            t = self.exprs.declared(p.type)
            args: tuple[Src, ...] = (Raw(literal(p.name.name)), Raw(self.exprs.types.ref(t)))
            if p.default is not None:
                args += (Raw(self.exprs.fn(p.default, t)),)
            out.append(Call("_m.Param", args))
        return Seq(tuple(out))

    def _bound(self, stmt: ast.SwitchStmt | ast.MapStmt) -> rt.RType | None:
        """The type of the name a ``switch`` or ``map`` binds, as the checker found it."""
        found = self.facts.decl_types.get(stmt)
        return None if found is None else to_rtype(found)

    def rtype(self, t: ast.TypeExpr | None) -> Src:
        declared = self.exprs.declared(t)
        return Raw(self.exprs.types.ref(declared if declared is not None else rt.ANY))


def _strings(items: list[str]) -> Seq:
    return Seq(tuple(Raw(literal(i)) for i in items))


def _item(t: rt.RType | None) -> rt.RType | None:
    """The item type of a list type (what each run of a ``map``'s body returns)."""
    return t.item if isinstance(t, rt.ListOf) else None


def _values(items: list[Any]) -> Seq:
    return Seq(tuple(Raw(literal(i)) for i in items))
