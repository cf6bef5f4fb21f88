"""Type checking of declarations: robots, actions, reactor bodies and agents.

One ``TypeChecker`` walks every declaration of a module once. Reactor bodies
declare all their names first (a step may name one written after it) and
compute each name's type on first use (see ``bbflow.compiler.semantic.env``). Decisions
the language leaves open are documented in docs/language.md ("Decisions at a glance")
and in comments where they are made.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator, Mapping
from typing import Any

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.env import Env, Local
from bbflow.compiler.semantic.exprs import Ctx, ExprChecker
from bbflow.compiler.semantic.facts import CallKind, Facts, Ref, RefKind
from bbflow.compiler.semantic.resolve import Resolver, RobotInfo, did_you_mean, duplicate, positive_timeout
from bbflow.compiler.semantic.symbols import ModuleScope, SymKind
from bbflow.compiler.source import Span

try:  # the route patterns module; without it, wildcard routes bind `data: any`
    from bbflow.compiler.semantic.patterns import Pattern, SignalIndex, compile_pattern
except ImportError:  # pragma: no cover - present in the full tree
    compile_pattern = None  # type: ignore[assignment]

_NOT_CONSTANT = object()


class SignalPayloads(Mapping[str, T.Type]):
    """The payload type of every declared signal, noting each module whose check reads any of it.

    Signals are global: a module that reads them depends on modules it does
    not import, so the cache must key it by the program's signal table. The
    readers (``Facts.signal_readers``) are recorded here, where every read
    goes, so that the pipeline can verify its keys against what a check read.
    """

    def __init__(self, payloads: Mapping[str, T.Type], readers: set[str]) -> None:
        self._payloads = payloads
        self._readers = readers
        self.reader: str | None = None  # the module being checked

    def _read(self) -> None:
        if self.reader is not None:
            self._readers.add(self.reader)

    def __getitem__(self, key: str) -> T.Type:
        self._read()
        return self._payloads[key]

    def __iter__(self) -> Iterator[str]:
        self._read()
        return iter(self._payloads)

    def __len__(self) -> int:
        self._read()
        return len(self._payloads)

    def with_events(self, events: dict[str, T.Type]) -> Mapping[str, T.Type]:
        """These and an agent's robot events (``robot.event.NAME``): not a copy of every signal per agent."""
        return ChainMap(events, self)  # type: ignore[arg-type]  # only read: a Mapping is enough


