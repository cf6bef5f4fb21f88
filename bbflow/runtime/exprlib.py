"""Helpers that generated expression functions call where Python's meaning differs from bbflow's.

Values are JSON-like (see ``bbflow.runtime.types``). Each helper raises an
ordinary Python exception on a bad value (``IndexError``, ``LookupError``,
``ZeroDivisionError``, ``ArithmeticError``, ``TypeError``, ``ValueError``); the
runtime reports it as an ``expression`` failure with a note naming the
``.flow`` line (``bbflow.runtime.linemap``).

The checker proves the types of every operation except where a side is
``any``; there the generated code calls the checked forms below (``arith``,
``order``, ``equal``, ``negate``, ``contains``, ``field``), which give the
language's meaning or fail, never Python's (``"ab" * 3``, ``true + 1``).
"""

from __future__ import annotations

import decimal
import json
import math
import operator
import sys
from collections.abc import Callable
from typing import Any

_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_ORDER: dict[str, Callable[[Any, Any], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                 ">=": operator.ge}


def _kind(value: Any) -> str:
    """What a value is, in the language's words, for a message."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int):
        return "an int"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a str"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a record or map"
    return type(value).__name__


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value: Any) -> Any:
    """A float result of ``+ - * /``: an overflow to infinity, or a NaN, fails the expression (as a division
    by zero does), so no computed value that a robot would refuse ever exists."""
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            raise ArithmeticError("the result is not a number (NaN)")
        raise OverflowError("the result is too large for a float")
    return value


def arith(op: str, left: Any, right: Any) -> Any:
    """``left op right`` where a side is ``any``: numbers (not bools), or ``+`` of two strs or two lists."""
    if _number(left) and _number(right):
        return finite(_ARITH[op](left, right))
    if op == "+" and type(left) is type(right) and isinstance(left, (str, list)):
        return left + right
    raise TypeError(f"`{op}` does not apply to {_kind(left)} and {_kind(right)}")


def order(op: str, left: Any, right: Any) -> bool:
    """``< <= > >=`` where a side is ``any``: two numbers or two strs."""
    if (_number(left) and _number(right)) or (isinstance(left, str) and isinstance(right, str)):
        return _ORDER[op](left, right)
    raise TypeError(f"cannot compare {_kind(left)} with {_kind(right)} (`{op}`)")


def equal(left: Any, right: Any) -> bool:
    """``==`` where a side is or holds an ``any``: a bool equals only a bool (Python's ``true == 1`` holds), in a
    list or a record too (``[true] == [1]`` is false)."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(equal(left[k], right[k]) for k in left)
    return bool(left == right)


def negate(value: Any) -> Any:
    """Unary ``-`` of an ``any``: a number."""
    if not _number(value):
        raise TypeError(f"`-` does not apply to {_kind(value)}")
    return -value


def contains(item: Any, where: Any) -> bool:
    """``item in where`` where a side is ``any``: an item of a list, a key of a map, a part of a str."""
    if isinstance(where, list):
        return any(equal(item, x) for x in where)
    if isinstance(where, dict):
        return isinstance(item, str) and item in where
    if isinstance(where, str) and isinstance(item, str):
        return item in where
    if isinstance(where, str):
        raise TypeError(f"`in` looks for a str in a str, not {_kind(item)}")
    raise TypeError(f"`in` looks in a list, a map's keys or a str, not in {_kind(where)}")


def field(obj: Any, name: str) -> Any:
    """``a.name`` of an ``any``: a record's field."""
    if not isinstance(obj, dict):
        raise TypeError(f"{_kind(obj)} has no fields (reading `.{name}`)")
    if name not in obj:
        raise LookupError(f"no field `{name}` in the record")
    return obj[name]


def index(obj: Any, key: Any) -> Any:
    """``a[i]`` on a list (no negative indexes: ``-1`` is out of range, not the last element) or ``m[k]`` on a map."""
    if isinstance(obj, list):
        if not isinstance(key, int) or isinstance(key, bool):
            raise TypeError(f"a list index is an int, not {_kind(key)}")
        if not 0 <= key < len(obj):
            raise IndexError(f"index {key} is out of range for a list of {len(obj)}")
        return obj[key]
    if isinstance(obj, dict):
        if not isinstance(key, str):
            raise TypeError(f"a map key is a str, not {_kind(key)}")
        if key not in obj:
            raise LookupError(f"no key {key!r} in the map")
        return obj[key]
    raise TypeError(f"cannot index {_kind(obj)}")


def slice_(obj: Any, start: int | None, end: int | None) -> Any:
    """``xs[i:j]`` of a list or str: bounds clamp to ``0..len`` (no negative bounds counting from the end, as
    with indexes), either may be left out; a slice never fails."""
    if not isinstance(obj, (list, str)):
        raise TypeError(f"cannot slice {_kind(obj)}: only lists and strs can be sliced")
    for bound in (start, end):
        if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
            raise TypeError(f"a slice's bounds are ints, not {_kind(bound)}")
    n = len(obj)
    i = 0 if start is None else min(max(start, 0), n)
    j = n if end is None else min(max(end, 0), n)
    return obj[i:j]


def get(obj: Any, key: Any) -> Any:
    """``get(m, k)``: ``m[k]``, or none when the map has no such key (or the list no such index)."""
    if isinstance(obj, list) and isinstance(key, int) and not isinstance(key, bool):
        return obj[key] if 0 <= key < len(obj) else None
    if isinstance(obj, dict) and isinstance(key, str):
        return obj.get(key)
    raise TypeError(f"get() looks up an int in a list or a str in a map, not {_kind(key)} in {_kind(obj)}")


def _map(obj: Any, fn: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise TypeError(f"{fn}() takes a map, not {_kind(obj)}")
    return obj


def keys(obj: dict[str, Any]) -> list[str]:
    """The keys of a map, sorted (the same order on every run)."""
    return sorted(_map(obj, "keys"))


def remove(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """A copy of the map without ``key`` (the map itself if it has no such key)."""
    return {k: v for k, v in _map(obj, "remove").items() if k != key}


def len_(obj: Any) -> int:
    """``len`` of a list, a map or a str."""
    if not isinstance(obj, (list, dict, str)):
        raise TypeError(f"len() takes a list, a map or a str, not {_kind(obj)}")
    return len(obj)


def abs_(x: Any) -> Any:
    """``abs`` of a number or a duration."""
    if not _number(x):
        raise TypeError(f"abs() takes a number, not {_kind(x)}")
    return abs(x)


def _items(fn: str, args: tuple[Any, ...]) -> list[Any]:
    """The values ``min``/``max`` choose from: all numbers or all strs, at least one."""
    items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not items:
        raise ValueError(f"{fn}() of an empty list")
    if not (all(_number(i) for i in items) or all(isinstance(i, str) for i in items)):
        raise TypeError(f"{fn}() compares numbers or strs, not {' and '.join(sorted({_kind(i) for i in items}))}")
    return items


def min_(*args: Any) -> Any:
    """``min(a, b, ...)`` or ``min(list)``; an empty list raises."""
    return min(_items("min", args))


def max_(*args: Any) -> Any:
    """``max(a, b, ...)`` or ``max(list)``; an empty list raises."""
    return max(_items("max", args))


def round_(x: Any, digits: int | None = None) -> int | float:
    """Round half away from zero (``round(2.5)`` is 3), as engineers expect; Python rounds half to even.

    ``round(x)`` is an int; ``round(x, digits)`` a float with that many decimals, a half of the last one
    judged on the number as it is written (``round(1.005, 2)`` is 1.01: the float nearest 1.005 is a
    little less, but nobody wrote that).
    """
    if not _number(x) or (digits is not None and (not isinstance(digits, int) or isinstance(digits, bool))):
        raise TypeError(f"round() takes a number (and an int of digits), not {_kind(x)}")
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError(f"cannot round {x}")
    if digits is None:
        if isinstance(x, int):
            return x
        whole = math.floor(abs(x))  # exact, unlike `abs(x) + 0.5`, which itself rounds
        return (whole + (abs(x) - whole >= 0.5)) * (1 if x >= 0 else -1)
    exact = decimal.Decimal(repr(float(x)) if isinstance(x, float) else x)
    if int(exact.as_tuple().exponent) >= -digits:  # no more decimals than asked for (finite: an int exponent)
        return float(x)
    if digits < -400:  # a unit far above the largest float: every float rounds to zero
        return math.copysign(0.0, x)
    unit = decimal.Decimal(1).scaleb(-digits)
    with decimal.localcontext() as ctx:
        ctx.prec = max(28, exact.adjusted() + digits + 2)
        return finite(float(exact.quantize(unit, rounding=decimal.ROUND_HALF_UP)))


def str_(value: Any) -> str:
    """A value as bbflow writes it: ``true``, ``none``, ``1.5``, records and lists as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        if isinstance(value, (int, float)):
            return repr(value)
        return json.dumps(value, ensure_ascii=False)
    except ValueError:  # Python refuses to write an int that long (and says to change its settings)
        raise ValueError(f"str() cannot write an int of more than {sys.get_int_max_str_digits()} digits") from None
