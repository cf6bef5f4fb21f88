"""Well-typed ``.flow`` expressions with the value the language gives them, for differential tests.

``expressions(ty)`` is a hypothesis strategy for an expression of type ``ty`` over the inputs in ``INPUTS``,
as ``.flow`` text together with a reference evaluator: the value ``docs/language.md`` says it has, written
here again from the docs in plain Python (not with the runtime's helpers), or ``Failed`` where the docs say
the expression fails when it runs (a division by zero, an index out of range, a missing key, a result too
large for a float, ``max`` of an empty list). The checker must give each expression the type it was built
for, and the runtime must compute the value, of exactly that type (an ``int`` is never a ``float``'s value).
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import strategies as st

ENUM = "enum Grip { open, closed, None, lambda }"
RECORD = "type P = {x: float, n: int, lambda: str}"

#: JSON values for the inputs of type ``any``
JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([0.5, -0.0, 1e308])
                    | st.sampled_from(["", "a", "x"]),
                    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["x", "n", "a"]),
                                                                                inner, max_size=2), max_leaves=4)

#: the inputs every generated reactor takes: name -> (type as written, strategy for its JSON value)
INPUTS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "i": ("int", st.sampled_from([0, 1, 2, -1, 5])),
    "f": ("float", st.sampled_from([0.0, -0.0, 0.5, -2.5, 3.0, 1e308, 1e-308, 0.1])),
    "s": ("str", st.sampled_from(["", "ab", "héllo", "🤖x", "a\"b\\n"])),
    "d": ("duration", st.sampled_from([0.0, 0.25, 2.0, 90.0])),
    "b": ("bool", st.booleans()),
    "xs": ("list[int]", st.lists(st.integers(-3, 3), max_size=3)),
    "fs": ("list[float]", st.lists(st.sampled_from([0.5, -1.0, 2.0, 1e300]), max_size=3)),
    "ss": ("list[str]", st.lists(st.sampled_from(["a", "b", "", "ü"]), max_size=3)),
    "m": ("map[int]", st.dictionaries(st.sampled_from(["a", "b", "None", "lambda"]), st.integers(-2, 2), max_size=3)),
    "oi": ("int?", st.none() | st.integers(-2, 2)),
    "of": ("float?", st.none() | st.sampled_from([0.5, -1.5])),
    "g": ("Grip", st.sampled_from(["open", "closed", "None", "lambda"])),
    "p": ("P", st.fixed_dictionaries({"x": st.sampled_from([0.5, -3.0]), "n": st.integers(-2, 2),
                                      "lambda": st.sampled_from(["", "q"])})),
    # odd but legitimate names: Python's keywords and constants, the generated code's own names, dunders
    "lambda": ("int", st.integers(0, 2)),
    "_x": ("float", st.sampled_from([1.5, -0.25])),
    "_m": ("str", st.sampled_from(["m", ""])),
    "_v1": ("int?", st.none() | st.just(3)),
    "None": ("bool", st.booleans()),
    "__class__": ("list[int]", st.lists(st.integers(0, 1), max_size=2)),
    "a": ("any", JSON),
    "oa": ("any?", JSON),
}

NUMBERS = ("int", "float")
FLOATY = ("float", "duration")


class Failed(Exception):
    """The expression fails when it runs, as the docs say it must."""


@attrs.frozen
class Expr:
    text: str
    type: str
    eval: Callable[[dict[str, Any]], Any]  # the inputs -> the value (or raises Failed)


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise Failed("not finite")
    return x


def _float(x: Any) -> float:
    try:
        return float(x)
    except OverflowError:
        raise Failed("too large for a float") from None


def _arith(op: str, a: Any, b: Any, ty: str) -> Any:
    if op == "/" and type(a) is int and type(b) is int:  # true division, correctly rounded
        if b == 0:
            raise Failed("division by zero")
        try:
            return _finite(a / b)
        except OverflowError:
            raise Failed("too large for a float") from None
    if ty in FLOATY or op == "/":
        a, b = _float(a), _float(b)
        if op == "/" and b == 0:
            raise Failed("division by zero")
        return _finite({"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[op])
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def show(v: Any) -> str:
    """``str(v)``, as the docs write it."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def half_up(x: Any, digits: int | None) -> Any:
    """Round half away from zero: on the float's exact value for ``round(x)``, on the number as written
    (its shortest repr) for ``round(x, digits)``."""
    with decimal.localcontext() as ctx:
        ctx.prec = 1000
        if digits is None:
            return int(decimal.Decimal(x).quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))
        exact = decimal.Decimal(repr(float(x)) if isinstance(x, float) else x)
        return _finite(float(exact.quantize(decimal.Decimal(1).scaleb(-digits), rounding=decimal.ROUND_HALF_UP)))


