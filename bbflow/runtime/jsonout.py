"""Writing JSON that every reader accepts: standard JSON only, whatever the values.

Python's ``json.dumps`` writes ``NaN`` and ``Infinity`` (not JSON) unless told
not to, and fails on an integer of more than 4,300 digits. ``dumps`` never
does either: it tries the plain encoder first (fast) and, only when that
fails, writes a converted copy in which

- a non-finite float becomes the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``,
- an integer too long for decimal conversion becomes its exact hexadecimal
  spelling as a string (``"0x1f..."``; linear to produce, exact to read back),
- anything else that is not JSON data becomes its ``repr`` (when ``default`` allows).

And its text is always valid UTF-8: a string may hold half of a UTF-16
surrogate pair (``"\\ud800"`` read from JSON, bytes decoded with
``surrogateescape``), which no UTF-8 writer can write, so such a code point is
written as its ``\\u`` escape (``encodable``): the same string to a JSON reader.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Any

__all__ = ["SURROGATE", "dumps", "encodable", "path_text", "standard"]

#: A UTF-16 surrogate code point: in a Python string, always half of a pair (a whole pair reads as one character).
SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps(value, **options)`` that always gives standard JSON in valid UTF-8 (see the module docstring)."""
    options["allow_nan"] = False
    try:
        text = json.dumps(value, **options)
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(standard(value), **options)
    return encodable(text)


def encodable(text: str) -> str:
    """JSON ``text`` with each surrogate code point written as its ``\\u`` escape, so that it can be written as
    UTF-8 (outside strings JSON text is ASCII, so each is in a string, and reads back the same); ``text`` itself
    when it has none (a look at whether it is ASCII, for most)."""
    if text.isascii() or SURROGATE.search(text) is None:
        return text
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def path_text(path: str | os.PathLike[str]) -> str:
    """A path as JSON carries it: the bytes the system holds it as (``os.fsencode``), read as UTF-8, as file
    names are written. Python's own reading follows the locale: under ``LC_ALL=C`` without UTF-8 mode it holds
    ``projé`` as ``proj\\udcc3\\udca9``, which JSON would carry as it is. A byte that is not UTF-8 stays a
    surrogate escape (``encodable`` writes it as its ``\\u`` escape): the name has no other spelling."""
    return os.fsencode(path).decode("utf-8", "surrogateescape")


def standard(value: Any) -> Any:
    """A copy of ``value`` made of standard JSON data only (iterative: any depth)."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]
    while stack:
        item, parent, key = stack.pop()
        if isinstance(item, dict):
            out: Any = {}
            stack.extend((v, out, str(k)) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            out = [None] * len(item)
            stack.extend((v, out, i) for i, v in enumerate(item))
        else:
            out = _scalar(item)
        parent[key] = out
    return root[0]


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, int):
        limit = sys.get_int_max_str_digits()
        # bit_length * log10(2) bounds the digit count without converting
        if limit and value.bit_length() * 0.30103 >= limit - 1:
            return hex(value)
        return value
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return standard(to_json())
    return repr(value)
