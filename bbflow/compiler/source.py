"""Source files and spans: where in the text a node or a diagnostic is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

#: The suffix of a bbflow source file.
SUFFIX = ".flow"
#: Folders that hold installed or generated files, never a project's sources: an installed bbflow
#: puts its standard library's ``.flow`` files under ``site-packages``.
NOT_SOURCES = frozenset({"site-packages", "node_modules", "__pycache__"})
#: The largest .flow file read (a bigger one is refused: nothing that large is written by hand).
MAX_SOURCE_BYTES = 8 << 20


class InputError(Exception):
    """A path that cannot be compiled at all (missing, unreadable, not a .flow file)."""


def source_files(top: Path) -> list[Path]:
    """The regular ``.flow`` files below ``top``, sorted (a FIFO, a device or a link to one is not a
    source file). Not searched: hidden folders, the folders of ``NOT_SOURCES`` and virtual environments
    (a folder holding ``pyvenv.cfg``), which a project folder often holds (``python3 -m venv venv``)."""
    found = []
    for folder, subfolders, files in os.walk(top):
        here = Path(folder)
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in NOT_SOURCES
                         and not (here / d / "pyvenv.cfg").is_file()]
        found += [here / f for f in files if f.endswith(SUFFIX) and (here / f).is_file()]
    return sorted(found)


def read_regular(path: Path, display: str) -> bytes:
    """The bytes of a regular file of at most ``MAX_SOURCE_BYTES``; raises InputError otherwise.

    Opened without blocking and checked before reading: a FIFO would block
    forever, and a link to ``/dev/zero`` never ends."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise InputError(f"{display}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{display}: not a regular file")
        if st.st_size > MAX_SOURCE_BYTES:
            raise InputError(f"{display}: too large ({st.st_size} bytes; a .flow file is at most "
                             f"{MAX_SOURCE_BYTES // (1 << 20)} MiB)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:  # it grew while we read it
            raise InputError(f"{display}: too large (a .flow file is at most {MAX_SOURCE_BYTES // (1 << 20)} MiB)")
        return data
    except OSError as e:
        raise InputError(f"{display}: cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)


def undecodable_at(data: bytes, error: UnicodeDecodeError) -> tuple[int, int]:
    """The line and column (1-based) of the first byte of ``data`` that is not UTF-8."""
    before = data[: error.start].decode("utf-8", errors="replace")
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


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
