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

from collections.abc import Iterable, Mapping

import click

from bbflow.compiler.diagnostics.core import Diagnostic, Severity
from bbflow.compiler.source import SourceFile, Span
from bbflow.terminal import printable

TAB = "    "
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
    marks = _marks(diag, source)
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
                out.append(f"{number} {_expand(source.line(line))}".rstrip())  # type: ignore[union-attr]
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
        under = _underline(label.span, other, "-", "-", label.message)
        marker = under.lstrip(" ")
        out.append(style(f"{' ' * width_here}::: ", _GUTTER, bold=True) + printable(where))
        out.append(gutter)
        out.append(style(f"{label.span.line:>{width_here}} |", _GUTTER, bold=True)
                   + f" {_expand(other.line(label.span.line))}".rstrip())
        out.append(f"{gutter} {' ' * (len(under) - len(marker))}" + style(marker, _GUTTER, bold=True))
    notes = [*diag.notes, *(n for n in unseen if n not in diag.notes)]
    if notes or diag.help:
        out.append(bar)
    for note in notes:
        out.append(f"{pad} " + style("= note", bold=True) + f": {printable(note)}")
    if diag.help:
        out.append(f"{pad} " + style("= help", bold=True) + f": {printable(diag.help)}")
    return "\n".join(out) + "\n"


def _marks(diag: Diagnostic, source: SourceFile | None) -> list[tuple[int, str, bool]]:
    """(line, underline text, is primary) for the primary span and the labels in its file."""
    if source is None or not source.lines:
        return []
    marks = [(diag.span.line, _underline(diag.span, source, "^", "~", ""), True)]
    for label in diag.labels:
        if label.span.file == diag.span.file:
            marks.append((label.span.line, _underline(label.span, source, "-", "-", label.message), False))
    marks.sort(key=lambda m: (m[0], not m[2]))
    return marks


def _underline(span: Span, source: SourceFile, first: str, rest: str, message: str) -> str:
    """Spaces up to the span's start, then its marker, on the span's first line.

    Counted in terminal cells, not characters: an emoji or a CJK character before the span
    takes two cells, a combining accent none, and the marker must stand under the span."""
    from rich.cells import cell_len  # only with something to show: a clean check never loads rich

    text = source.line(span.line)
    start = cell_len(_expand(text[: span.column - 1]))
    if span.end_line == span.line and span.end_column > span.column:
        end = cell_len(_expand(text[: span.end_column - 1]))
    else:  # a multi-line span is marked to the end of its first line
        end = max(cell_len(_expand(text)), start + 1)
    length = max(end - start, 1)
    marker = first + rest * (length - 1)
    return " " * start + marker + (f" {printable(message, newline=False)}" if message else "")


def _expand(text: str) -> str:
    """A source line as shown: tabs expanded, control characters escaped (never sent to the terminal)."""
    return printable(text.replace("\t", TAB), newline=False)
