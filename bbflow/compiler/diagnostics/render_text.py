"""Diagnostics as text, in the style of rustc.

    error[BBF001]: expected `=` after the step name
      --> flows/cell.flow:14:12
       |
    14 |     step a beep()
       |            ^~~~~
       |
       = help: write `step NAME = CALL`

The primary span is underlined with a caret and tildes, secondary labels with
dashes and their message. Colour is applied only when asked (the CLI asks when
the output is a terminal), so golden files and pipes get plain text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping

import click

from bbflow.compiler.diagnostics.core import Diagnostic, Severity
from bbflow.compiler.source import SourceFile, Span
from bbflow.terminal import printable

TAB = "    "
#: the widest source line shown, in terminal cells: a longer one is shown around its mark, cut with "..."
WIDEST_LINE = 120
_CUT = "..."
_BEFORE = 20  # cells shown before the mark in a cut line
_COLOURS = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
_GUTTER = "blue"


def render_text(diags: Iterable[Diagnostic], sources: Mapping[str, SourceFile], *, color: bool = False) -> str:
    """All ``diags`` as one text block, each followed by a blank line."""
    return "".join(render_one(d, sources.get(d.span.file), color=color, others=sources) + "\n" for d in diags)


def render_one(diag: Diagnostic, source: SourceFile | None, *, color: bool = False,
               others: Mapping[str, SourceFile] | None = None) -> str:
    """One diagnostic; without its source file, only the header and the location.

    Labels in other files (``others`` gives their text) get a block of their
    own after the primary one, headed ``::: file:line:col`` as rustc does; a
    label whose file is not at hand becomes a note naming its place.
    """

    def style(text: str, fg: str | None = None, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color else text

    sev = _COLOURS[diag.severity]
    span = diag.span
    marks, firsts = _marks(diag, source)
    width = len(str(max([span.line, *(line for line, _, _ in marks)])))
    pad = " " * width
    bar = style(f"{pad} |", _GUTTER, bold=True)
    out = [
        style(f"{diag.severity.value}[{diag.code}]", sev, bold=True) + style(f": {printable(diag.message)}", bold=True),
        style(f"{pad}--> ", _GUTTER, bold=True) + printable(f"{span.file}:{span.line}:{span.column}"),
    ]
    if marks:
        out.append(bar)
        previous = None
        for line, under, primary in marks:
            if previous is not None and line > previous + 1:
                out.append(style("...", _GUTTER, bold=True))
            if line != previous:
                number = style(f"{line:>{width}} |", _GUTTER, bold=True)
                out.append(f"{number} {_shown(source.line(line), firsts[line])}".rstrip())  # type: ignore[union-attr]
            marker = under.lstrip(" ")
            indent = " " * (len(under) - len(marker))
            out.append(f"{bar} {indent}" + style(marker, sev if primary else _GUTTER, bold=True))
            previous = line
    elsewhere = [label for label in diag.labels if label.span.file != span.file]
    unseen = []
    for label in elsewhere:
        other = (others or {}).get(label.span.file)
        if other is None or not other.lines:
            unseen.append(printable(f"{label.message} ({label.span.file}:{label.span.line}:{label.span.column})"))
            continue
        where = f"{label.span.file}:{label.span.line}:{label.span.column}"
        width_here = max(width, len(str(label.span.line)))
        gutter = style(f"{' ' * width_here} |", _GUTTER, bold=True)
        first = _first_cell(label.span, other)
        under = _underline(label.span, other, "-", "-", label.message, first)
        marker = under.lstrip(" ")
        out.append(style(f"{' ' * width_here}::: ", _GUTTER, bold=True) + printable(where))
        out.append(gutter)
        out.append(style(f"{label.span.line:>{width_here}} |", _GUTTER, bold=True)
                   + f" {_shown(other.line(label.span.line), first)}".rstrip())
        out.append(f"{gutter} {' ' * (len(under) - len(marker))}" + style(marker, _GUTTER, bold=True))
    notes = [*diag.notes, *(n for n in unseen if n not in diag.notes)]
    if notes or diag.help:
        out.append(bar)
    for note in notes:
        out.append(f"{pad} " + style("= note", bold=True) + f": {printable(note)}")
    if diag.help:
        out.append(f"{pad} " + style("= help", bold=True) + f": {printable(diag.help)}")
    return "\n".join(out) + "\n"


def _marks(diag: Diagnostic, source: SourceFile | None) -> tuple[list[tuple[int, str, bool]], dict[int, int]]:
    """(line, underline text, is primary) for the primary span and the labels in its file, and for each
    of their lines the first cell shown (``_first_cell`` of the first span marked on it, the primary's first)."""
    if source is None or not source.lines:
        return [], {}
    spans = [(diag.span, "^", "~", "", True)]
    spans += [(label.span, "-", "-", label.message, False) for label in diag.labels if label.span.file == diag.span.file]
    firsts: dict[int, int] = {}
    for span, *_ in spans:
        firsts.setdefault(span.line, _first_cell(span, source))
    marks = [(span.line, _underline(span, source, first, rest, message, firsts[span.line]), primary)
             for span, first, rest, message, primary in spans]
    marks.sort(key=lambda m: (m[0], not m[2]))
    return marks, firsts


def _cells(span: Span, source: SourceFile) -> tuple[int, int, int]:
    """Where the span starts and ends on its first line, and where that line ends, in terminal cells.

    Counted in cells, not characters: an emoji or a CJK character before the span takes two cells,
    a combining accent none, and the marker must stand under the span."""
    text = source.line(span.line)
    width = len if _plain(text) else _cell_width  # plain text: a cell a character, as written
    start = width(text[: span.column - 1])
    total = width(text)
    if span.end_line == span.line and span.end_column > span.column:
        end = width(text[: span.end_column - 1])
    else:  # a multi-line span is marked to the end of its first line
        end = max(total, start + 1)
    return start, max(end, start + 1), total


def _cell_width(text: str) -> int:
    from rich.cells import cell_len  # only with something to show: a clean check never loads rich

    return cell_len(_expand(text))


def _first_cell(span: Span, source: SourceFile) -> int:
    """The first cell shown of the span's line: 0, or for a line wider than ``WIDEST_LINE``, a little
    before the span (so that the span is seen, however far to the right it is)."""
    start, _, total = _cells(span, source)
    if total <= WIDEST_LINE:
        return 0
    return max(0, min(start - _BEFORE, total - (WIDEST_LINE - len(_CUT))))


def _visible(total: int, first: int) -> tuple[int, int]:
    """The cells of a line shown from ``first``: (where the shown text begins, where it ends), each
    leaving room for a ``_CUT`` where the line is cut."""
    if total <= WIDEST_LINE:
        return 0, total
    lead = len(_CUT) if first > 0 else 0
    end = first + WIDEST_LINE - lead
    return first, end if end >= total else end - len(_CUT)


def _shown(text: str, first: int) -> str:
    """A source line as shown from cell ``first`` (see ``_first_cell``), cut with "..." where it is too wide."""
    if _plain(text):
        begin, end = _visible(len(text), first)
        return (_CUT if begin > 0 else "") + text[begin:end] + (_CUT if end < len(text) else "")
    from rich.cells import cell_len, get_character_cell_size

    expanded = _expand(text)
    total = cell_len(expanded)
    begin, end = _visible(total, first)
    if (begin, end) == (0, total):
        return expanded
    out, at = [], 0
    for char in expanded:
        width = get_character_cell_size(char)
        if at >= begin and at + width <= end:
            out.append(char)
        elif at < begin < at + width:  # a wide character cut in two: a blank keeps the columns
            out.append(" ")
        at += width
    return (_CUT if begin > 0 else "") + "".join(out) + (_CUT if end < total else "")


def _underline(span: Span, source: SourceFile, first: str, rest: str, message: str, shown_from: int = 0) -> str:
    """Spaces up to the span's start, then its marker, on the span's first line as ``_shown`` from cell
    ``shown_from`` shows it (the marker kept inside what is shown)."""
    start, end, total = _cells(span, source)
    begin, stop = _visible(total, shown_from)
    lead = len(_CUT) if begin > 0 else 0
    start = min(max(start, begin), max(stop - 1, begin))
    end = min(max(end, start + 1), max(stop, start + 1))
    marker = first + rest * (end - start - 1)
    return " " * (start - begin + lead) + marker + (f" {printable(message, newline=False)}" if message else "")


@functools.lru_cache(maxsize=8)
def _plain(text: str) -> bool:
    """Whether each character of a source line is shown as itself in one cell (ASCII, no tab or control
    character): then a column is a cell, and the many diagnostics of one long line need not measure it
    again and again (4,000 on a line of 30,000 characters took 36 s to show)."""
    return text.isascii() and _expand(text) == text


def _expand(text: str) -> str:
    """A source line as shown: tabs expanded, control characters escaped (never sent to the terminal)."""
    return printable(text.replace("\t", TAB), newline=False)
