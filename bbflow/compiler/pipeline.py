"""From the paths a user names to parsed modules and their diagnostics.

``compile_paths`` discovers ``.flow`` files (a project folder: its source
folder; any other folder: every ``.flow`` file below it, hidden folders
skipped; a file: itself), names each module by its path under its source root
(``cell/arm.flow`` -> ``cell.arm``), reads and parses every file, and then
hands the whole result to the checker.

The checker seam: if the module ``bbflow.compiler.checker`` exists, its
``check(result: CompileResult) -> Facts`` runs over the parsed modules, adds
its diagnostics to ``result.diagnostics``, and what it established is kept in
``result.facts`` for code generation; without it, only syntax is checked. Any exception escaping the parser or the checker is a compiler bug and
becomes a BBF900 diagnostic, never a crash.

Problems with the paths themselves (missing, unreadable, not a ``.flow`` file,
a broken bbflow.toml) are not diagnostics about the user's program: they raise
``InputError``, which the command line reports as a usage error (exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import attrs

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import Diagnostics
from bbflow.compiler.facts import Facts
from bbflow.compiler.parser import parse_module
from bbflow.compiler.source import SourceFile, Span
from bbflow.project import PROJECT_FILE, Project, ProjectError, find_project, load_project

SUFFIX = ".flow"
CHECKER = "bbflow.compiler.checker"
T = TypeVar("T")


class InputError(Exception):
    """A path that cannot be compiled at all (missing, unreadable, not a .flow file)."""


@attrs.frozen(slots=True)
class SourceUnit:
    """One file to compile: where it is, how to show it, and its module name."""

    path: Path  # resolved, for reading and de-duplication
    display: str  # as the user would write it (relative to the current folder when given so)
    module: str  # dotted module name
    root: Path  # the source root the module name is relative to


@attrs.define
class CompileResult:
    modules: list[ast.Module] = attrs.Factory(list)  # in discovery order
    sources: dict[str, SourceFile] = attrs.Factory(dict)  # by display path (the spans' ``file``)
    diagnostics: Diagnostics = attrs.Factory(Diagnostics)
    roots: list[Path] = attrs.Factory(list)  # source roots, for resolving imports of unnamed modules
    projects: list[Project] = attrs.Factory(list)
    facts: Facts | None = None  # what the checker established (None if it did not run or crashed)

    @property
    def files(self) -> int:
        return len(self.sources)


def compile_paths(paths: Iterable[str | Path]) -> CompileResult:
    """Discover, read, parse and check; raises InputError only for unusable paths."""
    result = CompileResult()
    units = discover(paths, result)
    for unit in units:
        text = read_source(unit, result.diagnostics)
        if text is None:
            continue
        source = SourceFile(unit.display, text)
        result.sources[unit.display] = source
        module = _guarded(result.diagnostics, unit.display, "parser",
                          lambda: parse_module(source, unit.module, result.diagnostics))
        if module is not None:
            result.modules.append(module)
    run_checker(result)
    return result


def run_checker(result: CompileResult) -> None:
    """The seam where the semantic checks run (see the module docstring)."""
    if importlib.util.find_spec(CHECKER) is None:
        return
    first = result.modules[0].file if result.modules else next(iter(result.sources), "<input>")

    def check() -> Facts:
        return importlib.import_module(CHECKER).check(result)

    result.facts = _guarded(result.diagnostics, first, "checker", check)


def discover(paths: Iterable[str | Path], result: CompileResult) -> list[SourceUnit]:
    """The files to compile, each once, in the order given (folders sorted)."""
    units: dict[Path, SourceUnit] = {}
    for given in paths:
        for unit in _units_of(Path(given), result):
            units.setdefault(unit.path, unit)
    return list(units.values())


def _units_of(given: Path, result: CompileResult) -> list[SourceUnit]:
    if not given.exists():
        raise InputError(f"{given}: no such file or folder")
    if given.is_file() and given.name == PROJECT_FILE:
        given = given.parent
    project = _project_of(given, result)
    if given.is_dir():
        top = project.source_dir if project and (given / PROJECT_FILE).is_file() else given.resolve()
        root = project.source_dir if project and _is_under(top, project.source_dir) else top
        files = [f for f in sorted(top.rglob("*" + SUFFIX))
                 if f.is_file() and not any(p.startswith(".") for p in f.relative_to(top).parts)]
        if not files:
            raise InputError(f"{given}: no {SUFFIX} files found")
    else:
        if given.suffix != SUFFIX:
            raise InputError(f"{given}: not a {SUFFIX} file")
        files = [given.resolve()]
        root = project.source_dir if project and _is_under(files[0], project.source_dir) else files[0].parent
    if root not in result.roots:
        result.roots.append(root)
    return [SourceUnit(f, _display(f, given), module_name(f, root), root) for f in files]


def _project_of(given: Path, result: CompileResult) -> Project | None:
    folder = find_project(given)
    if folder is None:
        return None
    for known in result.projects:
        if known.root == folder:
            return known
    try:
        project = load_project(folder)
    except ProjectError as e:
        raise InputError(str(e)) from e
    result.projects.append(project)
    return project


def module_name(file: Path, root: Path) -> str:
    """``ROOT/cell/arm.flow`` -> ``cell.arm``."""
    return ".".join(file.relative_to(root).with_suffix("").parts)


def read_source(unit: SourceUnit, diags: Diagnostics) -> str | None:
    """The file's text with newlines normalised; None (and a BBF001) if it is not UTF-8."""
    try:
        data = unit.path.read_bytes()
    except OSError as e:
        raise InputError(f"{unit.display}: cannot read: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        diags.error("BBF001", f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                    Span.point(unit.display, line, column), help="save the file as UTF-8")
        return None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def _display(file: Path, given: Path) -> str:
    """Relative to the current folder if the user named a relative path, else absolute."""
    if given.is_absolute():
        return str(file)
    try:
        return os.path.relpath(file)
    except ValueError:  # another drive on Windows
        return str(file)


def _is_under(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _guarded(diags: Diagnostics, file: str, stage: str, work: Callable[[], T]) -> T | None:
    """Run ``work``; an exception is a compiler bug, reported as BBF900."""
    try:
        return work()
    except Exception as e:  # noqa: BLE001 - the compiler must never crash
        frame = traceback.extract_tb(e.__traceback__)[-1]
        diags.error(
            "BBF900", f"internal compiler error in the {stage}: {type(e).__name__}: {e}",
            Span.point(file, 1, 1),
            notes=(f"raised at {Path(frame.filename).name}:{frame.lineno} in {frame.name}",),
            help="this is a bug in bbflow, not in your program; please report it with this file",
        )
        return None
