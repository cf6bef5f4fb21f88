"""``textDocument/formatting``: ``bbflow fmt``'s canonical layout as one edit of the whole document."""

from __future__ import annotations

from bbflow.compiler import FormatError, format_text
from bbflow.lsp.locate import Pos, Range

__all__ = ["format_document"]


def format_document(text: str, file: str) -> tuple[Range, str] | None:
    """The edit that formats ``text`` (replace everything), or None when it is formatted already or
    cannot be formatted (syntax errors: the diagnostics say why; nothing is changed)."""
    try:
        out = format_text(text, file)
    except FormatError:
        return None
    if out == text:
        return None
    lines = text.split("\n")
    return Range(Pos(0, 0), Pos(len(lines) - 1, len(lines[-1]))), out
