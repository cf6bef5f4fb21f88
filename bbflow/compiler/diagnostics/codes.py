"""The registry of diagnostic codes: every code the compiler may report.

Each code is a constant here (``codes.BBF201``, what the passes report with:
a misspelt code is a name error, never a new code), with a default severity
and a one-line title (used as the SARIF rule's short description), and a long explanation in ``bbflow/explain/BBFnnn.md``
(shipped as package data, shown by ``bbflow explain`` and, through the
``docs/diagnostics`` symlink, in the documentation).
"""

from __future__ import annotations

from importlib import resources

from bbflow.compiler.diagnostics.core import Code, Severity

_E, _W = Severity.ERROR, Severity.WARNING

BBF001 = Code("BBF001", _E, "syntax error: unexpected token or character")
BBF002 = Code("BBF002", _E, "malformed literal: unterminated string, bad escape, bad number or duration")
BBF003 = Code("BBF003", _E, "expression or block nested too deeply")
BBF101 = Code("BBF101", _E, "unknown name")
BBF102 = Code("BBF102", _E, "duplicate definition in one scope")
BBF103 = Code("BBF103", _E, "import: module not found")
BBF104 = Code("BBF104", _E, "import cycle")
BBF105 = Code("BBF105", _E, "two files are one module")
BBF201 = Code("BBF201", _E, "type mismatch")
BBF202 = Code("BBF202", _E, "call arguments: missing, unknown, duplicated or too many")
BBF203 = Code("BBF203", _E, "unknown field of a record or signal payload")
BBF204 = Code("BBF204", _E, "optional value used where a value is required")
BBF205 = Code("BBF205", _E, "switch not exhaustive and no default")
BBF206 = Code("BBF206", _E, "a reactor or command of one robot interface run or composed where another, "
                            "or none, is bound")
BBF207 = Code("BBF207", _E, "wait_signal without timeout")
BBF301 = Code("BBF301", _E, "dependency cycle between steps")
BBF302 = Code("BBF302", _E, "reactor result type and return do not agree")
BBF303 = Code("BBF303", _W, "the value of a readonly or pure step is never used")
BBF304 = Code("BBF304", _E, "two steps using the same limited command category are not ordered")
BBF305 = Code("BBF305", _E, "a reactor composes itself, directly or through other reactors")
BBF401 = Code("BBF401", _E, "effectful step can be followed by a failure and has no undo or irreversible")
BBF402 = Code("BBF402", _W, "undo or irreversible on a step that has no effect")
BBF403 = Code("BBF403", _E, "composed reactor is not fully reversible and its step has no undo or irreversible")
BBF404 = Code("BBF404", _E, "undo uses a value that may not exist when the undo runs")
BBF501 = Code("BBF501", _E, "invalid signal pattern")
BBF502 = Code("BBF502", _E, "route can never fire: an earlier route covers everything it matches")
BBF503 = Code("BBF503", _W, "route pattern matches no declared signal")
BBF504 = Code("BBF504", _E, "emit or schedule of an undeclared signal")
BBF505 = Code("BBF505", _W, "declared signal is neither handled nor emitted anywhere")
BBF601 = Code("BBF601", _E, "a configured driver does not implement its robot interface")
BBF701 = Code("BBF701", _E, "bbflow.toml: unknown key, wrong type, or a name that matches nothing")
BBF900 = Code("BBF900", _E, "internal compiler error")

#: every code by its name
CODES: dict[str, Code] = {c.code: c for c in (
    BBF001, BBF002, BBF003, BBF101, BBF102, BBF103, BBF104, BBF105, BBF201, BBF202,
    BBF203, BBF204, BBF205, BBF206, BBF207, BBF301, BBF302, BBF303, BBF304, BBF305,
    BBF401, BBF402, BBF403, BBF404, BBF501, BBF502, BBF503, BBF504, BBF505, BBF601, BBF701,
    BBF900,
)}


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
