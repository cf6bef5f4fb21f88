"""The registry of diagnostic codes: every code the compiler may report.

Each code has a default severity and a one-line title (used as the SARIF rule's
short description), and a long explanation in ``bbflow/explain/BBFnnn.md``
(shipped as package data, shown by ``bbflow explain`` and, through the
``docs/diagnostics`` symlink, in the documentation).
"""

from __future__ import annotations

from importlib import resources

import attrs

from bbflow.compiler.diagnostics.core import Severity


@attrs.frozen(slots=True)
class Code:
    code: str
    severity: Severity
    title: str


_E, _W = Severity.ERROR, Severity.WARNING

CODES: dict[str, Code] = {
    c.code: c
    for c in (
        Code("BBF001", _E, "syntax error: unexpected token or character"),
        Code("BBF002", _E, "malformed literal: unterminated string, bad escape, bad number or duration"),
        Code("BBF003", _E, "expression nested too deeply"),
        Code("BBF101", _E, "unknown name"),
        Code("BBF102", _E, "duplicate definition in one scope"),
        Code("BBF103", _E, "import: module not found"),
        Code("BBF104", _E, "import cycle"),
        Code("BBF105", _E, "two files are one module"),
        Code("BBF201", _E, "type mismatch"),
        Code("BBF202", _E, "call arguments: missing, unknown, duplicated or too many"),
        Code("BBF203", _E, "unknown field of a record or signal payload"),
        Code("BBF204", _E, "optional value used where a value is required"),
        Code("BBF205", _E, "switch not exhaustive and no default"),
        Code("BBF206", _E, "a reactor or command of one robot interface run or composed where another, or none, "
                           "is bound"),
        Code("BBF207", _E, "wait_signal without timeout"),
        Code("BBF301", _E, "dependency cycle between steps"),
        Code("BBF302", _E, "reactor result type and return do not agree"),
        Code("BBF303", _W, "the value of a readonly or pure step is never used"),
        Code("BBF304", _E, "two steps using the same limited command category are not ordered"),
        Code("BBF401", _E, "effectful step can be followed by a failure and has no undo or irreversible"),
        Code("BBF402", _W, "undo or irreversible on a step that has no effect"),
        Code("BBF403", _E, "composed reactor is not fully reversible and its step has no undo or irreversible"),
        Code("BBF404", _E, "undo uses a value that may not exist when the undo runs"),
        Code("BBF501", _E, "invalid signal pattern"),
        Code("BBF502", _E, "route can never fire: an earlier route covers everything it matches"),
        Code("BBF503", _W, "route pattern matches no declared signal"),
        Code("BBF504", _E, "emit or schedule of an undeclared signal"),
        Code("BBF505", _W, "declared signal is neither handled nor emitted anywhere"),
        Code("BBF601", _E, "a configured driver does not implement its robot interface"),
        Code("BBF701", _E, "bbflow.toml: unknown key, wrong type, or a name that matches nothing"),
        Code("BBF900", _E, "internal compiler error"),
    )
}


def normalize(code: str) -> str | None:
    """``bbf401``, ``BBF401`` and ``401`` all name BBF401; None if no such code."""
    text = code.strip().upper()
    if text.isdigit():
        text = "BBF" + text.zfill(3)
    return text if text in CODES else None


def explain(code: str) -> str:
    """The long explanation (Markdown) of ``code``; KeyError for an unknown code."""
    known = normalize(code)
    if known is None:
        raise KeyError(code)
    return resources.files("bbflow").joinpath("explain", f"{known}.md").read_text(encoding="utf-8")
