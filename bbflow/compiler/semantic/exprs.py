"""Type checking of expressions and calls (docs/language.md: types, reactors, agents).

``ExprChecker.expr(e, ctx, expected)`` returns the type of ``e`` and records it
in ``facts.types``; every value name that resolves gets a ``Ref`` and every call
that resolves a ``CallTarget``. ``expected`` lets a bare enum member stand for
``Enum.member`` and gives empty lists and record literals their shape; checks
against it are made by ``expect``, which reports BBF201 (or BBF204 for an
optional where a value is required). Anything that failed to check has the
error type, which fits everywhere, so no mistake is reported twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.diagnostics.suggest import a_or_an, closest
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.env import Env
from bbflow.compiler.semantic.facts import CallKind, CallTarget, Facts, Ref, RefKind
from bbflow.compiler.semantic.resolve import (
    BUILTIN_COMMANDS,
    Resolver,
    RobotInfo,
    Signature,
    did_you_mean,
    duplicate,
)
from bbflow.compiler.semantic.symbols import ModuleScope, Symbol, SymKind
from bbflow.compiler.source import Span

BUILTIN_FUNCTIONS = ("len", "min", "max", "abs", "round", "str", "get", "keys", "remove")
WAITS = ("wait_state", "wait_event", "wait_signal")
ORDERING = ("<", "<=", ">", ">=")
EQUALITY = ("==", "!=")


@attrs.define
class Ctx:
    """Where an expression is: its module, local names and robot (if any)."""

    scope: ModuleScope
    env: Env
    robot: RobotInfo | None = None
    owner: ast.ReactorDecl | ast.AgentDecl | None = None  # the reactor or agent the expression is in

    def child(self, env: Env | None = None) -> Ctx:
        return Ctx(self.scope, env if env is not None else Env(self.env), self.robot, self.owner)


@attrs.frozen(slots=True)
class Callee:
    """A resolved call target with what is needed to check its arguments."""

    target: CallTarget
    sig: Signature | None  # None for waits (their arguments are names, checked on resolution)
    name: str  # as written, for messages
    result: T.Type  # the value the call gives


def _ident_chain(e: ast.Expr) -> tuple[ast.Ident, ...] | None:
    """``a.b.c`` as identifiers, or None if ``e`` is not a plain dotted name."""
    if isinstance(e, ast.Name):
        return (e.ident,)
    if isinstance(e, ast.Attr):
        head = _ident_chain(e.obj)
        return (*head, e.name) if head is not None else None
    return None


class ExprChecker:
    def __init__(self, resolver: Resolver, facts: Facts, diags: Diagnostics) -> None:
        self.resolver = resolver
        self.facts = facts
        self.diags = diags
        self._callees: dict[ast.CallExpr, Callee | None] = {}
        #: payload type of every declared signal (what a ``wait_signal`` binds); set by the type checker
        self.signals: Mapping[str, T.Type] = {}
        self._unbound: set[ast.ReactorDecl | ast.AgentDecl] = set()  # reactors whose missing `on` was reported

    # --- reporting -----------------------------------------------------------------

    def expect(self, e: ast.Expr, ctx: Ctx, want: T.Type, what: str) -> T.Type:
        """Check ``e`` against ``want``: BBF201, or BBF204 for an optional where a value is required."""
        got = self.expr(e, ctx, want)
        self.fits(got, want, e.span, what)
        return got

    def fits(self, got: T.Type, want: T.Type, span: Any, what: str) -> bool:
        code = T.mismatch_code(got, want)
        if code is None:
            return True
        if code is codes.BBF204:
            self.diags.error(codes.BBF204, f"{what}: expected {want}, found {got}, which may be none", span,
                             help="give a value for none with `??` (`x ?? default`)")
        else:
            notes: tuple[str, ...] = ()
            if isinstance(got, T.RecordT) and isinstance(want, T.RecordT):
                notes = tuple(T.record_problems(got, want))
            elif T.has_error(got) or T.has_error(want):
                return False  # a part of it failed to check, and was reported there
            help_ = ("a duration has a unit: `5s`, `250ms`, `1.5s`, `2m`"
                     if want == T.DURATION and got in (T.INT, T.FLOAT) else None)
            self.diags.error(codes.BBF201, f"{what}: expected {_shown(want)}, found {_shown(got)}", span,
                             notes=notes, help=help_)
        return False

    # --- expressions ---------------------------------------------------------------

    def expr(self, e: ast.Expr, ctx: Ctx, expected: T.Type | None = None) -> T.Type:
        t = self._expr(e, ctx, expected)
        self.facts.types[e] = t
        return t

    def _expr(self, e: ast.Expr, ctx: Ctx, expected: T.Type | None) -> T.Type:
        if isinstance(e, ast.IntLit):
            return T.INT
        if isinstance(e, ast.FloatLit):
            return T.FLOAT
        if isinstance(e, ast.StrLit):
            return T.STR
        if isinstance(e, ast.BoolLit):
            return T.BOOL
        if isinstance(e, ast.NoneLit):
            return T.NONE
        if isinstance(e, ast.DurationLit):
            return T.DURATION
        if isinstance(e, ast.ListExpr):
            return self._list(e, ctx, expected)
        if isinstance(e, ast.RecordExpr):
            return self._record(e, ctx, expected)
        if isinstance(e, ast.Name):
            return self._name(e, ctx, expected)
        if isinstance(e, ast.Attr):
            return self._attr(e, ctx)
        if isinstance(e, ast.Index):
            return self._index(e, ctx)
        if isinstance(e, ast.Slice):
            return self._slice(e, ctx)
        if isinstance(e, ast.Unary):
            return self._unary(e, ctx)
        if isinstance(e, ast.Binary):
            return self._binary(e, ctx, expected)
        if isinstance(e, ast.CallExpr):
            return self._builtin_call(e, ctx)
        return T.ERROR  # pragma: no cover - every expression node is handled above

    def _list(self, e: ast.ListExpr, ctx: Ctx, expected: T.Type | None) -> T.Type:
        want = T.strip_optional(expected) if expected is not None else None
        item_want = want.item if isinstance(want, T.ListT) else None
        if not e.items:
            return T.ListT(item_want if item_want is not None else T.ANY)
        item: T.Type | None = None
        for it in e.items:
            if item_want is not None:
                self.expect(it, ctx, item_want, "list item")
                item = item_want
                continue
            t = self.expr(it, ctx)
            joined = t if item is None else T.join(item, t)
            if joined is None:
                self.diags.error(codes.BBF201, f"list item: expected {item}, found {t}", it.span,
                                 help="the items of a list all have one type")
                joined = item
            item = joined
        return T.ListT(item if item is not None else T.ANY)

    def _record(self, e: ast.RecordExpr, ctx: Ctx, expected: T.Type | None) -> T.Type:
        want = T.strip_optional(expected) if expected is not None else None
        fields: dict[str, T.Type] = {}
        seen: dict[str, ast.FieldInit] = {}
        for f in e.fields:
            if f.name.name in seen:
                duplicate(self.diags, "field", f.name, seen[f.name.name])
                self.expr(f.value, ctx)
                continue
            seen[f.name.name] = f
            if isinstance(want, T.MapT):  # a map written literally: its keys are the field names
                got = self.expr(f.value, ctx, want.item)
                self.fits(got, want.item, f.value.span, f"value `{f.name.name}` of the map")
                continue
            ft = want.field(f.name.name) if isinstance(want, T.RecordT) else None
            if ft is not None:
                got = self.expr(f.value, ctx, ft)
                # a field that does not fit is reported here, at its value, not again for the record
                fields[f.name.name] = got if self.fits(got, ft, f.value.span, f"field `{f.name.name}`") else T.ERROR
            else:
                fields[f.name.name] = self.expr(f.value, ctx)
        if isinstance(want, T.MapT):
            return want
        return T.RecordT(tuple(fields.items()))

    def _name(self, e: ast.Name, ctx: Ctx, expected: T.Type | None) -> T.Type:
        name = e.ident.name
        local = ctx.env.lookup(name)
        if local is not None:
            self.facts.refs[e] = Ref(local.kind, name, local.decl)
            return local.resolve_type()
        enum = T.strip_optional(expected) if expected is not None else None
        if isinstance(enum, T.EnumT) and name in enum.member_set:
            self.facts.refs[e] = Ref(RefKind.ENUM_MEMBER, name, self._enum_decl(enum), name)
            return enum
        sym = ctx.scope.lookup(name)
        if sym is not None:
            if sym.kind is not SymKind.UNKNOWN:
                hint = f"write `{name}.member`" if sym.kind is SymKind.ENUM else None
                self.diags.error(codes.BBF201, f"`{name}` is {a_or_an(sym.kind.value)}, not a value", e.span, help=hint)
            return T.ERROR
        if ctx.robot is not None and (name in ctx.robot.commands or name in BUILTIN_COMMANDS):
            self.diags.error(codes.BBF201, f"`{name}` is a command, not a value", e.span,
                             help=f"call it in a step: `step x = {name}(...)`")
            return T.ERROR
        if isinstance(expected, T.ErrorT):
            return T.ERROR  # maybe a member of an enum that failed to resolve: already reported
        owners = self._enums_with_member(ctx, name)
        if len(owners) == 1:
            # No type is expected here (or a different one, reported by the caller): a bare name
            # that is a member of exactly one enum in scope, and no other name, is that member.
            self.facts.refs[e] = Ref(RefKind.ENUM_MEMBER, name, self._enum_decl(owners[0]), name)
            return owners[0]
        if owners:
            listed = ", ".join(f"`{o.name}`" for o in owners[:-1]) + f" and `{owners[-1].name}`"
            self.diags.error(codes.BBF201, f"`{name}` is ambiguous here: it is a member of {listed}", e.span,
                             help="say which: " + " or ".join(f"`{o.name}.{name}`" for o in owners))
            return T.ERROR
        if not ctx.scope.broken:
            members = list(enum.members) if isinstance(enum, T.EnumT) else self._visible_members(ctx)
            self.diags.error(codes.BBF101, f"unknown name `{name}`", e.ident.span,
                             help=did_you_mean(name, [*ctx.env.visible(), *members]))
        return T.ERROR

    def _enums_with_member(self, ctx: Ctx, name: str) -> list[T.EnumT]:
        """The enums visible by name in the module (imported and prelude ones too) that have ``name``."""
        owners: dict[str, T.EnumT] = {}
        for enum_name in ctx.scope.names(SymKind.ENUM):
            sym = ctx.scope.lookup(enum_name)
            if sym is None or sym.kind is not SymKind.ENUM:
                continue  # the name is taken by something else first
            enum = self.resolver.enum_type(sym)
            if name in enum.member_set:
                owners.setdefault(enum.qualname, enum)
        return list(owners.values())

    def _visible_members(self, ctx: Ctx) -> list[str]:
        """Every member of the enums visible by name (what a bare member could be), for "did you mean"."""
        out: dict[str, None] = {}
        for enum_name in ctx.scope.names(SymKind.ENUM):
            sym = ctx.scope.lookup(enum_name)
            if sym is not None and sym.kind is SymKind.ENUM:
                out.update(dict.fromkeys(self.resolver.enum_type(sym).members))
        return list(out)

    def _enum_decl(self, enum: T.EnumT) -> Any:
        return self.facts.decls.get(enum.qualname)

    def _static(self, e: ast.Expr, ctx: Ctx) -> Symbol | None:
        """The module-level ENUM, MODULE or UNKNOWN symbol a name (not shadowed by a local) denotes."""
        if isinstance(e, ast.Name):
            if ctx.env.lookup(e.ident.name) is not None:
                return None
            sym = ctx.scope.lookup(e.ident.name)
            return sym if sym is not None and sym.kind in (SymKind.ENUM, SymKind.MODULE, SymKind.UNKNOWN) else None
        if isinstance(e, ast.Attr):
            base = self._static(e.obj, ctx)
            if base is None or base.kind is not SymKind.MODULE:
                return None
            parts = _ident_chain(e)
            assert parts is not None  # a static base is a dotted name
            sym = self.resolver.lookup(parts, ctx.scope, (SymKind.ENUM,), "enum")
            return sym if sym is not None else Symbol(SymKind.UNKNOWN, e.name.name, "", None, "")
        return None

    def _attr(self, e: ast.Attr, ctx: Ctx) -> T.Type:
        base = self._static(e.obj, ctx)
        if base is not None:
            if base.kind is SymKind.UNKNOWN:
                return T.ERROR
            if base.kind is SymKind.MODULE:
                self.diags.error(codes.BBF201, f"`{e.name.name}` of module `{base.decl}` is not a value", e.span)
                return T.ERROR
            enum = self.resolver.enum_type(base)
            if e.name.name not in enum.member_set:
                self.diags.error(codes.BBF101, f"enum `{enum.name}` has no member `{e.name.name}`", e.name.span,
                                 help=did_you_mean(e.name.name, enum.members))
                return T.ERROR
            self.facts.refs[e] = Ref(RefKind.ENUM_MEMBER, e.name.name, base.decl, e.name.name)
            return enum
        obj = self.expr(e.obj, ctx)
        return self.field(obj, e.name, e.obj)

    def field(self, obj: T.Type, name: ast.Ident, of: ast.Expr) -> T.Type:
        if T.is_lenient(obj):
            return obj
        if isinstance(obj, T.OptionalT):
            self.diags.error(codes.BBF204, f"cannot read `.{name.name}` of a value that may be none ({obj})",
                             of.span, help="give a value for none first: `(x ?? default).field`")
            return T.ERROR
        if isinstance(obj, T.RecordT):
            ft = obj.field(name.name)
            if ft is None:
                shown = "this record" if T.has_error(obj) and not obj.name else str(obj)  # its fields: the note
                self.diags.error(codes.BBF203, f"{shown} has no field `{name.name}`", name.span,
                                 help=did_you_mean(name.name, obj.names),
                                 notes=(f"its fields: {', '.join(obj.names) or 'none'}",))
                return T.ERROR
            return ft
        self.diags.error(codes.BBF201, f"{obj} has no fields (reading `.{name.name}`)", name.span)
        return T.ERROR

    def _index(self, e: ast.Index, ctx: Ctx) -> T.Type:
        obj = self.expr(e.obj, ctx)
        if isinstance(obj, T.ListT):
            self.expect(e.index, ctx, T.INT, "list index")
            return obj.item
        if isinstance(obj, T.MapT):
            self.expect(e.index, ctx, T.STR, "map key")
            return obj.item
        self.expr(e.index, ctx)
        if T.is_lenient(obj):
            return obj
        return self._not_a_collection(obj, e.obj.span, "cannot index", "only lists and maps have items")

    def _slice(self, e: ast.Slice, ctx: Ctx) -> T.Type:
        """``xs[i:j]`` of a list or a str: the same type (bounds clamp, so a slice never fails)."""
        obj = self.expr(e.obj, ctx)
        for bound in (e.start, e.end):
            if bound is not None:
                self.expect(bound, ctx, T.INT, "slice bound")
        if T.is_lenient(obj) or isinstance(obj, T.ListT) or obj == T.STR:
            return obj
        return self._not_a_collection(obj, e.obj.span, "cannot slice", "only lists and strs can be sliced")

    def _not_a_collection(self, t: T.Type, span: Span, doing: str, only: str) -> T.Type:
        """BBF204 for a value that may be none, else BBF201: ``t`` is no collection ``doing`` applies to."""
        if isinstance(t, T.OptionalT):
            self.diags.error(codes.BBF204, f"{doing} a value that may be none ({t})", span,
                             help="give a value for none first with `??`")
        else:
            self.diags.error(codes.BBF201, f"{doing} {t}: {only}", span)
        return T.ERROR

    def _membership(self, e: ast.Binary, ctx: Ctx) -> T.Type:
        """``x in xs`` (an item of a list), ``k in m`` (a key of a map), ``s in text`` (a part of a str)."""
        where = self.expr(e.right, ctx)
        want = where.item if isinstance(where, T.ListT) else T.STR if isinstance(where, T.MapT) or where == T.STR \
            else None
        what = self.expr(e.left, ctx, want)
        if want is None and not T.is_lenient(where):
            self._not_a_collection(where, e.right.span, f"`{e.op}` cannot look in",
                                   "it looks in a list, a map's keys or a str")
        elif want is not None and not T.is_lenient(what) and not T.comparable(what, want):
            self.diags.error(codes.BBF201, f"`{e.op}` looks for {what} in {where}, whose "
                             f"{'keys are strs' if isinstance(where, T.MapT) else 'items are ' + str(want)}",
                             e.left.span)
        return T.BOOL

    def _unary(self, e: ast.Unary, ctx: Ctx) -> T.Type:
        if e.op == "not":
            self.expect(e.operand, ctx, T.BOOL, "operand of `not`")
            return T.BOOL
        t = self.expr(e.operand, ctx)
        if T.is_lenient(t) or t in (T.INT, T.FLOAT, T.DURATION):
            return t
        self._operand_error(e.op, t, e.operand.span)
        return T.ERROR

    def _operand_error(self, op: str, t: T.Type, span: Any) -> None:
        if isinstance(t, T.OptionalT):
            self.diags.error(codes.BBF204, f"operand of `{op}` may be none ({t})", span,
                             help="give a value for none first with `??`")
        else:
            self.diags.error(codes.BBF201, f"`{op}` does not apply to {t}", span)

    def _is_bare_member(self, e: ast.Expr, ctx: Ctx) -> bool:
        """A name that is neither local nor module-level: maybe an enum member known from the other side."""
        return (isinstance(e, ast.Name) and ctx.env.lookup(e.ident.name) is None
                and ctx.scope.lookup(e.ident.name) is None)

    def _binary(self, e: ast.Binary, ctx: Ctx, expected: T.Type | None) -> T.Type:
        op = e.op
        if op in ("and", "or"):
            self.expect(e.left, ctx, T.BOOL, f"operand of `{op}`")
            self.expect(e.right, ctx, T.BOOL, f"operand of `{op}`")
            return T.BOOL
        if op == "??":
            lt = self.expr(e.left, ctx, expected)
            inner = T.strip_optional(lt)
            rt = self.expr(e.right, ctx, inner if not T.is_lenient(inner) else expected)
            if T.is_lenient(lt):
                return rt if not isinstance(lt, T.ErrorT) else lt
            joined = T.join(inner, rt)
            if joined is None:
                self.diags.error(codes.BBF201, f"the value after `??` must fit {inner}, found {rt}", e.right.span)
                return T.ERROR
            return joined
        if op in ("in", "not in"):
            return self._membership(e, ctx)
        if op in EQUALITY or op in ORDERING:
            if self._is_bare_member(e.left, ctx) and not self._is_bare_member(e.right, ctx):
                rt = self.expr(e.right, ctx)
                lt = self.expr(e.left, ctx, rt)
            else:
                lt = self.expr(e.left, ctx)
                rt = self.expr(e.right, ctx, lt)
            if T.is_lenient(lt) or T.is_lenient(rt):
                return T.BOOL
            if op in ORDERING:
                for t, side in ((lt, e.left), (rt, e.right)):
                    if not T.ordered(t):
                        self._operand_error(op, t, side.span)
                        return T.BOOL
            if not T.comparable(lt, rt):
                self.diags.error(codes.BBF201, f"cannot compare {lt} with {rt}", e.span)
            return T.BOOL
        lt = self.expr(e.left, ctx)
        # `queue + [{...}]`: the items of a list literal are checked as the items of the list it extends
        rt = self.expr(e.right, ctx, lt if op == "+" and isinstance(lt, T.ListT) else None)
        return self._arithmetic(op, lt, rt, e)

    def _arithmetic(self, op: str, lt: T.Type, rt: T.Type, e: ast.Binary) -> T.Type:
        if isinstance(lt, T.ErrorT) or isinstance(rt, T.ErrorT):
            return T.ERROR
        if lt == T.ANY or rt == T.ANY:
            return T.ANY
        for t, side in ((lt, e.left), (rt, e.right)):
            if isinstance(t, T.OptionalT):
                self._operand_error(op, t, side.span)
                return T.ERROR
        if T.is_numeric(lt) and T.is_numeric(rt):
            if op == "/" or T.FLOAT in (lt, rt):
                return T.FLOAT
            return T.INT
        if op == "+" and lt == rt == T.STR:
            return T.STR
        if op == "+" and isinstance(lt, T.ListT) and isinstance(rt, T.ListT):
            if rt.item == T.ANY or lt.item == T.ANY:  # `[]` on either side
                return lt if rt.item == T.ANY else rt
            joined = T.join(lt.item, rt.item)
            if joined is not None:
                return T.ListT(joined)
            self.diags.error(codes.BBF201, f"`+` joins lists of one item type: {lt} and {rt}", e.span)
            return T.ERROR
        if lt == rt == T.DURATION and op in ("+", "-"):
            return T.DURATION
        if lt == rt == T.DURATION and op == "/":
            return T.FLOAT
        if lt == T.DURATION and T.is_numeric(rt) and op in ("*", "/"):
            return T.DURATION
        if T.is_numeric(lt) and rt == T.DURATION and op == "*":
            return T.DURATION
        help_ = ("turn the other side into text with `str(...)`" if op == "+" and T.STR in (lt, rt) else None)
        self.diags.error(codes.BBF201, f"`{op}` does not apply to {lt} and {rt}", e.span, help=help_)
        return T.ERROR

    # --- pure builtins in expressions --------------------------------------------

    def _builtin_call(self, e: ast.CallExpr, ctx: Ctx) -> T.Type:
        name = e.callee.ident.name if isinstance(e.callee, ast.Name) else None
        if name not in BUILTIN_FUNCTIONS or (ctx.scope.lookup(name) is not None if name else False):
            self._not_callable_here(e, ctx)
            return T.ERROR
        self.facts.calls[e] = CallTarget(CallKind.BUILTIN, name)
        named = [a for a in e.args if a.name is not None]
        args = [self.expr(a.value, ctx) for a in e.args]
        if named:
            self.diags.error(codes.BBF202, f"`{name}` takes positional arguments only", named[0].span)
            return T.ERROR
        if any(isinstance(t, T.ErrorT) for t in args):
            return T.ERROR
        return self._builtin_result(name, args, e)

    def _builtin_result(self, name: str, args: list[T.Type], e: ast.CallExpr) -> T.Type:
        def count(lo: int, hi: int | None) -> bool:  # hi None: no upper bound
            if lo <= len(args) and (hi is None or len(args) <= hi):
                return True
            want = f"at least {lo}" if hi is None else str(lo) if lo == hi else f"{lo} to {hi}"
            self.diags.error(codes.BBF202, f"`{name}` takes {want} argument{'s' if (hi or lo) != 1 else ''}, "
                             f"{len(args)} given", e.span)
            return False

        def bad(i: int, what: str) -> T.Type:
            t = args[i]
            if isinstance(t, T.OptionalT):
                self.diags.error(codes.BBF204, f"argument of `{name}` may be none ({t})", e.args[i].value.span,
                                 help="give a value for none first with `??`")
            else:
                self.diags.error(codes.BBF201, f"argument of `{name}`: expected {what}, found {t}",
                                 e.args[i].value.span)
            return T.ERROR

        if name == "str":
            return T.STR if count(1, 1) else T.ERROR
        if name in ("get", "keys", "remove"):
            return self._map_builtin(name, args, e, count, bad)
        if name == "len":
            if not count(1, 1):
                return T.ERROR
            if T.is_lenient(args[0]) or isinstance(args[0], (T.ListT, T.MapT)) or args[0] == T.STR:
                return T.INT
            return bad(0, "a list, a map or a str")
        if name == "abs":
            if not count(1, 1):
                return T.ERROR
            if T.is_lenient(args[0]) or args[0] in (T.INT, T.FLOAT, T.DURATION):
                return args[0]
            return bad(0, "a number or a duration")
        if name == "round":
            if not count(1, 2):
                return T.ERROR
            if not (T.is_lenient(args[0]) or T.is_numeric(args[0])):
                return bad(0, "a number")
            if len(args) == 2:
                return T.FLOAT if T.is_lenient(args[1]) or args[1] == T.INT else bad(1, "int")
            return T.INT
        # min / max: of two or more values, or of one list
        if not count(1, None):
            return T.ERROR
        if len(args) == 1:
            if isinstance(args[0], T.ListT) and (T.ordered(args[0].item)):
                return args[0].item
            if T.is_lenient(args[0]):
                return T.ANY
            return bad(0, "a list of numbers, durations or strs")
        result: T.Type | None = None
        for i, t in enumerate(args):
            if not T.ordered(t):
                return bad(i, "a number, a duration or a str")
            joined = t if result is None else T.join(result, t)
            if joined is None:
                return bad(i, str(result))
            result = joined
        return result if result is not None else T.ERROR

    def _map_builtin(self, name: str, args: list[T.Type], e: ast.CallExpr, count: Any, bad: Any) -> T.Type:
        """``get(m, k)``: ``m[k]`` or none (a list's item too); ``keys(m)``: its sorted keys; ``remove(m, k)``:
        ``m`` without ``k``."""
        if not count(1, 1) if name == "keys" else not count(2, 2):
            return T.ERROR
        coll = args[0]
        if T.is_lenient(coll):
            return T.ListT(T.STR) if name == "keys" else T.ANY
        if name == "get" and isinstance(coll, T.ListT):
            return T.optional(coll.item) if T.is_lenient(args[1]) or args[1] == T.INT else bad(1, "an int index")
        if not isinstance(coll, T.MapT):
            return bad(0, "a map" + (" or a list" if name == "get" else ""))
        if name == "keys":
            return T.ListT(T.STR)
        if not (T.is_lenient(args[1]) or args[1] == T.STR):
            return bad(1, "a str key")
        return T.optional(coll.item) if name == "get" else coll

    def _not_callable_here(self, e: ast.CallExpr, ctx: Ctx) -> None:
        """A call in an expression that is not a pure builtin: say what it is and what to do."""
        chain = _ident_chain(e.callee)
        name = ".".join(p.name for p in chain) if chain else None
        for a in e.args:
            self.expr(a.value, ctx)
        if name is None:
            self.diags.error(codes.BBF201, "only named functions can be called", e.callee.span)
            return
        sym = ctx.scope.lookup(chain[0].name) if chain else None
        known = sym is not None or name in WAITS or (
            ctx.robot is not None and (name in ctx.robot.commands or name in BUILTIN_COMMANDS))
        if sym is not None and sym.kind is SymKind.UNKNOWN:
            return
        if known:
            self.diags.error(codes.BBF201, f"`{name}` cannot be called in an expression: only the pure builtins "
                             f"({', '.join(BUILTIN_FUNCTIONS)}) can", e.callee.span,
                             help=f"make it a step: `step x = {name}(...)`")
        elif not ctx.scope.broken:
            self.diags.error(codes.BBF101, f"unknown function `{name}`", e.callee.span,
                             help=did_you_mean(name, BUILTIN_FUNCTIONS))

    # --- calls of commands, actions, reactors and waits --------------------------

    def callee(self, call: ast.CallExpr, ctx: Ctx, *, waits: bool, what: str,
               keyword: Span | None = None) -> Callee | None:
        """Resolve what ``call`` calls (memoised: resolution errors are reported once).

        ``waits``: whether ``wait_state``/``wait_event`` may be called here (steps only).
        ``keyword``: an agent's `run` keyword, where a command of another robot is reported (BBF206).
        """
        if call not in self._callees:
            callee = self._callees[call] = self._resolve_callee(call, ctx, waits, what, keyword)
            if callee is not None:
                self.facts.calls[call] = callee.target
        return self._callees[call]

    def _resolve_callee(self, call: ast.CallExpr, ctx: Ctx, waits: bool, what: str,
                        keyword: Span | None) -> Callee | None:
        chain = _ident_chain(call.callee)
        if chain is None:
            self.diags.error(codes.BBF201, f"{what} calls a command, an action or a reactor by name", call.callee.span)
            return None
        name = chain[0].name
        robot = ctx.robot
        if len(chain) == 1 and robot is not None and (name in robot.commands or name in BUILTIN_COMMANDS):
            return self._command(robot, name)
        if len(chain) == 1 and name in WAITS and ctx.scope.lookup(name) is None:
            if not waits:
                self.diags.error(codes.BBF201, f"`{name}` can only be the call of a reactor step", chain[0].span)
                return None
            return self._wait(call, ctx, name)
        if len(chain) == 1 and ctx.scope.lookup(name) is None:
            if name in BUILTIN_FUNCTIONS:
                self.diags.error(codes.BBF201, f"`{name}` is a pure builtin, not a command, action or reactor",
                                 chain[0].span, help=f"compute it with `let x = {name}(...)`")
                return None
            if ctx.scope.broken:
                return None
            owners = self._robots_with_command(ctx, name)
            if owners and (keyword is not None or (robot is None and ctx.owner is not None)):
                self._foreign_command(name, owners, ctx, keyword or chain[0].span)
                return None
            notes: tuple[str, ...] = ()
            if owners:
                notes = (f"`{name}` is a command of {', '.join(f'`{o}`' for o in owners)}; commands can be "
                         f"called where the reactor or agent is `on` a robot that has them",)
            candidates = [*ctx.scope.names(SymKind.ACTION, SymKind.REACTOR),
                          *(list(robot.commands) + list(BUILTIN_COMMANDS) if robot else []),
                          *(WAITS if waits else ())]
            self.diags.error(codes.BBF101, f"unknown command, action or reactor `{name}`", chain[0].span,
                             help=did_you_mean(name, candidates), notes=notes)
            return None
        sym = self.resolver.lookup(chain, ctx.scope, (SymKind.ACTION, SymKind.REACTOR),
                                   "action or reactor")
        if sym is None:
            return None
        written = ".".join(p.name for p in chain)
        sig = self.resolver.signature(sym.decl, sym.module)
        if sym.kind is SymKind.ACTION:
            target = CallTarget(CallKind.ACTION, sym.qualname, sym.decl, effectful=not sym.decl.pure)
        else:
            target = CallTarget(CallKind.REACTOR, sym.qualname, sym.decl)
        return Callee(target, sig, written, sig.result)

    def _foreign_command(self, name: str, owners: list[str], ctx: Ctx, at: Span) -> None:
        """A command of another robot: run by an agent (BBF206, at `run`), or called in a reactor bound to
        no robot (one BBF101 per reactor, whatever the number of its commands: the `on` is missing)."""
        robots = " or ".join(f"`{o}`" for o in owners)
        owner = ctx.owner
        who = f"{'agent' if isinstance(owner, ast.AgentDecl) else 'reactor'} `{owner.name.name}`" if owner else "this"
        if isinstance(owner, ast.AgentDecl):
            bound = f"bound to `{ctx.robot.decl.name.name}`" if ctx.robot else "bound to no robot (a coordinator)"
            self.diags.error(codes.BBF206, f"`{name}` is a command of {robots}, and {who} is {bound}", at,
                             help=(f"the run would use this agent's robot, a `{ctx.robot.decl.name.name}`: "
                                   if ctx.robot else "a coordinator commands no robot: ")
                             + f"emit a task signal that an agent `on {owners[0]}` handles with `run {name}(...)`")
            return
        if owner is not None:
            if owner in self._unbound:
                return  # the missing `on` is reported once, at the reactor's first command
            self._unbound.add(owner)
        self.diags.error(codes.BBF101, f"`{name}` is a command of {robots}, and {who} is bound to no robot", at,
                         help=f"add `on {owners[0]}`: `reactor {owner.name.name if owner else 'R'}(...) on {owners[0]}`")

    def _robots_with_command(self, ctx: Ctx, name: str) -> list[str]:
        out = []
        for sym_name in ctx.scope.names(SymKind.ROBOT):
            sym = ctx.scope.lookup(sym_name)
            if sym is not None and sym.kind is SymKind.ROBOT and (
                    name in BUILTIN_COMMANDS or name in self.resolver.robot(sym).commands):
                out.append(sym_name)
        return out

    def _command(self, robot: RobotInfo, name: str) -> Callee:
        qualname = f"{robot.qualname}.{name}"
        if name in BUILTIN_COMMANDS:
            target = CallTarget(CallKind.COMMAND, qualname, None, effectful=True)
            return Callee(target, Signature((), T.NONE), name, T.NONE)
        decl = robot.commands[name]
        sig = self.resolver.signature(decl, robot.module)
        category = decl.category.name if decl.category is not None else None
        target = CallTarget(CallKind.COMMAND, qualname, decl, effectful=not decl.readonly, category=category,
                            limit=robot.limit(category) if category is not None else None,
                            default_undo=decl.undo)
        return Callee(target, sig, name, sig.result)

    def _wait(self, call: ast.CallExpr, ctx: Ctx, name: str) -> Callee | None:
        if name == "wait_signal":
            return self._wait_signal(call)
        robot = ctx.robot
        if robot is None:
            self.diags.error(codes.BBF101, f"`{name}` waits for a robot, and this reactor is not `on` one",
                             call.callee.span, help="declare the robot: `reactor R() on Arm { ... }`")
            return None
        names: list[ast.Ident] = []
        for a in call.args:
            if a.name is not None or not isinstance(a.value, ast.Name):
                what = "state" if name == "wait_state" else "event"
                self.diags.error(codes.BBF202, f"`{name}` takes the names of {what}s of `{robot.decl.name.name}`",
                                 a.span, help=f"write `{name}(NAME)`")
                return None
            names.append(a.value.ident)
        if name == "wait_state":
            if not names:
                self.diags.error(codes.BBF202, "`wait_state` needs at least one state", call.span)
                return None
            states = []
            for arg, ident in zip(call.args, names):
                if ident.name not in robot.states:
                    self.diags.error(codes.BBF101, f"`{robot.decl.name.name}` has no state `{ident.name}`",
                                     ident.span, help=did_you_mean(ident.name, robot.states))
                    return None
                self.facts.refs[arg.value] = Ref(RefKind.ROBOT_STATE, ident.name, robot.decl, ident.name)
                self.facts.types[arg.value] = T.STR
                states.append(ident.name)
            target = CallTarget(CallKind.WAIT_STATE, "wait_state", None, args={"states": tuple(states)})
            return Callee(target, None, name, T.STR)
        if len(names) != 1:
            self.diags.error(codes.BBF202, f"`wait_event` takes one event, {len(names)} given", call.span)
            return None
        ident = names[0]
        event = robot.events.get(ident.name)
        if event is None:
            self.diags.error(codes.BBF101, f"`{robot.decl.name.name}` has no event `{ident.name}`", ident.span,
                             help=did_you_mean(ident.name, robot.events))
            return None
        payload = self.resolver.event_payload(event, robot.module)
        self.facts.refs[call.args[0].value] = Ref(RefKind.EVENT, ident.name, event, ident.name)
        self.facts.types[call.args[0].value] = payload
        target = CallTarget(CallKind.WAIT_EVENT, "wait_event", event, args={"event": ident.name})
        return Callee(target, None, name, payload)

    def _wait_signal(self, call: ast.CallExpr) -> Callee | None:
        """``wait_signal(TYPE)``: any reactor may wait for a declared signal; its value is the envelope."""
        chain = _ident_chain(call.args[0].value) if len(call.args) == 1 and call.args[0].name is None else None
        if chain is None:
            self.diags.error(codes.BBF202, "`wait_signal` takes the type of one declared signal", call.span,
                             help="write `wait_signal(pick.approved) timeout 5m`")
            return None
        signal = ".".join(p.name for p in chain)
        payload = self.signals.get(signal)
        if payload is None:
            self.diags.error(codes.BBF101, f"unknown signal `{signal}`", call.args[0].span,
                             help=did_you_mean(signal, self.signals))
            return None
        self.facts.types[call.args[0].value] = T.STR
        target = CallTarget(CallKind.WAIT_SIGNAL, "wait_signal", self.facts.signals.get(signal),
                            args={"signal": signal})
        return Callee(target, None, "wait_signal", T.envelope(payload))

    def call(self, call: ast.CallExpr, ctx: Ctx, *, waits: bool, what: str, keyword: Span | None = None) -> T.Type:
        """Check a step's, undo's or run's call; its result type (ERROR if it failed to resolve)."""
        callee = self.callee(call, ctx, waits=waits, what=what, keyword=keyword)
        if callee is None:
            wait = isinstance(call.callee, ast.Name) and call.callee.ident.name in WAITS
            if not wait:  # a wait's arguments are state or event names, not values
                for a in call.args:
                    self.expr(a.value, ctx)
            t: T.Type = T.ERROR
        else:
            if callee.sig is not None:
                self.bind(call, callee, ctx)
            t = callee.result
        self.facts.types[call] = t
        return t

    def bind(self, call: ast.CallExpr, callee: Callee, ctx: Ctx) -> None:
        """Match arguments to parameters (positional, then named) and check each against its type."""
        sig = callee.sig
        assert sig is not None
        bound: dict[str, ast.Arg] = {}
        # parameters that a misspelt argument name was probably meant for: not reported missing too
        meant: set[str] = set()
        unknown: list[ast.Arg] = []  # named arguments no parameter has, reported once the missing ones are known
        for i, a in enumerate(call.args):
            if a.name is None:
                if i >= len(sig.params):
                    self.diags.error(codes.BBF202, f"too many arguments to `{callee.name}`: it takes "
                                     f"{len(sig.params)}", a.span)
                    self.expr(a.value, ctx)
                    continue
                param = sig.params[i]
            else:
                found = sig.param(a.name.name)
                if found is None:
                    unknown.append(a)
                    meant.update(closest(a.name.name, [p.name for p in sig.params], limit=1))
                    self.expr(a.value, ctx)
                    continue
                param = found
            if param.name in bound:
                self.diags.error(codes.BBF202, f"argument `{param.name}` of `{callee.name}` is given twice",
                                 a.name.span if a.name is not None else a.span)
                self.expr(a.value, ctx)
                continue
            bound[param.name] = a
            self.expect(a.value, ctx, param.type, f"argument `{param.name}` of `{callee.name}`")
        missing = [p for p in sig.params if p.name not in bound and p.name not in meant and not p.has_default]
        names = [p.name for p in sig.params]
        for a in unknown:
            assert a.name is not None
            help_ = did_you_mean(a.name.name, names)
            if help_ is None and len(unknown) == 1 and len(missing) == 1:
                # one name wrong, one parameter missing: the same mistake (`pick(pose: p)` for `pick(at: Pose)`)
                help_, missing = f"did you mean `{missing[0].name}`?", []
            self.diags.error(codes.BBF202, f"`{callee.name}` has no parameter `{a.name.name}`", a.name.span,
                             help=help_, notes=(f"its parameters: {', '.join(names) or 'none'}",))
        if missing:
            listed = ", ".join(f"`{p.name}`" if T.has_error(p.type) else f"`{p.name}: {p.type}`" for p in missing)
            self.diags.error(codes.BBF202, f"missing argument{'s' if len(missing) > 1 else ''} {listed} "
                             f"to `{callee.name}`", call.span)
        callee.target.args.update({n: a.value for n, a in bound.items()})


def _shown(t: T.Type) -> str:
    """A type in a message; a record with a part that failed to check (reported there) by its field names."""
    if isinstance(t, T.RecordT) and not t.name and T.has_error(t):
        return f"a record with fields {', '.join(f'`{n}`' for n in t.names)}"
    return str(t)
