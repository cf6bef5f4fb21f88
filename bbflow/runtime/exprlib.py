"""Helpers that generated expression functions call where Python's meaning differs from bbflow's.

Values are JSON-like (see ``bbflow.runtime.types``). Each helper raises an
ordinary Python exception on a bad value (``IndexError``, ``KeyError``,
``ZeroDivisionError``, ``ValueError``); the runtime reports it as an
``expression`` failure with a note naming the ``.flow`` line
(``bbflow.runtime.linemap``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def index(obj: Any, key: Any) -> Any:
    """``a[i]`` on a list (no negative indexes: ``-1`` is out of range, not the last element) or ``m[k]`` on a map."""
    if isinstance(obj, list):
        if not 0 <= key < len(obj):
            raise IndexError(f"index {key} is out of range for a list of {len(obj)}")
        return obj[key]
    if isinstance(obj, dict):
        if key not in obj:
            raise KeyError(f"no key {key!r} in the map")
        return obj[key]
    raise TypeError(f"cannot index {type(obj).__name__}")


def slice_(obj: Any, start: int | None, end: int | None) -> Any:
    """``xs[i:j]`` of a list or str: bounds clamp to ``0..len`` (no negative bounds counting from the end, as
    with indexes), either may be left out; a slice never fails."""
    n = len(obj)
    i = 0 if start is None else min(max(start, 0), n)
    j = n if end is None else min(max(end, 0), n)
    return obj[i:j]


def get(obj: Any, key: Any) -> Any:
    """``get(m, k)``: ``m[k]``, or none when the map has no such key (or the list no such index)."""
    if isinstance(obj, list):
        return obj[key] if 0 <= key < len(obj) else None
    if isinstance(obj, dict):
        return obj.get(key)
    raise TypeError(f"cannot look into {type(obj).__name__}")


def keys(obj: dict[str, Any]) -> list[str]:
    """The keys of a map, sorted (the same order on every run)."""
    return sorted(obj)


def remove(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """A copy of the map without ``key`` (the map itself if it has no such key)."""
    return {k: v for k, v in obj.items() if k != key}


def min_(*args: Any) -> Any:
    """``min(a, b, ...)`` or ``min(list)``; an empty list raises."""
    items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not items:
        raise ValueError("min() of an empty list")
    return min(items)


def max_(*args: Any) -> Any:
    """``max(a, b, ...)`` or ``max(list)``; an empty list raises."""
    items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
    if not items:
        raise ValueError("max() of an empty list")
    return max(items)


def round_(x: float, digits: int | None = None) -> int | float:
    """Round half away from zero (``round(2.5)`` is 3), as engineers expect; Python rounds half to even.

    ``round(x)`` is an int; ``round(x, digits)`` a float with that many decimals.
    """
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"cannot round {x}")
    if digits is None:
        return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)
    scale = 10.0 ** digits
    return math.copysign(math.floor(abs(x) * scale + 0.5) / scale, x)


def str_(value: Any) -> str:
    """A value as bbflow writes it: ``true``, ``none``, ``1.5``, records and lists as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