class TypeChecker:
    def __init__(self, resolver: Resolver, facts: Facts, diags: Diagnostics,
                 signals: Mapping[str, T.Type]) -> None:
        self.resolver = resolver
        self.facts = facts
        self.diags = diags
        self.exprs = ExprChecker(resolver, facts, diags)
        #: payload type of every declared signal (NONE when it has no payload)
        self.signals = SignalPayloads(signals, facts.signal_readers)
        self.exprs.signals = self.signals
        self._signal_index: SignalIndex | None = None  # of ``signals``, for wildcard routes (built on first use)
        self._declared_hits: dict[str, tuple[str, ...]] = {}  # pattern -> up to two signals it matches
        #: id(SwitchStmt or MapStmt) -> the type its body's returns should have, when the
        #: reactor returns its value (so `return closed` in a case knows it means Grip.closed)
        self.result_hints: dict[int, T.Type] = {}

    # --- modules -------------------------------------------------------------------

    def check_module(self, scope: ModuleScope) -> None:
        self.signals.reader = scope.name
        for decl in scope.module.decls:
            ident = getattr(decl, "name", None)  # signals have a type, not a name
            sym = scope.own.get(ident.name) if isinstance(ident, ast.Ident) else None
            if sym is not None and sym.decl is not decl:
                sym = None  # a duplicate (already reported): checked all the same, under no symbol
            if isinstance(decl, ast.TypeAlias):
                if sym is not None:
                    self.resolver.symbol_type(sym)
                else:
                    self.resolver.type_of(decl.type, scope)
            elif isinstance(decl, ast.EnumDecl):
                if sym is not None:
                    self.resolver.enum_type(sym)
            elif isinstance(decl, ast.RobotDecl):
                if sym is not None:
                    self.check_robot(self.resolver.robot(sym), scope)
            elif isinstance(decl, ast.ActionDecl):
                self.check_params(decl, scope)
            elif isinstance(decl, ast.ReactorDecl):
                self.check_reactor(decl, scope)
            elif isinstance(decl, ast.AgentDecl):
                self.check_agent(decl, scope)

    def check_params(self, decl: ast.CommandDecl | ast.ActionDecl | ast.ReactorDecl, scope: ModuleScope) -> None:
        """Parameter types and defaults (a default is a constant: no names but enum members)."""
        sig = self.resolver.signature(decl, scope.name)
        ctx = Ctx(scope, Env())
        for p in sig.params:
            if p.node.default is not None:
                self.exprs.expect(p.node.default, ctx, p.type, f"default of `{p.name}`")

    def _robot_of(self, named: ast.NamedType | None, scope: ModuleScope, owner: Any) -> RobotInfo | None:
        if named is None:
            return None
        sym = self.resolver.lookup(named.parts, scope, (SymKind.ROBOT,), "robot")
        if sym is None:
            return None
        info = self.resolver.robot(sym)
        self.facts.robots_of[owner] = info.qualname
        return info

    # --- robots --------------------------------------------------------------------

    def check_robot(self, robot: RobotInfo, scope: ModuleScope) -> None:
        for _name, event in robot.events.items():
            self.resolver.event_payload(event, scope.name)
        for cmd in robot.decl.commands:
            self.check_params(cmd, scope)
            sig = self.resolver.signature(cmd, scope.name)
            for s in cmd.allowed:
                if s.name not in robot.states:
                    self.diags.error(codes.BBF101, f"`{robot.decl.name.name}` has no state `{s.name}`", s.span,
                                     help=did_you_mean(s.name, robot.states))
            if cmd.undo is not None:
                env = Env()
                args = T.RecordT(tuple((p.name, p.type) for p in sig.params))
                env.names["args"] = Local(RefKind.ARGS, "args", cmd, None, args)
                env.names["result"] = Local(RefKind.RESULT, "result", cmd, None, sig.result)
                self.exprs.call(cmd.undo, Ctx(scope, env, robot), waits=False, what="an undo")

    # --- reactors ------------------------------------------------------------------

    def check_reactor(self, decl: ast.ReactorDecl, scope: ModuleScope) -> None:
        self.check_params(decl, scope)
        sig = self.resolver.signature(decl, scope.name)
        robot = self._robot_of(decl.robot, scope, decl)
        env = Env()
        for p in sig.params:
            env.names[p.name] = Local(RefKind.PARAM, p.name, p.node, p.node.name, p.type)
        ctx = Ctx(scope, env, robot, decl)
        for option in decl.options:  # as a map's; the runtime would take 0 for 1
            if option.kind == "concurrency" and isinstance(option.value, ast.IntLit) and option.value.value < 1:
                self.diags.error(codes.BBF201, "a reactor's concurrency is at least 1", option.value.span)
            elif isinstance(option.value, ast.DurationLit):
                positive_timeout(self.diags, option.value, f"every run of `{decl.name.name}`")
        declared = sig.result if decl.result is not None else None
        if declared is not None:
            self._hint_returned(decl.body, declared)
        returns = self.block(decl.body, ctx, declared, new_scope=False)
        if declared is not None and not returns and not _ends_in_fail(decl.body):
            shown = "" if T.has_error(declared) else f" ({declared})"  # an unknown type is reported already
            self.diags.error(codes.BBF302, f"reactor `{decl.name.name}` declares a result{shown} "
                             "but has no `return`", _keyword(decl.span, "reactor"),
                             help="end the body with `return VALUE`, or remove `-> TYPE`")

    def _hint_returned(self, body: ast.Block, declared: T.Type) -> None:
        """When the body returns a switch's or map's value, that value's type is known: record it."""
        ret = next((s for s in body.stmts if isinstance(s, ast.ReturnStmt)), None)
        if ret is None or not isinstance(ret.value, ast.Name):
            return
        for stmt in body.stmts:
            if isinstance(stmt, (ast.SwitchStmt, ast.MapStmt)) and stmt.name.name == ret.value.ident.name:
                want: T.Type | None = T.strip_optional(declared) if isinstance(stmt, ast.SwitchStmt) else declared
                if isinstance(stmt, ast.MapStmt):
                    want = want.item if isinstance(want, T.ListT) else None
                if want is not None and not T.is_lenient(want):
                    self.result_hints[id(stmt)] = want
                    for inner in ([c.body for c in stmt.cases] + ([stmt.default] if stmt.default else [])
                                  if isinstance(stmt, ast.SwitchStmt) else [stmt.body]):
                        self._hint_returned(inner, want)
                return

    def block(self, block: ast.Block, ctx: Ctx, declared: T.Type | None, *,
              new_scope: bool = True, hint: T.Type | None = None) -> list[tuple[ast.ReturnStmt, T.Type]]:
        """Check a reactor, case or map body; the types of its returns.

        ``declared``: the reactor's result type for its own body, None in a reactor
        that declares none (a `return` there is BBF302) and in case/map bodies,
        whose returns make the value of their switch/map. ``hint``: the type those
        returns should have, when it is known (see ``result_hints``); a return that
        does not fit it is reported where the value is returned, not here.
        """
        if new_scope:
            ctx = ctx.child()
        for stmt in block.stmts:
            self._declare(stmt, ctx)
        returns: list[tuple[ast.ReturnStmt, T.Type]] = []
        top = not new_scope
        for stmt in block.stmts:
            if isinstance(stmt, ast.StepStmt):
                self.check_step(stmt, ctx)
            elif isinstance(stmt, (ast.LetStmt, ast.SwitchStmt, ast.MapStmt)):
                local = ctx.env.names.get(stmt.name.name)
                if local is not None and local.decl is stmt:
                    self.facts.decl_types[stmt] = local.resolve_type()
                else:  # a duplicate name (reported): check it all the same
                    self._compute(stmt, ctx)
            elif isinstance(stmt, ast.ReturnStmt):
                if returns:
                    self.diags.error(codes.BBF302, "a body has exactly one `return`", stmt.span,
                                     labels=(Label(returns[0][0].span, "the first return"),))
                    self.exprs.expr(stmt.value, ctx)
                elif top and declared is None:
                    self.diags.error(codes.BBF302, "`return` in a reactor that declares no result type", stmt.span,
                                     help="declare the result: `reactor R(...) -> TYPE`, or remove the return")
                    self.exprs.expr(stmt.value, ctx)
                elif top and declared is not None:
                    returns.append((stmt, self.exprs.expect(stmt.value, ctx, declared, "returned value")))
                else:
                    returns.append((stmt, self.exprs.expr(stmt.value, ctx, hint)))
        return returns

    def _declare(self, stmt: ast.ReactorStmt, ctx: Ctx) -> None:
        if isinstance(stmt, (ast.ReturnStmt, ast.FailStmt)):
            return
        kinds = {ast.StepStmt: RefKind.STEP, ast.LetStmt: RefKind.LET,
                 ast.SwitchStmt: RefKind.SWITCH, ast.MapStmt: RefKind.MAP}
        local = Local(kinds[type(stmt)], stmt.name.name, stmt, stmt.name)
        if isinstance(stmt, ast.StepStmt):
            local.compute = lambda: self._step_type(stmt, ctx)
        else:
            local.compute = lambda: self._compute(stmt, ctx)
        ctx.env.declare(local, self.diags)

    # --- steps ---------------------------------------------------------------------

    def _raw_step_type(self, stmt: ast.StepStmt, ctx: Ctx) -> T.Type:
        callee = self.exprs.callee(stmt.call, ctx, waits=True, what="a step")
        return callee.result if callee is not None else T.ERROR

    def _step_type(self, stmt: ast.StepStmt, ctx: Ctx) -> T.Type:
        """A step's value: its call's result, optional when a `when` may skip it."""
        raw = self._raw_step_type(stmt, ctx)
        return T.optional(raw) if stmt.modifier(ast.WhenMod) is not None else raw

    def check_step(self, stmt: ast.StepStmt, ctx: Ctx) -> None:
        raw = self.exprs.call(stmt.call, ctx, waits=True, what="a step")
        self._check_binding(stmt.call, ctx, _keyword(stmt.span, "step"))
        callee = self.facts.calls.get(stmt.call)
        if callee is not None and callee.kind is CallKind.WAIT_SIGNAL and stmt.modifier(ast.TimeoutMod) is None:
            self.diags.error(codes.BBF207, "`wait_signal` needs a `timeout`: a robot must never wait forever",
                             stmt.call.callee.span, help=f"say how long to wait: `step {stmt.name.name} = "
                             f"wait_signal({callee.args['signal']}) ... timeout 5m`")
        timeout = stmt.modifier(ast.TimeoutMod)
        positive_timeout(self.diags, timeout.duration if timeout is not None else None,
                         f"every attempt of `{stmt.name.name}`")
        self.facts.decl_types[stmt] = self._step_type(stmt, ctx)
        # the step's own result, by its name, where it certainly exists: `undo` and `where`
        own = Env(ctx.env)
        own.names[stmt.name.name] = Local(RefKind.STEP, stmt.name.name, stmt, None, raw)
        own_ctx = ctx.child(own)
        for mod in stmt.modifiers:
            if isinstance(mod, ast.AfterMod):
                self._after(mod, ctx)
            elif isinstance(mod, ast.WhenMod):
                self.exprs.expect(mod.cond, ctx, T.BOOL, "`when` condition")
            elif isinstance(mod, ast.UndoMod):
                self.exprs.call(mod.call, own_ctx, waits=False, what="an undo")
            elif isinstance(mod, ast.FallbackMod):
                self.exprs.expect(mod.value, ctx, raw, f"fallback of step `{stmt.name.name}`")
            elif isinstance(mod, ast.WhereMod):
                if callee is not None and callee.kind not in (CallKind.WAIT_EVENT, CallKind.WAIT_SIGNAL):
                    self.diags.error(codes.BBF201, "`where` applies only to `wait_event` and `wait_signal` steps",
                                     mod.span, help="use `when` to guard a step")
                    self.exprs.expr(mod.cond, own_ctx)
                else:
                    self.exprs.expect(mod.cond, own_ctx, T.BOOL, "`where` condition")

    def _after(self, mod: ast.AfterMod, ctx: Ctx) -> None:
        orderable = (RefKind.STEP, RefKind.LET, RefKind.SWITCH, RefKind.MAP)
        for ident in mod.names:
            local = ctx.env.lookup(ident.name)
            if local is None or local.kind not in orderable:
                if not ctx.scope.broken:
                    what = "a step" if local is None else f"a {local.kind.value}, not a step"
                    self.diags.error(codes.BBF101, f"`after {ident.name}`: `{ident.name}` is not {what}"
                                     if local is not None else f"unknown step `{ident.name}` in `after`",
                                     ident.span, help=did_you_mean(ident.name, ctx.env.visible(*orderable)))
                continue
            # `after` names are identifiers, not expressions: their Ref is keyed by the Ident
            self.facts.refs[ident] = Ref(local.kind, ident.name, local.decl)

    # --- let, switch, map ----------------------------------------------------------

    def _compute(self, stmt: ast.LetStmt | ast.SwitchStmt | ast.MapStmt, ctx: Ctx) -> T.Type:
        if isinstance(stmt, ast.LetStmt):
            t = self.exprs.expr(stmt.value, ctx)
        elif isinstance(stmt, ast.SwitchStmt):
            t = self._switch(stmt, ctx)
        else:
            t = self._map(stmt, ctx)
        self.facts.decl_types[stmt] = t
        return t

    def _switch(self, stmt: ast.SwitchStmt, ctx: Ctx) -> T.Type:
        subject = self.exprs.expr(stmt.subject, ctx)
        hint = self.result_hints.get(id(stmt))
        covered: dict[Any, ast.Expr] = {}
        returns: list[tuple[ast.ReturnStmt, T.Type]] = []
        for case in stmt.cases:
            for v in case.values:
                self.exprs.expect(v, ctx, subject, "case value")
                value = self._constant(v)
                if value is _NOT_CONSTANT:
                    self.diags.error(codes.BBF201, "a case value is a literal or an enum member", v.span)
                elif _case(value) in covered:
                    self.diags.error(codes.BBF102, "this case value is already covered", v.span,
                                     labels=(Label(covered[_case(value)].span, "first covered here"),))
                else:
                    covered[_case(value)] = v
            returns += self._branch(case.body, ctx, "case", _keyword(case.span, "case"), hint)
        if stmt.default is not None:
            returns += self._branch(stmt.default, ctx, "default", stmt.default.span, hint)
        else:
            self._exhaustive(stmt, subject, covered)
        result: T.Type | None = None
        for ret, t in returns:
            joined = t if result is None else T.join(result, t)
            if joined is None:
                self.diags.error(codes.BBF201, f"this branch returns {t}, the ones before {result}", ret.value.span,
                                 help="all branches of a switch return values of one type")
                continue
            result = joined
        return result if result is not None else T.NONE

    def _branch(self, body: ast.Block, ctx: Ctx, what: str, span: Any,
                hint: T.Type | None) -> list[tuple[ast.ReturnStmt, T.Type]]:
        returns = self.block(body, ctx, None, hint=hint)
        if not returns and not _ends_in_fail(body):
            self.diags.error(codes.BBF302, f"this {what} body must end in `return` or `fail`", span)
        return returns

    def _exhaustive(self, stmt: ast.SwitchStmt, subject: T.Type, covered: dict[Any, ast.Expr]) -> None:
        inner = T.strip_optional(subject)
        if T.is_lenient(subject):
            return
        needed: list[Any]
        if isinstance(inner, T.EnumT):
            needed = list(inner.members)
        elif inner == T.BOOL:
            needed = [True, False]
        else:
            self.diags.error(codes.BBF205, f"a switch over {subject} needs a `default`", _keyword(stmt.span, "switch"),
                             help="only switches over an enum or bool can list every value")
            return
        if isinstance(subject, T.OptionalT):
            needed.append(None)
        missing = [v for v in needed if _case(v) not in covered]
        if missing:
            shown = ", ".join(f"`{_show(v)}`" for v in missing)
            self.diags.error(codes.BBF205, f"switch over {subject} does not cover {shown}", _keyword(stmt.span, "switch"),
                             help=f"add `case {_show(missing[0])} {{ ... }}` or a `default {{ ... }}`")

    def _constant(self, e: ast.Expr) -> Any:
        """The value a case stands for (enum members by name), or _NOT_CONSTANT."""
        if isinstance(e, (ast.IntLit, ast.FloatLit, ast.StrLit, ast.BoolLit)):
            return e.value
        if isinstance(e, ast.NoneLit):
            return None
        if isinstance(e, ast.DurationLit):
            return ("duration", e.seconds)
        if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, (ast.IntLit, ast.FloatLit)):
            return -e.operand.value
        ref = self.facts.refs.get(e) if isinstance(e, (ast.Name, ast.Attr)) else None
        if ref is not None and ref.kind is RefKind.ENUM_MEMBER:
            return ref.value
        if isinstance(e, (ast.Name, ast.Attr)) and isinstance(self.facts.types.get(e), T.ErrorT):
            return ("error", id(e))  # already reported
        return _NOT_CONSTANT

    def _map(self, stmt: ast.MapStmt, ctx: Ctx) -> T.Type:
        over = self.exprs.expr(stmt.over, ctx)
        if isinstance(over, T.ListT):
            item = over.item
        elif T.is_lenient(over):
            item = over
        else:
            if isinstance(over, T.OptionalT):
                self.diags.error(codes.BBF204, f"`map` goes over a list, and this {over} may be none", stmt.over.span,
                                 help="give a list for none with `??` (`xs ?? []`)")
            else:
                self.diags.error(codes.BBF201, f"`map` goes over a list, found {over}", stmt.over.span,
                                 help="to do one thing, use a step; to repeat it, give a list (`[x]`)")
            item = T.ERROR
        if stmt.concurrency is not None and stmt.concurrency.value < 1:
            self.diags.error(codes.BBF201, "a map's concurrency is at least 1", stmt.concurrency.span)
        body = ctx.child()
        body.env.declare(Local(RefKind.ITEM, stmt.item.name, stmt, stmt.item, item), self.diags)
        returns = self.block(stmt.body, body, None, hint=self.result_hints.get(id(stmt)))
        if not returns:
            return T.ListT(T.NONE)
        return T.ListT(returns[0][1])

    # --- agents --------------------------------------------------------------------

    def check_agent(self, decl: ast.AgentDecl, scope: ModuleScope) -> None:
        robot = self._robot_of(decl.robot, scope, decl)
        # `instance`: the robot instance the agent instance is bound to ("" for a coordinator);
        # implicit, so a state field or binding of that name shadows it
        implicit = Env()
        implicit.names["instance"] = Local(RefKind.INSTANCE, "instance", None, None, T.STR)
        state = Env(implicit)
        const = Ctx(scope, Env(), robot)
        fields: dict[str, Local] = {}
        for f in decl.state:
            ft = self.resolver.type_of(f.type, scope)
            self.facts.decl_types[f] = ft
            self.exprs.expect(f.default, const, ft, f"default of state field `{f.name.name}`")
            local = Local(RefKind.STATE, f.name.name, f, f.name, ft)
            if state.declare(local, self.diags, "state field"):
                fields[f.name.name] = local
        events = {} if robot is None else {f"robot.event.{name}": self.resolver.event_payload(event, robot.module)
                                           for name, event in robot.events.items()}
        signals = self.signals.with_events(events)
        ctx = Ctx(scope, state, robot, decl)
        for route in decl.routes:
            rctx = ctx.child()
            if route.bind is not None:
                envelope = T.envelope(self._route_data(route.pattern.text, events))
                self.facts.decl_types[route] = envelope
                rctx.env.declare(Local(RefKind.BINDING, route.bind.name, route, route.bind, envelope), self.diags)
            if route.when is not None:
                self.exprs.expect(route.when, rctx, T.BOOL, "`when` condition")
            self.agent_stmts(route.body, rctx, fields, signals)

    def _route_data(self, pattern: str, events: dict[str, T.Type]) -> T.Type:
        """The payload type a route binds: the one signal (or event of the agent's robot) it matches, else `any`."""
        signals = self.signals.with_events(events)
        if "*" not in pattern:
            return signals.get(pattern, T.ANY)
        compiled = compile_pattern(pattern) if compile_pattern is not None else None
        if compiled is None or isinstance(compiled, str):
            return T.ANY
        hits = {name for name in events if compiled.matches(name)}
        hits.update(self._declared_matching(compiled))
        return signals[hits.pop()] if len(hits) == 1 else T.ANY

    def _declared_matching(self, pattern: Pattern) -> tuple[str, ...]:
        """Up to two declared signals ``pattern`` matches, found in the index of all of them (built once)."""
        if self._signal_index is None:
            self._signal_index = SignalIndex(self.signals)
        found = self._declared_hits.get(pattern.text)
        if found is None:  # the same pattern in many agents is looked up once
            found = self._declared_hits[pattern.text] = tuple(self._signal_index.matching(pattern, 2))
        return found

    def agent_stmts(self, stmts: tuple[ast.AgentStmt, ...], ctx: Ctx, fields: dict[str, Local],
                    signals: Mapping[str, T.Type]) -> None:
        for stmt in stmts:
            if isinstance(stmt, ast.SetStmt):
                field = fields.get(stmt.field.name)
                if field is None:
                    if not ctx.scope.broken:
                        self.diags.error(codes.BBF101, f"unknown state field `{stmt.field.name}`", stmt.field.span,
                                         help=did_you_mean(stmt.field.name, fields))
                    self.exprs.expr(stmt.value, ctx)
                    continue
                self.facts.refs[stmt.field] = Ref(RefKind.STATE, field.name, field.decl)
                if stmt.key is not None:
                    self._set_element(stmt, field, ctx)
                else:
                    self.exprs.expect(stmt.value, ctx, field.type or T.ERROR, f"`set {field.name}`")
            elif isinstance(stmt, (ast.EmitStmt, ast.ScheduleStmt)):
                self._emit(stmt, ctx, signals)
                if isinstance(stmt, ast.ScheduleStmt):
                    self.exprs.expect(stmt.delay, ctx, T.DURATION, "`schedule ... in` delay")
                if stmt.to is not None:
                    self.exprs.expect(stmt.to, ctx, T.STR, "`to` (the robot instance a signal is addressed to)")
            elif isinstance(stmt, ast.CancelStmt):
                self._cancel(stmt, ctx)
            elif isinstance(stmt, ast.RunStmt):
                keyword = _keyword(stmt.span, "run")
                result = self.exprs.call(stmt.call, ctx, waits=False, what="`run`", keyword=keyword)
                self._check_binding(stmt.call, ctx, keyword)
                if stmt.then is not None:
                    then = ctx.child()
                    then.env.names["result"] = Local(RefKind.RESULT, "result", stmt, None, result)
                    self.agent_stmts(stmt.then, then, fields, signals)
                if stmt.else_ is not None:
                    other = ctx.child()
                    other.env.names["error"] = Local(RefKind.ERROR, "error", stmt, None, T.ERROR_RECORD)
                    self.agent_stmts(stmt.else_, other, fields, signals)
            elif isinstance(stmt, ast.IfStmt):
                self.exprs.expect(stmt.cond, ctx, T.BOOL, "`if` condition")
                self.agent_stmts(stmt.then, ctx, fields, signals)
                if stmt.else_ is not None:
                    self.agent_stmts(stmt.else_, ctx, fields, signals)

    def _cancel(self, stmt: ast.CancelStmt, ctx: Ctx) -> None:
        """``cancel REACTOR``: REACTOR names a reactor (BBF101 otherwise); recorded under the statement."""
        sym = self.resolver.lookup(stmt.reactor, ctx.scope, (SymKind.REACTOR,), "reactor")
        if sym is not None and sym.kind is SymKind.REACTOR:
            self.facts.cancels[stmt] = sym.qualname

    def _set_element(self, stmt: ast.SetStmt, field: Local, ctx: Ctx) -> None:
        """``set FIELD[KEY] = EXPR``: an element of a list field (an index in range) or a key of a map field."""
        assert stmt.key is not None
        ft = field.type or T.ERROR
        what = f"`set {field.name}[...]`"
        if isinstance(ft, (T.ListT, T.MapT)):
            self.exprs.expect(stmt.key, ctx, T.INT if isinstance(ft, T.ListT) else T.STR,
                              "list index" if isinstance(ft, T.ListT) else "map key")
            self.exprs.expect(stmt.value, ctx, ft.item, what)
            return
        self.exprs.expr(stmt.key, ctx)
        self.exprs.expr(stmt.value, ctx)
        if not T.is_lenient(ft):
            self.diags.error(codes.BBF201, f"{what} replaces an element of a list or a map, and `{field.name}` is "
                             f"a {ft}", stmt.field.span, help=f"replace the whole value: `set {field.name} = ...`")

    def _check_binding(self, call: ast.CallExpr, ctx: Ctx, keyword: Span) -> None:
        """BBF206: a reactor bound to one robot interface, run or composed where another one, or none, is
        bound (it would move the robot of the agent or reactor running it, through another robot's task)."""
        target = self.facts.calls.get(call)
        owner = ctx.owner
        if target is None or target.kind is not CallKind.REACTOR or owner is None:
            return
        if owner.robot is not None and ctx.robot is None:
            return  # the owner's own `on` did not resolve (reported there)
        resolved, needs = self.resolver.bound_robot(target.decl, target.qualname.rsplit(".", 1)[0])
        have = ctx.robot.qualname if ctx.robot is not None else None
        if not resolved or needs is None or needs == have:
            return
        name, short = target.decl.name.name, needs.rsplit(".", 1)[-1]
        agent = isinstance(owner, ast.AgentDecl)
        who = f"{'agent' if agent else 'reactor'} `{owner.name.name}`"
        if ctx.robot is None:
            self.diags.error(
                codes.BBF206, f"`{name}` moves a `{short}`, and {who} is bound to no robot"
                + (" (a coordinator)" if agent else ""), keyword,
                help=f"a coordinator runs no robot's reactor: emit a task signal that an agent `on {short}` "
                     f"handles with `run {name}(...)`" if agent else f"add `on {short}` to {who}")
            return
        mine = ctx.robot.decl.name.name
        self.diags.error(
            codes.BBF206, f"`{name}` is bound to `{short}`, and {who} is bound to `{mine}`", keyword,
            help=f"this would move the `{mine}` robot through `{name}`'s task: "
                 + (f"send a task signal to an agent `on {short}` that runs it" if agent
                    else f"compose it in a reactor `on {short}`"))

    def _emit(self, stmt: ast.EmitStmt | ast.ScheduleStmt, ctx: Ctx, signals: Mapping[str, T.Type]) -> None:
        """The payload against the signal's declared payload; an undeclared signal is BBF504's business."""
        name = stmt.type.text
        payload = signals.get(name)
        data = stmt.data
        if payload is None or T.is_lenient(payload):
            if data is not None:
                self.exprs.expr(data, ctx)
            return
        # a payload is a record value: one that lacks a field, or has one of the wrong type, is BBF201 (BBF202 is
        # for the argument lists of calls); a field the signal does not declare, BBF203
        if data is None:
            if isinstance(payload, T.RecordT) and any(not isinstance(t, T.OptionalT) for _, t in payload.fields):
                shown = f"with fields {', '.join(payload.names)}" if T.has_error(payload) else str(payload)
                self.diags.error(codes.BBF201, f"`{name}` carries a payload {shown}", stmt.type.span,
                                 help=f"give it: `{name} {{...}}`")
            return
        if isinstance(payload, T.NoneT):
            self.diags.error(codes.BBF201, f"`{name}` carries no payload", data.span, help=f"emit it alone: `{name}`")
            self.exprs.expr(data, ctx)
            return
        if not isinstance(payload, T.RecordT):
            self.exprs.expect(data, ctx, payload, f"payload of `{name}`")
            return
        fields: dict[str, T.Type] = {}
        seen: dict[str, ast.FieldInit] = {}
        unknown: list[ast.FieldInit] = []
        for f in data.fields:
            want = payload.field(f.name.name)
            if f.name.name in seen:
                duplicate(self.diags, "field", f.name, seen[f.name.name])
                self.exprs.expr(f.value, ctx)
                continue
            seen[f.name.name] = f
            if want is None:
                unknown.append(f)
                self.exprs.expr(f.value, ctx)
                continue
            fields[f.name.name] = self.exprs.expect(f.value, ctx, want, f"field `{f.name.name}` of `{name}`")
        self.facts.types[data] = T.RecordT(tuple(fields.items()))
        missing = [n for n, t in payload.fields if n not in seen and not isinstance(t, T.OptionalT)]
        for f in unknown:
            help_ = did_you_mean(f.name.name, payload.names)
            if help_ is None and len(unknown) == 1 and len(missing) == 1:
                # one name wrong, one field missing: the same mistake (`{b: 1}` for `{a: int}`)
                help_, missing = f"did you mean `{missing[0]}`?", []
            self.diags.error(codes.BBF203, f"`{name}` has no field `{f.name.name}`", f.name.span, help=help_,
                             notes=(f"its fields: {', '.join(payload.names) or 'none'}",))
        if missing:
            self.diags.error(codes.BBF201, f"`{name}` needs field{'s' if len(missing) > 1 else ''} "
                             + ", ".join(f"`{n}`" for n in missing), data.span)


def _keyword(span: Span, word: str) -> Span:
    """The span of the keyword a statement starts with (`reactor`, `switch`)."""
    return Span(span.file, span.line, span.column, span.line, span.column + len(word))


def _ends_in_fail(block: ast.Block) -> bool:
    return any(isinstance(s, ast.FailStmt) for s in block.stmts)


def _case(value: Any) -> tuple[bool, Any]:
    """A case value as a key of the values a switch covers: ``true`` is not ``1`` (nor ``false`` ``0``), though
    Python's ``True == 1``; ``1`` and ``1.0`` are the same number."""
    return isinstance(value, bool), value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
