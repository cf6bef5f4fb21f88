"""Syntax error messages in words: what was expected, after what, and what was found.

``accepts`` is the exact set of terminals the parser could take at the error;
large families of them (any expression, any statement) are named as a family
so that a message stays one readable line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lark import Token, Tree
from lark.lexer import PatternStr

_EXPRESSION = frozenset({"NAME", "NUMBER", "STRING", "TRUE", "FALSE", "NONE", "_LSQB", "_LBRACE", "_LPAR",
                         "MINUS", "NOT"})
_OPERATORS = frozenset({"OR", "AND", "EQEQ", "NE", "LT", "LE", "GT", "GE", "QQ", "PLUS", "MINUS", "STAR", "SLASH",
                        "_DOT", "_LSQB", "_LPAR"})
_DECLARATIONS = frozenset({"_FROM", "_IMPORT", "_TYPE", "_ENUM", "_SIGNAL", "_ROBOT", "_ACTION", "_REACTOR",
                           "_AGENT"})
_STATEMENTS = frozenset({"_STEP", "_LET", "_SWITCH", "_MAP", "_RETURN", "_FAIL"})
_STEP_MODIFIERS = frozenset({"_AFTER", "_WHEN", "TIMEOUT", "_RETRY", "_UNDO", "_IRREVERSIBLE", "_FALLBACK",
                             "_WHERE"})
_AGENT_STATEMENTS = frozenset({"_SET", "_EMIT", "_SCHEDULE", "_RUN", "_IF"})
_COMPARISONS = frozenset({"EQEQ", "NE", "LT", "LE", "GT", "GE"})
_ROBOT_ITEMS = frozenset({"_STATES", "_LIMIT", "_COMMAND", "_EVENT"})
_COMMAND_MODIFIERS = frozenset({"_CATEGORY", "TIMEOUT", "_READONLY", "_ALLOWED", "_UNDO"})

# (family, its name in a message, how many of it must be expected to use the name)
_FAMILIES: tuple[tuple[frozenset[str], str, int], ...] = (
    (_DECLARATIONS, "a declaration (`type`, `enum`, `signal`, `robot`, `action`, `reactor`, `agent`, `import`)", 5),
    (_STATEMENTS, "a statement (`step`, `let`, `switch`, `map`, `return`, `fail`)", 3),
    (_AGENT_STATEMENTS, "a statement (`set`, `emit`, `schedule`, `run`, `if`)", 3),
    (_ROBOT_ITEMS, "a robot item (`states`, `limit`, `command`, `event`)", 4),
    (_STEP_MODIFIERS, "a step modifier (`after`, `when`, `timeout`, `retry`, `undo`, ...)", 4),
    (_COMMAND_MODIFIERS, "a command modifier (`category`, `timeout`, `readonly`, `allowed`, `undo`)", 4),
    (_EXPRESSION, "an expression", 6),
    (_OPERATORS, "an operator", 6),
)

_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "SIGNAL_TYPE": "a signal type (like `pick.requested`)",
    "PATTERN": "a signal pattern (like `pick.requested` or `robot.event.*`)",
    "$END": "the end of the file",
}

# What the name after a keyword names, for "after the step name `a`".
_NAMED_BY = {
    "_STEP": "step", "_LET": "value", "_REACTOR": "reactor", "_AGENT": "agent", "_ROBOT": "robot",
    "_COMMAND": "command", "_ACTION": "action", "_TYPE": "type", "_ENUM": "enum", "_EVENT": "event",
    "_SET": "state field", "_SWITCH": "switch", "_MAP": "map",
}

# Words that start a statement or declaration: found where a bracket could close, one is likely open.
_BLOCK_STARTERS = frozenset("""
    type enum signal robot action reactor agent import from states limit command event
    step let switch map return fail set emit schedule run if on state
