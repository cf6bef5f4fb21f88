"""The program an open file belongs to, compiled with the editor's buffers.

A file in a project (a ``bbflow.toml`` at or above it) is compiled with the
whole project, its modules named from the project's source folder, exactly as
``bbflow check PROJECT`` names them. A file outside any project is compiled
with every ``.flow`` file below its own folder (as ``bbflow check FOLDER``
would), so that its siblings can be imported. The compiler's pipeline does
the work (``compile_paths(..., buffers=...)``): every file is read from the
editor's buffer when it is open there, from disk otherwise; a buffer that was
never saved is compiled too.

No cache: the editor wants facts (types, references) that a replay does not
have, and a checker run over a project takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from bbflow.compiler import CompileResult, InputError, SourceFile, Span, ast, compile_paths
from bbflow.project import PROJECT_FILE, ProjectError, find_project, load_project


@attrs.define
class Program:
    """A compiled program: the compiler's result and which text each file had."""

    scope: Path  # the folder compiled: a project root, or a loose file's folder
    result: CompileResult
    texts: dict[Path, str] = attrs.Factory(dict)  # every compiled file's text, by resolved path
    problem: str | None = None  # why the project could not be used (a broken bbflow.toml)

    @property
    def files(self) -> list[Path]:
        return list(self.texts)

    def module(self, path: Path) -> ast.Module | None:
        """The parsed module of ``path`` (None if it is not part of the program)."""
        file = str(path)
        for module in self.result.modules:
            if module.file == file:
                return module
        return None

    def is_current(self, path: Path, text: str) -> bool:
        """True when ``path`` was compiled with exactly ``text``."""
        return self.texts.get(path) == text


def scope_of(path: Path) -> Path:
    """The folder whose program ``path`` belongs to."""
    return find_project(path) or path.parent


def compile_program(path: Path, buffers: Mapping[Path, str]) -> Program:
    """Compile the program of ``path`` (resolved), reading open files from ``buffers`` (resolved paths).

    Never raises: an exception anywhere in here is a compiler bug, reported as
    one BBF900 at the start of ``path`` (the server must stay up).
    """
    try:
        return _compile(path, buffers)
    except Exception as e:
        result = CompileResult()
        result.diagnostics.error(
            "BBF900", f"internal compiler error: {type(e).__name__}: {e}", Span.point(str(path), 1, 1),
            help="this is a bug in bbflow, not in your program; please report it with this file")
        text = buffers.get(path, "")
        result.sources[str(path)] = SourceFile(str(path), text)
        return Program(scope_of(path), result, {path: text})


def _compile(path: Path, buffers: Mapping[Path, str]) -> Program:
    scope = scope_of(path)
    problem = _project_problem(scope)
    try:
        result = compile_paths([scope, path], buffers=buffers)
    except InputError:  # nothing saved there yet, or an unreadable project file: the file alone
        result = compile_paths([path], buffers=buffers, projects=False)
    texts = {unit.path: result.sources[unit.display].text for unit in result.units if unit.display in result.sources}
    return Program(scope, result, texts, problem)


def _project_problem(scope: Path) -> str | None:
    """Why the project at ``scope`` cannot be used (its file is broken), or None."""
    if not (scope / PROJECT_FILE).is_file():
        return None
    try:
        load_project(scope)
    except ProjectError as e:
        return str(e)
    return None
