"""Source files and spans: where in the text a node or a diagnostic is."""

from __future__ import annotations

import attrs

#: The suffix of a bbflow source file.
SUFFIX = ".flow"


def normalised(text: str) -> str:
    """A file's text as the compiler reads it: no leading byte order mark, every newline a ``\n``."""
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


@attrs.frozen(slots=True)
class Span:
    """A region of a file; lines and columns are 1-based, the end is exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, file: str, line: int, column: int) -> Span:
        return cls(file, line, column, line, column + 1)

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of ``other``."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)


@attrs.frozen(slots=True)
class SourceFile:
    """The text of one file, with its lines at hand for rendering diagnostics.

    Lines end at ``\n`` only, as the lexer and editors count them: ``str.splitlines`` would
    also end one at a form feed or a vertical tab, which the language takes as whitespace or
    a stray character, and every diagnostic after it would show the wrong line.
    """

    path: str
    text: str
    lines: tuple[str, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        lines = self.text.split("\n")
        object.__setattr__(self, "lines", tuple(lines[:-1] if lines[-1] == "" else lines))

    def line(self, n: int) -> str:
        """Line ``n`` (1-based) without its newline; empty past the end."""
        return self.lines[n - 1] if 1 <= n <= len(self.lines) else ""
