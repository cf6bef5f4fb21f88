"""Expressions to small Python functions ``def _eN(s): return ...``.

Every ``.flow`` expression becomes Python source over the scope ``s`` (a
mapping from the names in scope to JSON-like values). Names are looked up
through the checker's ``Facts`` (never re-resolved here): values come from
the scope as ``s["name"]``, enum members, robot states and events are their
names as string literals. User text only ever appears as ``repr`` literals,
so no name or string can become code. Operations whose Python meaning
differs from the language's (indexing, ``round``,
``str``, ``min``/``max``) go through ``bbflow.runtime.exprlib``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, overload

import attrs

from bbflow.compiler import ast
from bbflow.compiler.codegen.src import literal
from bbflow.compiler.codegen.types import TypeTable, to_rtype, widens
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import CallKind, CallTarget, Facts, RefKind
from bbflow.runtime import types as rt


class CodegenError(Exception):
    """The checked program is not what codegen expects: a compiler bug (reported as BBF900)."""


#: refs whose value is a constant (the member/state/event name), not a scope lookup
_CONSTANT_REFS = (RefKind.ENUM_MEMBER, RefKind.ROBOT_STATE, RefKind.EVENT)
_BUILTINS = {"len": "_x.len_", "abs": "_x.abs_", "min": "_x.min_", "max": "_x.max_", "round": "_x.round_", "str": "_x.str_",
             "get": "_x.get", "keys": "_x.keys", "remove": "_x.remove"}
_ARITH = {"+", "-", "*", "/"}  # `/` is true division: the checker types int / int as float
_COMPARE = {"==", "!=", "<", "<=", ">", ">=", "in", "not in"}  # `in`: an item, a map's key, a part of a str
_ORDERING = {"<", "<=", ">", ">="}
_FLOATS = (T.FLOAT, T.DURATION)  # arithmetic of these types is checked to be finite


def _holds_any(t: T.Type | None) -> bool:
    if t == T.ANY:
        return True
    if isinstance(t, (T.ListT, T.MapT)):
        return _holds_any(t.item)
    if isinstance(t, T.OptionalT):
        return _holds_any(t.inner)
    if isinstance(t, T.RecordT):
        return any(_holds_any(f) for _, f in t.fields)
    return False


@attrs.define
class ExprFunctions:
    """The expression functions of one module: ``(name, body, flow line)`` in order of creation."""

    items: list[tuple[str, str, int]] = attrs.Factory(list)

    def add(self, body: str, line: int) -> str:
        name = f"_e{len(self.items) + 1}"
        self.items.append((name, body, line))
        return name


@attrs.define
class ExprGen:
    facts: Facts
    types: TypeTable
    fns: ExprFunctions
    _temps: int = 0

    # --- functions ------------------------------------------------------------------

    def fn(self, e: ast.Expr, expected: rt.RType | None = None) -> str:
        """A function computing ``e`` (widened to ``expected``); returns its name."""
        return self.fns.add(self.value(e, expected), e.span.line)

    def args_fn(self, call: ast.CallExpr, target: CallTarget) -> str:
        """A function returning the call's complete keyword arguments (defaults filled in)."""
        params: tuple[ast.Param, ...] = getattr(target.decl, "params", ())
        parts = []
        for p in params:
            arg = target.args.get(p.name.name)
            if arg is None:
                arg = p.default
            if arg is None:
                raise CodegenError(f"{call.span.file}:{call.span.line}: no value for parameter {p.name.name!r}")
            parts.append(f"{literal(p.name.name)}: {self.value(arg, self.declared(p.type), p.name.name)}")
        return self.fns.add("{" + ", ".join(parts) + "}", call.span.line)

    @overload
    def declared(self, t: ast.TypeExpr) -> rt.RType: ...
    @overload
    def declared(self, t: None) -> None: ...
    def declared(self, t: ast.TypeExpr | None) -> rt.RType | None:
        """The runtime descriptor of a type as written in a declaration (None: no type)."""
        if t is None:
            return None
        found = self.facts.type_of(t)
        if found is None:
            raise CodegenError(f"{t.span.file}:{t.span.line}: the checker recorded no type for this type expression")
        return to_rtype(found)

    # --- values -----------------------------------------------------------------------

    def value(self, e: ast.Expr, expected: rt.RType | None, path: str = "") -> str:
        """``e``, with ints turned into floats wherever ``expected`` wants a float (``path``: what it is,
        for the message of an ``any`` that does not fit)."""
        if expected is None or expected == rt.ANY:
            return self.code(e)
        target = expected.inner if isinstance(expected, rt.Optional) else expected
        if isinstance(e, ast.IntLit) and isinstance(target, rt.Prim) and target.name in ("float", "duration"):
            return literal(float(e.value))
        if isinstance(e, ast.RecordExpr) and isinstance(target, rt.Record):
            want = dict(target.fields)
            return self._record(e, want)
        if isinstance(e, ast.ListExpr) and isinstance(target, rt.ListOf):
            return "[" + ", ".join(self.value(i, target.item) for i in e.items) + "]"
        actual = self.facts.type_of(e)
        if actual == T.ANY or widens(actual, expected):  # `any` is checked where it meets a type
            return f"{self.types.ref(expected)}.conform({self.code(e)}{', ' + literal(path) if path else ''})"
        return self.code(e)

    def joined(self, joined: T.Type | None, parts: Iterable[ast.Expr]) -> list[str]:
        """``parts``, each widened to ``joined``, the type the checker joined them in: an ``int`` among
        ``float``s is a ``float`` when it runs, as its type says (``[1, 2.5]``, ``min(1, 2.5)``, ``x ?? 1``
        for a ``float?`` x, a ``switch`` that returns ``1`` in one case and ``2.5`` in another)."""
        want = None if joined is None else to_rtype(joined)
        return [self.value(p, want) for p in parts]

    @staticmethod
    def _optional(t: T.Type | None) -> rt.RType | None:
        """``t`` or ``none``: what the left side of a ``??`` is widened to."""
        want = None if t is None else to_rtype(t)
        return want if want is None or want == rt.ANY or isinstance(want, rt.Optional) else rt.Optional(want)

    def _holds_any(self, *es: ast.Expr) -> bool:
        """Whether one of ``es`` is or holds an ``any`` (``list[any]``, ``{x: any}``): ``==`` and ``in`` on it
        are the language's (``true`` is not ``1``), not Python's."""
        return any(_holds_any(self.facts.type_of(e)) for e in es)

    def _any(self, *es: ast.Expr) -> bool:
        """Whether one of ``es`` has type ``any``: its operation is checked when it runs (``exprlib``)."""
        return any(self.facts.type_of(e) == T.ANY for e in es)

    def code(self, e: ast.Expr) -> str:
        """Python source for ``e`` over the scope ``s``."""
        method = getattr(self, "_" + type(e).__name__, None)
        if method is None:
            raise CodegenError(f"cannot generate code for {type(e).__name__}")
        return method(e)

    def constant(self, e: ast.Expr) -> Any:
        """The value of a constant expression (a case value): a literal or an enum member."""
        if isinstance(e, (ast.IntLit, ast.FloatLit, ast.StrLit, ast.BoolLit)):
            return e.value
        if isinstance(e, ast.NoneLit):
            return None
        if isinstance(e, ast.DurationLit):
            return e.seconds
        if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, (ast.IntLit, ast.FloatLit, ast.DurationLit)):
            return -self.constant(e.operand)
        if isinstance(e, (ast.Name, ast.Attr)):
            ref = self.facts.ref(e)
            if ref is not None and ref.kind in _CONSTANT_REFS:
                return ref.value
        raise CodegenError(f"{e.span.file}:{e.span.line}: not a constant")

    # --- node kinds -----------------------------------------------------------------

    def _IntLit(self, e: ast.IntLit) -> str:
        return literal(e.value)

    def _FloatLit(self, e: ast.FloatLit) -> str:
        return literal(e.value)

    def _StrLit(self, e: ast.StrLit) -> str:
        return literal(e.value)

    def _BoolLit(self, e: ast.BoolLit) -> str:
        return literal(e.value)

    def _NoneLit(self, e: ast.NoneLit) -> str:
        return "None"

    def _DurationLit(self, e: ast.DurationLit) -> str:
        return literal(e.seconds)

    def _ListExpr(self, e: ast.ListExpr) -> str:
        joined = self.facts.type_of(e)
        item = joined.item if isinstance(joined, T.ListT) else None
        return "[" + ", ".join(self.joined(item, e.items)) + "]"

    def _RecordExpr(self, e: ast.RecordExpr) -> str:
        return self._record(e, {})

    def _record(self, e: ast.RecordExpr, want: dict[str, rt.RType]) -> str:
        fields = (f"{literal(f.name.name)}: {self.value(f.value, want.get(f.name.name))}" for f in e.fields)
        return "{" + ", ".join(fields) + "}"

    def _Name(self, e: ast.Name) -> str:
        ref = self.facts.ref(e)
        if ref is None:
            raise CodegenError(f"{e.span.file}:{e.span.line}: unresolved name {e.ident.name!r}")
        if ref.kind in _CONSTANT_REFS:
            return literal(ref.value)
        return f"s[{literal(ref.name)}]"

    def _Attr(self, e: ast.Attr) -> str:
        ref = self.facts.ref(e)
        if ref is not None and ref.kind in _CONSTANT_REFS:
            return literal(ref.value)
        if self._any(e.obj):
            return f"_x.field({self.code(e.obj)}, {literal(e.name.name)})"
        return f"{self.code(e.obj)}[{literal(e.name.name)}]"

    def _Index(self, e: ast.Index) -> str:
        return f"_x.index({self.code(e.obj)}, {self.code(e.index)})"

    def _Slice(self, e: ast.Slice) -> str:
        bounds = (self.code(b) if b is not None else "None" for b in (e.start, e.end))
        return f"_x.slice_({self.code(e.obj)}, {', '.join(bounds)})"

    def _Unary(self, e: ast.Unary) -> str:
        if e.op == "not":
            return f"(not {self.value(e.operand, rt.BOOL)})"
        if self._any(e.operand):
            return f"_x.negate({self.code(e.operand)})"
        return f"(-{self.code(e.operand)})"

    def _Binary(self, e: ast.Binary) -> str:
        op = e.op
        if op in ("and", "or"):
            return f"({self.value(e.left, rt.BOOL)} {op} {self.value(e.right, rt.BOOL)})"
        if op == "??":
            self._temps += 1
            tmp = f"_v{self._temps}"
            joined = self.facts.type_of(e)
            first = self.value(e.left, self._optional(joined))
            (then,) = self.joined(joined, (e.right,))
            return f"({tmp} if ({tmp} := {first}) is not None else {then})"
        left, right = self.code(e.left), self.code(e.right)
        joined = self.facts.type_of(e) if op == "+" else None
        if isinstance(joined, T.ListT):  # lists joined: the items of the right side as the result's (int -> float)
            right = self.value(e.right, to_rtype(joined))
        if op in ("==", "!=") and self._holds_any(e.left, e.right):
            return f"({'' if op == '==' else 'not '}_x.equal({left}, {right}))"
        if op in ("in", "not in") and self._holds_any(e.left, e.right):
            return f"({'' if op == 'in' else 'not '}_x.contains({left}, {right}))"
        if op in _ARITH and self._any(e.left, e.right):
            return f"_x.arith({literal(op)}, {left}, {right})"
        if op in _ORDERING and self._any(e.left, e.right):
            return f"_x.order({literal(op)}, {left}, {right})"
        if op in _ARITH and self.facts.type_of(e) in _FLOATS:
            return f"_x.finite({left} {op} {right})"
        if op in _ARITH or op in _COMPARE:
            return f"({left} {op} {right})"
        raise CodegenError(f"{e.span.file}:{e.span.line}: unknown operator {op!r}")

    def _CallExpr(self, e: ast.CallExpr) -> str:
        target = self.facts.call(e)
        if target is None or target.kind is not CallKind.BUILTIN or target.qualname not in _BUILTINS:
            raise CodegenError(f"{e.span.file}:{e.span.line}: only pure builtins may be called in an expression")
        args = [a.value for a in e.args]
        if target.qualname in ("min", "max") and len(args) > 1:  # min(1, 2.5) is 1.0: its type is float
            return f"{_BUILTINS[target.qualname]}({', '.join(self.joined(self.facts.type_of(e), args))})"
        return f"{_BUILTINS[target.qualname]}({', '.join(self.code(a) for a in args)})"