def _index(xs: Any, i: Any) -> Any:
    if isinstance(xs, dict):
        if i not in xs:
            raise Failed("no such key")
        return xs[i]
    if not 0 <= i < len(xs):
        raise Failed("out of range")
    return xs[i]


def _slice(xs: Any, i: int | None, j: int | None) -> Any:
    n = len(xs)
    lo = 0 if i is None else min(max(i, 0), n)
    hi = n if j is None else min(max(j, 0), n)
    return xs[lo:hi] if lo < hi else xs[0:0]


def _extreme(fn: Callable[..., Any], items: list[Any], ty: str) -> Any:
    if not items:
        raise Failed("empty list")
    got = fn(items)
    return float(got) if ty in FLOATY else got


def lit(text: str, ty: str, value: Any) -> Expr:
    return Expr(text, ty, lambda env: value)


def op(fmt: str, ty: str, fn: Callable[..., Any], *parts: Expr) -> Expr:
    """``fmt`` filled with the parts' texts (each in parentheses), computing ``fn`` of their values."""
    text = fmt.format(*(f"({p.text})" for p in parts))
    return Expr(text, ty, lambda env: fn(*(p.eval(env) for p in parts)))


def name(n: str) -> Expr:
    ty = INPUTS[n][0]
    return Expr(n, ty, lambda env: env[n])


_LITERALS: dict[str, list[tuple[str, Any]]] = {
    "int": [("0", 0), ("1", 1), ("7", 7), ("1_000", 1000), ("9223372036854775807", 9223372036854775807)],
    "float": [("0.5", 0.5), ("2.5", 2.5), ("1e-3", 0.001), ("1.005", 1.005), ("1e308", 1e308),
              ("0.49999999999999994", 0.49999999999999994), ("3.0", 3.0)],
    "str": [('""', ""), ('"a b"', "a b"), ('"\\u{1F916}"', "\U0001F916"), ('"q\\"\\n"', 'q"\n'), ('"é"', "é")],
    "duration": [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("0s", 0.0), ("1h", 3600.0)],
    "bool": [("true", True), ("false", False)],
    "Grip": [("Grip.open", "open"), ("Grip.None", "None"), ("Grip.lambda", "lambda")],
}


def _inputs_of(ty: str) -> list[str]:
    return [n for n, (t, _) in INPUTS.items() if t == ty]


@st.composite
def expressions(draw: st.DrawFn, ty: str, depth: int = 3) -> Expr:
    """An expression of type ``ty``, at most ``depth`` operators deep."""
    leaves = [lit(t, ty, v) for t, v in _LITERALS.get(ty, [])] + [name(n) for n in _inputs_of(ty)]
    if depth <= 0 or not _PRODUCTIONS[ty] or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(leaves))
    sub = depth - 1
    e = lambda t: expressions(t, sub)  # noqa: E731
    choice = draw(st.sampled_from(_PRODUCTIONS[ty]))
    return choice(draw, e)


def _arith_p(ty: str, left: str, right: str, ops: str = "+-*") -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        o = draw(st.sampled_from(ops))
        return op("{} " + o + " {}", ty, lambda a, b: _arith(o, a, b, ty), draw(e(left)), draw(e(right)))
    return make


def _compare_p(t: str, ops: str = "== != < <= > >=") -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        o = draw(st.sampled_from(ops.split()))
        fn = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
              "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[o]
        other = draw(st.sampled_from(NUMBERS)) if t in NUMBERS else t
        return op("{} " + o + " {}", "bool", fn, draw(e(t)), draw(e(other)))
    return make


def _neg(ty: str) -> Any:
    return lambda draw, e: op("-{}", ty, lambda a: -a, draw(e(ty)))


def _abs(ty: str) -> Any:
    return lambda draw, e: op("abs({})", ty, abs, draw(e(ty)))


def _minmax(ty: str, a: str, b: str) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        fn = draw(st.sampled_from(["min", "max"]))
        return op(fn + "({}, {})", ty, lambda x, y: _extreme(min if fn == "min" else max, [x, y], ty),
                  draw(e(a)), draw(e(b)))
    return make


def _of_list(ty: str, lt: str) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        how = draw(st.sampled_from(["index", "get", "min", "max"] if ty in NUMBERS else ["index", "get"]))
        xs = draw(e(lt))
        if how == "index":
            return op("{}[{}]", ty, _index, xs, draw(e("int")))
        if how == "get":
            i, default = draw(e("int")), draw(e(ty))
            return Expr(f"get(({xs.text}), ({i.text})) ?? ({default.text})", ty,
                        lambda env: _get(xs.eval(env), i.eval(env), default, env, ty))
        fn = min if how == "min" else max
        return op(how + "({})", ty, lambda v: _extreme(fn, v, ty), xs)
    return make


