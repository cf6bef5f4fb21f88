"""Diagnostics as values: passes collect them, renderers show them.

A pass never raises for a user's mistake; it appends a ``Diagnostic`` to the
``Diagnostics`` bag it was given and carries on. Codes are stable (see
``bbflow.compiler.diagnostics.codes`` and docs/diagnostics/).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Iterator

import attrs

from bbflow.compiler.source import Span

#: A word of a message (a run without blanks: a name, a number, a string) longer than this is shown by its ends.
LONGEST_WORD = 80
_LONG_WORD = re.compile(rf"\S{{{LONGEST_WORD + 1},}}")
_KEPT = (LONGEST_WORD - 3) // 2  # characters kept at each end (with "..." between, the result is not long)
_SEPARATORS = frozenset({"/", os.sep})


def shortened(text: str, paths: Iterable[str] = ()) -> str:
    """``text`` with each enormous word cut in its middle (```aaaa...aaaa```, the quotes kept): a name
    or a literal of thousands of characters is reported by its ends, in every format (the span says
    where it is in full). A path is never cut, so that the file a message names can be opened: a word
    with a path separator that is not a string literal, and each of ``paths`` (the diagnostic's own
    files, which may hold blanks). Shortening a shortened text changes nothing."""
    if len(text) <= LONGEST_WORD:
        return text
    kept = sorted((p for p in set(paths) if len(p) > LONGEST_WORD and p in text), key=len, reverse=True)
    if kept:
        parts = re.split(f"({'|'.join(map(re.escape, kept))})", text)
        return "".join(part if i % 2 else shortened(part) for i, part in enumerate(parts))
    return _LONG_WORD.sub(_shortened_word, text)


def _shortened_word(m: re.Match[str]) -> str:
    word = m[0]
    if any(sep in word for sep in _SEPARATORS) and not word.lstrip("`'([").startswith('"'):
        return word  # a path
    return f"{word[:_KEPT]}...{word[-_KEPT:]}"


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@attrs.frozen(slots=True)
class Code:
    """A diagnostic code: its name (``BBF201``), default severity and one-line title. Every code is a
    constant of ``bbflow.compiler.diagnostics.codes`` (``codes.BBF201``), which passes report with."""

    code: str
    severity: Severity
    title: str

    def __str__(self) -> str:
        return self.code


@attrs.frozen(slots=True)
class Label:
    """A secondary span with a short message (``first defined here``)."""

    span: Span
    message: str = attrs.field(converter=shortened)


@attrs.frozen(slots=True)
class Diagnostic:
    """What a pass found and where; every text of it is ``shortened`` (the files it points at kept whole)."""

    code: str  # "BBF201"
    severity: Severity
    message: str
    span: Span
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None

    def __attrs_post_init__(self) -> None:
        files = {self.span.file, *(label.span.file for label in self.labels)}
        object.__setattr__(self, "message", shortened(self.message, files))
        object.__setattr__(self, "notes", tuple(shortened(note, files) for note in self.notes))
        if self.help is not None:
            object.__setattr__(self, "help", shortened(self.help, files))

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


@attrs.define
class Diagnostics:
    """An ordered bag of diagnostics collected by the passes of one compilation."""

    items: list[Diagnostic] = attrs.Factory(list)

    def add(self, diag: Diagnostic) -> Diagnostic:
        self.items.append(diag)
        return diag

    def error(self, code: Code | str, message: str, span: Span, *, labels: tuple[Label, ...] = (),
              notes: tuple[str, ...] = (), help: str | None = None) -> Diagnostic:
        """Report an error; ``code``: a constant of ``codes`` (a name, ``"BBF900"``, is taken as one)."""
        return self.add(Diagnostic(str(code), Severity.ERROR, message, span, labels, notes, help))

    def warning(self, code: Code | str, message: str, span: Span, *, labels: tuple[Label, ...] = (),
                notes: tuple[str, ...] = (), help: str | None = None) -> Diagnostic:
        return self.add(Diagnostic(str(code), Severity.WARNING, message, span, labels, notes, help))

    def extend(self, diags: Diagnostics | list[Diagnostic]) -> None:
        self.items.extend(diags.items if isinstance(diags, Diagnostics) else diags)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.WARNING]

    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def sorted(self) -> list[Diagnostic]:
        """In file, then source order (stable for equal positions)."""
        return sorted(self.items, key=lambda d: (d.span.file, d.span.line, d.span.column))

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)