""".split())

_TREE_WORDS = {
    "call": "the call", "named_type": "the type", "params": "the parameters", "record_expr": "the record",
    "record_type": "the record type", "agent_block": "the block", "block": "the block",
}


def describe_terminal(name: str, terminals: Mapping[str, Any]) -> str:
    term = terminals.get(name)
    if term is not None and isinstance(term.pattern, PatternStr):
        return f"`{term.pattern.value}`"
    return _WORDS.get(name, name.lower().lstrip("_"))


def describe_expected(accepts: set[str], terminals: Mapping[str, Any]) -> str:
    remaining = set(accepts)
    if len(remaining) > 1:
        remaining.discard("$END")  # "the end of the file" is never the helpful suggestion
    parts: list[str] = []
    for family, words, minimum in _FAMILIES:
        present = remaining & family
        if len(present) >= minimum or (present and present == family):
            parts.append(words)
            remaining -= family
    order = list(terminals)
    rest = sorted(remaining, key=lambda n: order.index(n) if n in order else len(order))
    parts.extend(describe_terminal(n, terminals) for n in rest)
    if not parts:
        return "nothing more"
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def describe_found(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    return f"`{tok}`"


def _describe_context(stack: Sequence[Any]) -> str | None:
    if not stack:
        return None
    last = stack[-1]
    if isinstance(last, Token):
        if last.type == "NAME" and len(stack) >= 2 and isinstance(stack[-2], Token) \
                and stack[-2].type in _NAMED_BY:
            return f"the {_NAMED_BY[stack[-2].type]} name `{last}`"
        return f"`{last}`"
    if isinstance(last, Tree) and last.data in _TREE_WORDS:
        return _TREE_WORDS[last.data]
    return None


def _open_return(stack: Sequence[Any]) -> str | None:
    """`return`/`fail` if the statement being parsed is one (so the block should end here)."""
    for value in reversed(stack):
        if isinstance(value, Token) and value.type in ("_RETURN", "_FAIL"):
            return str(value)
        if isinstance(value, Token) and value.type in ("_LBRACE", "_STEP", "_LET", "_SWITCH", "_MAP"):
            return None
        if isinstance(value, Tree) and value.data in ("return_stmt", "fail_stmt"):
            return "return" if value.data == "return_stmt" else "fail"
    return None


def _in_module_path(stack: Sequence[Any]) -> bool:
    """Is the parser in the module path of an import (``from my`` or ``import cell.my``)?"""
    for i in range(len(stack) - 1, -1, -1):
        value = stack[i]
        if not isinstance(value, Token):
            return False
        if value.type in ("_FROM", "_IMPORT"):
            return value.type == "_FROM" or not (i and isinstance(stack[i - 1], Tree)
                                                 and stack[i - 1].data == "dotted_name")
        if value.type not in ("NAME", "_DOT"):
            return False
    return False


def describe_error(tok: Token, accepts: set[str], stack: Sequence[Any],
                   terminals: Mapping[str, Any]) -> tuple[str, str | None]:
    """The message and help of a syntax error at ``tok``."""
    found = describe_found(tok)
    value = str(tok)
    ended_by = _open_return(stack)
    if ended_by is not None and value in {"step", "let", "switch", "map", "return", "fail"}:
        return (f"`{ended_by}` must be the last statement of its block, found `{value}` after it",
                f"move the `{ended_by}` to the end of the block")
    expected = describe_expected(accepts, terminals)
    context = _describe_context(stack)
    message = f"expected {expected}" + (f" after {context}" if context else "") + f", found {found}"
    help_: str | None = None
    closers = [(c, o) for c, o in (("_RPAR", "("), ("_RSQB", "["), ("_RBRACE", "{")) if c in accepts]
    if value == "concurrency" and "_STEP" in accepts:
        help_ = "the reactor's options (`concurrency`, `timeout`) come before its first statement"
    elif closers and (tok.type == "$END" or value in _BLOCK_STARTERS):
        help_ = f"is a `{closers[0][1]}` left open?"
    elif value == "=" and "EQEQ" in accepts:
        help_ = "compare with `==`"
    elif tok.type == "MINUS" and _in_module_path(stack):
        help_ = ("each part of a module's path is a name (letters, digits and `_`), so a folder or file "
                 "whose name has a `-` cannot be imported: rename it with `_` instead")
    elif tok.type in _COMPARISONS and any(isinstance(v, Tree) and v.data == "_comp_op" for v in stack[-3:]):
        help_ = "comparisons do not chain: write `a < b and b < c`"
    return message, help_