def _get(xs: Any, k: Any, default: Expr, env: dict[str, Any], ty: str) -> Any:
    got = xs.get(k) if isinstance(xs, dict) else (xs[k] if 0 <= k < len(xs) else None)
    if got is None:  # `??` stops early: the fallback is evaluated only when needed
        got = default.eval(env)
    return float(got) if ty in FLOATY else got


def _fallback(ty: str, opt: str, right: str) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        a, b = draw(e(opt)), draw(e(right))

        def value(env: dict[str, Any]) -> Any:  # `b` is evaluated only when `a` is none
            got = a.eval(env)
            got = b.eval(env) if got is None else got
            return float(got) if ty in FLOATY else got
        return Expr(f"({a.text}) ?? ({b.text})", ty, value)
    return make


def _list_lit(ty: str, items: tuple[str, ...]) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        wide = ty == "list[float]"
        # a float first: a literal of ints only is a list[int] (which fits where a list[float] is expected)
        parts = [draw(e(items[-1] if wide and not k else draw(st.sampled_from(items))))
                 for k in range(draw(st.integers(1, 3)))]
        text = "[" + ", ".join(p.text for p in parts) + "]"
        return Expr(text, ty, lambda env: [float(v) if wide else v for v in (p.eval(env) for p in parts)])
    return make


def _slice_p(ty: str) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        xs = draw(e(ty))
        lo = draw(st.none() | e("int"))
        hi = draw(st.none() | e("int"))
        text = f"({xs.text})[{'' if lo is None else lo.text}:{'' if hi is None else hi.text}]"
        return Expr(text, ty, lambda env: _slice(xs.eval(env), None if lo is None else lo.eval(env),
                                                  None if hi is None else hi.eval(env)))
    return make


