"""Python source as a small tree, and its formatter, for the code generator.

Generated modules build the executable model with nested constructor calls.
Writing them as strings would make formatting and line tracking fragile, so
the generator builds a tree of ``Call``/``Seq``/``Raw`` nodes and ``render``
lays it out: on one line when it fits, else one argument per line (the way
black does), with a ``# file.flow:LINE`` comment on every line that starts a
node coming from the source. Each rendered line carries the ``.flow`` line it
comes from, which becomes the module's line map.

Only the generator puts text in ``Raw`` nodes: identifiers it made safe and
literals it rendered with ``repr``; user text never reaches this module
unquoted.
"""

from __future__ import annotations

import keyword
import re

import attrs

#: the widest line the formatter aims for
WIDTH = 100
INDENT = "    "

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@attrs.frozen(slots=True)
class Raw:
    """Source text the generator made itself (an expression, a name, a literal)."""

    text: str


@attrs.frozen(slots=True)
class Call:
    """``func(arg, ..., name=value, ...)``; ``line`` is the ``.flow`` line it comes from (0: none)."""

    func: str
    args: tuple[Src, ...] = ()
    kwargs: tuple[tuple[str, Src], ...] = ()
    line: int = 0


@attrs.frozen(slots=True)
class Seq:
    """A tuple ``(a, b,)``, a list or a dict (``items`` of ``Pair``s) literal."""

    items: tuple[Src, ...]
    kind: str = "tuple"  # "tuple" | "list" | "dict"


@attrs.frozen(slots=True)
class Pair:
    key: Src
    value: Src


Src = Raw | Call | Seq | Pair

#: one output line and the ``.flow`` line it comes from (0: none)
Line = tuple[str, int]


def has_lines(node: Src) -> bool:
    """Does ``node`` or anything in it come from a ``.flow`` line (so that it deserves a line of its own)?"""
    if isinstance(node, Call):
        return node.line > 0 or any(has_lines(a) for a in node.args) or any(has_lines(v) for _, v in node.kwargs)
    if isinstance(node, Seq):
        return any(has_lines(i) for i in node.items)
    if isinstance(node, Pair):
        return has_lines(node.key) or has_lines(node.value)
    return False


def flat(node: Src) -> str:
    """``node`` on one line."""
    if isinstance(node, Raw):
        return node.text
    if isinstance(node, Pair):
        return f"{flat(node.key)}: {flat(node.value)}"
    if isinstance(node, Call):
        parts = [flat(a) for a in node.args] + [f"{k}={flat(v)}" for k, v in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    inner = ", ".join(flat(i) for i in node.items)
    if node.kind == "tuple":
        return f"({inner},)" if len(node.items) == 1 else f"({inner})"
    if node.kind == "list":
        return f"[{inner}]"
    return "{" + inner + "}"


def render(node: Src, *, file: str, indent: int = 0, prefix: str = "", suffix: str = "") -> list[Line]:
    """Lay ``node`` out from column ``indent``; ``prefix``/``suffix`` go around it (``x = ``, ``,``)."""
    pad = INDENT * indent
    line = node.line if isinstance(node, Call) else 0
    note = f"  # {comment(file)}:{line}" if line else ""
    one = f"{pad}{prefix}{flat(node)}{suffix}"
    nested = any(has_lines(c) for c in _children(node))
    if not nested and len(one) + len(note) <= WIDTH:
        return [(one + note, line)]
    if isinstance(node, Raw):
        return [(one + note, line)]
    if isinstance(node, Pair):
        return render(node.value, file=file, indent=indent, prefix=f"{prefix}{flat(node.key)}: ", suffix=suffix)
    if isinstance(node, Call):
        opening, closing = f"{node.func}(", ")"
    else:
        opening, closing = {"tuple": ("(", ")"), "list": ("[", "]"), "dict": ("{", "}")}[node.kind]
    out: list[Line] = [(f"{pad}{prefix}{opening}{note}", line)]
    if isinstance(node, Call):
        for a in node.args:
            out += render(a, file=file, indent=indent + 1, suffix=",")
        for k, v in node.kwargs:
            out += render(v, file=file, indent=indent + 1, prefix=f"{k}=", suffix=",")
    else:
        for i in node.items:
            out += render(i, file=file, indent=indent + 1, suffix=",")
    out.append((f"{pad}{closing}{suffix}", 0))
    return out


def _children(node: Src) -> tuple[Src, ...]:
    if isinstance(node, Call):
        return node.args + tuple(v for _, v in node.kwargs)
    if isinstance(node, Seq):
        return node.items
    if isinstance(node, Pair):
        return (node.key, node.value)
    return ()


def literal(value: object) -> str:
    """A Python literal for a JSON-like constant (str, int, float, bool, None)."""
    if isinstance(value, float) and value != value:  # nan
        return 'float("nan")'
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return 'float("inf")' if value > 0 else 'float("-inf")'
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"not a literal: {value!r}")  # pragma: no cover - the generator only passes literals


def ident(prefix: str, name: str) -> str:
    """A Python identifier for a ``.flow`` name: ``prefix`` + the name, hex-escaped unless it is a plain identifier.

    The prefix keeps every generated name apart from Python's keywords and
    from the generator's own names (which start with ``_``).
    """
    if _IDENT.match(name) and name.isascii():
        out = prefix + name
    else:
        out = prefix + "x" + name.encode("utf-8").hex()
    assert _IDENT.match(out) and not keyword.iskeyword(out)
    return out


def comment(text: str) -> str:
    """Text that is safe inside a ``#`` comment: printable ASCII only, no line breaks."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)