def _join(ty: str, right: str) -> Any:
    def make(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
        wide = ty == "list[float]"
        return op("{} + {}", ty, lambda a, b: a + [float(v) if wide else v for v in b], draw(e(ty)), draw(e(right)))
    return make


def _str_of(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    ty = draw(st.sampled_from(sorted(_PRODUCTIONS)))
    return op("str({})", "str", show, draw(e(ty)))


def _round(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    return op("round({})", "int", lambda x: half_up(x, None), draw(e("float")))


def _round_digits(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    digits = draw(st.integers(-3, 4))
    return op(f"round({{}}, {digits})", "float", lambda x: half_up(x, digits), draw(e(draw(st.sampled_from(NUMBERS)))))


def _len(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    return op("len({})", "int", len, draw(e(draw(st.sampled_from(["str", "list[int]", "list[str]", "map[int]"])))))


def _logic(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    o = draw(st.sampled_from(["and", "or", "not"]))
    a = draw(e("bool"))
    if o == "not":
        return op("not {}", "bool", lambda x: not x, a)
    b = draw(e("bool"))
    if o == "and":  # stops early: `b` is not evaluated when `a` is false
        return Expr(f"({a.text}) and ({b.text})", "bool", lambda env: a.eval(env) and b.eval(env))
    return Expr(f"({a.text}) or ({b.text})", "bool", lambda env: a.eval(env) or b.eval(env))


def _member(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    item, where = draw(st.sampled_from([("int", "list[int]"), ("str", "str"), ("str", "map[int]"),
                                        ("str", "list[str]"), ("float", "list[float]")]))
    o = draw(st.sampled_from(["in", "not in"]))
    return op("{} " + o + " {}", "bool", lambda a, b: (a in b) == (o == "in"), draw(e(item)), draw(e(where)))


def _field(ty: str, f: str) -> Any:
    return lambda draw, e: op("{}." + f, ty, lambda r: r[f], draw(e("P")))


def _keys(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    return op("keys({})", "list[str]", sorted, draw(e("map[int]")))


def _remove(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    return op("remove({}, {})", "map[int]", lambda m, k: {a: v for a, v in m.items() if a != k},
              draw(e("map[int]")), draw(e("str")))


def _record(draw: st.DrawFn, e: Callable[[str], st.SearchStrategy[Expr]]) -> Expr:
    x, n, lam = draw(e("float")), draw(e("int")), draw(e("str"))
    return Expr(f"{{x: {x.text}, n: {n.text}, lambda: {lam.text}}}", "P",
                lambda env: {"x": float(x.eval(env)), "n": n.eval(env), "lambda": lam.eval(env)})


_PRODUCTIONS: dict[str, list[Any]] = {
    "int": [_arith_p("int", "int", "int"), _neg("int"), _abs("int"), _minmax("int", "int", "int"), _round, _len,
            _of_list("int", "list[int]"), _fallback("int", "int?", "int"), _field("int", "n"),
            lambda draw, e: op("{}[{}]", "int", _index, draw(e("map[int]")), draw(e("str")))],
    "float": [_arith_p("float", "float", "float"), _arith_p("float", "int", "float"),
              _arith_p("float", "float", "int"), _arith_p("float", "int", "int", "/"),
              _arith_p("float", "float", "float", "/"), _arith_p("float", "duration", "duration", "/"),
              _neg("float"), _abs("float"), _minmax("float", "int", "float"), _minmax("float", "float", "int"),
              _round_digits, _of_list("float", "list[float]"), _fallback("float", "float?", "int"),
              _fallback("float", "int?", "float"), _field("float", "x")],
    "duration": [_arith_p("duration", "duration", "duration", "+-"), _arith_p("duration", "duration", "int", "*/"),
                 _arith_p("duration", "duration", "float", "*/"), _neg("duration"), _abs("duration"),
                 _minmax("duration", "duration", "duration")],
    "bool": [_compare_p("int"), _compare_p("float"), _compare_p("str"), _compare_p("duration"),
             _compare_p("bool", "== !="), _compare_p("Grip", "== !="), _compare_p("list[int]", "== !="),
             _logic, _member],
    "str": [lambda draw, e: op("{} + {}", "str", lambda a, b: a + b, draw(e("str")), draw(e("str"))),
            _str_of, _slice_p("str"), _of_list("str", "list[str]"), _field("str", "lambda")],
    "list[int]": [_list_lit("list[int]", ("int",)), _slice_p("list[int]"), _join("list[int]", "list[int]")],
    "list[float]": [_list_lit("list[float]", ("int", "float")), _slice_p("list[float]"),
                    _join("list[float]", "list[float]"), _join("list[float]", "list[int]")],
    "list[str]": [_list_lit("list[str]", ("str",)), _slice_p("list[str]"), _keys],
    "map[int]": [_remove],
    "int?": [lambda draw, e: op("get({}, {})", "int?", lambda m, k: m.get(k), draw(e("map[int]")), draw(e("str")))],
    "float?": [lambda draw, e: op("get({}, {})", "float?", lambda xs, i: xs[i] if 0 <= i < len(xs) else None,
                                  draw(e("list[float]")), draw(e("int")))],
    "Grip": [],  # its members and its input
    "P": [_record],
}


def same(got: Any, want: Any) -> bool:
    """Equal and of the same type all the way down (``1`` is not ``1.0``, ``True`` is not ``1``; ``-0.0`` is
    ``-0.0``)."""
    if type(got) is not type(want):
        return False
    if isinstance(want, float):
        return got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
    if isinstance(want, list):
        return len(got) == len(want) and all(same(a, b) for a, b in zip(got, want, strict=True))
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    return bool(got == want)


# --- any expression at all: the checker decides ----------------------------------------------------------------

#: every kind of operand, for expressions put together without regard to types
ATOMS = ("1", "0", "2.5", "-0.0", '"ab"', '""', "true", "none", "250ms", "[1, 2]", "[]", "[2.5]", '["a"]', "{}",
         "{x: 1.0, n: 2, lambda: \"\"}", "{a: 1}", "Grip.open", "open", "None", *INPUTS, "a", "oa")
_UNARY = ("-{}", "not {}", "len({})", "abs({})", "round({})", "str({})", "keys({})", "min({})", "max({})",
          "{}.x", "{}.n", "{}.lambda", "{}.a")
_BINARY = ("{} + {}", "{} - {}", "{} * {}", "{} / {}", "{} == {}", "{} != {}", "{} < {}", "{} >= {}",
           "{} in {}", "{} not in {}", "{} and {}", "{} or {}", "{} ?? {}", "{}[{}]", "{}[{}:]", "{}[:{}]",
           "min({}, {})", "max({}, {})", "round({}, {})", "get({}, {})", "remove({}, {})")


@st.composite
def any_expressions(draw: st.DrawFn, depth: int = 3) -> str:
    """An expression of operators and operands put together at random (most of them the checker refuses)."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(("a", "oa")) | st.sampled_from(ATOMS))  # an `any` makes most things check
    if draw(st.booleans()):
        return draw(st.sampled_from(_UNARY)).format(f"({draw(any_expressions(depth - 1))})")
    a, b = draw(any_expressions(depth - 1)), draw(any_expressions(depth - 1))
    return draw(st.sampled_from(_BINARY)).format(f"({a})", f"({b})")

