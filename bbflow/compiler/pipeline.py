"""The one compiler pipeline: discover -> read -> parse -> check [-> generate], through the cache.

``bbflow check``, ``bbflow build`` and ``bbflow run`` all call
``compile_paths``; it discovers ``.flow`` files (a project folder: its source
folder; any other folder: every ``.flow`` file below it, hidden folders
skipped; a file: itself), names each module by its path under its source root
(``cell/arm.flow`` -> ``cell.arm``), reads every file, parses it, runs the
checker (``bbflow.compiler.checker.check``) over the whole program, keeping
what it established in ``result.facts``, and, with ``generate=True`` and no
errors, generates one Python module per ``.flow`` module (the standard
library's included) into ``result.generated``.

With ``use_cache=True`` the on-disk cache (``bbflow.compiler.cache``, in
``.bbflow/cache`` under the project root) is consulted after reading: when
the program's diagnostics (and, for ``generate``, every module's code) are
cached under its content keys, nothing is parsed, checked or generated; the
diagnostics are replayed and ``result.cached`` is true (``modules`` and
``facts`` are then empty: ask without the cache when you need them). On a
miss the program is checked as a whole (names and types cross module
boundaries), the outcome is stored, and only modules whose keys missed are
generated again; a change to a module changes the keys of its importers.

Any exception escaping the parser, the checker or the code generator is a
compiler bug and becomes a BBF900 diagnostic, never a crash. Problems with the
paths themselves (missing, unreadable, not a ``.flow`` file, a broken
bbflow.toml) are not diagnostics about the user's program: they raise
``InputError``, which the command line reports as a usage error (exit 2).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs

from bbflow.compiler import ast
from bbflow.compiler.cache import Cache, Entry, module_keys, sha256
from bbflow.compiler.checker import check
from bbflow.compiler.codegen import GeneratedModule, flow_path, generate_module
from bbflow.compiler.diagnostics import Diagnostics
from bbflow.compiler.facts import Facts
from bbflow.compiler.modules import PRELUDE, STDLIB_FILE, stdlib_sources
from bbflow.compiler.parser import parse_module
from bbflow.compiler.source import SourceFile, Span
from bbflow.project import PROJECT_FILE, Project, ProjectError, find_project, load_project

SUFFIX = ".flow"
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
    modules: list[ast.Module] = attrs.Factory(list)  # in discovery order (empty when replayed from the cache)
    sources: dict[str, SourceFile] = attrs.Factory(dict)  # by display path (the spans' ``file``)
    diagnostics: Diagnostics = attrs.Factory(Diagnostics)
    roots: list[Path] = attrs.Factory(list)  # source roots, for resolving imports of unnamed modules
    projects: list[Project] = attrs.Factory(list)
    facts: Facts | None = None  # what the checker established (None if it did not run or crashed)
    units: list[SourceUnit] = attrs.Factory(list)  # the files discovered, in order
    generated: list[GeneratedModule] = attrs.Factory(list)  # with generate=True and no errors
    cache: Cache | None = None  # the cache consulted (None without use_cache)
    cached: bool = False  # replayed from the cache: nothing was parsed, checked or generated

    @property
    def files(self) -> int:
        return len(self.sources)

    @property
    def cache_root(self) -> Path:
        """Where ``.bbflow`` goes: the project root if there is one, else the first source root."""
        if self.projects:
            return self.projects[0].root
        return self.units[0].root if self.units else Path.cwd()


def compile_paths(paths: Iterable[str | Path], *, use_cache: bool = False, generate: bool = False) -> CompileResult:
    """Discover, read, parse and check (and generate); raises InputError only for unusable paths."""
    result = CompileResult()
    result.units = discover(paths, result)
    texts: dict[str, str] = {}
    for unit in result.units:
        text = read_source(unit, result.diagnostics)
        if text is not None:
            texts[unit.module] = text
            result.sources[unit.display] = SourceFile(unit.display, text)
    if use_cache and result.units:
        result.cache = Cache.for_project(result.cache_root)
        if len(texts) == len(result.units) and replay(result, texts, generate=generate):
            return result
    for unit in result.units:
        source = result.sources.get(unit.display)
        if source is None:
            continue
        module = _guarded(result.diagnostics, unit.display, "parser",
                          lambda: parse_module(source, unit.module, result.diagnostics))
        if module is not None:
            result.modules.append(module)
    run_checker(result)
    complete = result.facts is not None and len(result.modules) == len(result.units)
    if not complete:
        return result  # a file that did not read or parse, or a checker crash: nothing to cache or generate
    keys = program_keys(result)
    if result.cache is not None:
        store(result, keys)
    if generate and not result.diagnostics.has_errors():
        generated = _guarded(result.diagnostics, _first_file(result), "code generator",
                             lambda: generate_all(result, keys))
        result.generated = generated or []
    return result


def run_checker(result: CompileResult) -> None:
    """The semantic checks over the whole program; a crash is a BBF900."""
    result.facts = _guarded(result.diagnostics, _first_file(result), "checker", lambda: check(result))


# --- the cache ------------------------------------------------------------------------


def replay(result: CompileResult, texts: Mapping[str, str], *, generate: bool) -> bool:
    """Fill ``result`` from the cache if the whole program is there (and its code, for ``generate``).

    ``texts``: module name -> source of every discovered file. Needs no
    parsing: a text's imports are cached under its hash. False on any miss,
    leaving ``result`` untouched.
    """
    assert result.cache is not None
    cache = result.cache
    sources = {**stdlib_sources(), **texts}
    imports: dict[str, tuple[str, ...]] = {}
    for name, text in sources.items():
        written = cache.imports(sha256(text))
        if written is None:
            return False
        imports[name] = with_prelude(name, written)
    keys = module_keys(sources, imports)
    files = {name: _file_of(name, result) for name in sources}
    diags = cache.get_diagnostics(keys, files)
    if diags is None:
        return False
    generated = []
    if generate and not any(d.is_error for d in diags):
        for name in sorted(sources):
            entry = cache.get(keys[name])
            if entry is None:
                return False
            generated.append(GeneratedModule(name, flow_path(name), sha256(sources[name]), entry.code, entry.linemap))
    result.diagnostics.extend(diags)
    result.generated = generated
    result.cached = True
    return True


def store(result: CompileResult, keys: Mapping[str, str]) -> None:
    """Record a checked program: every module's imports and the program's diagnostics."""
    assert result.cache is not None and result.facts is not None
    texts = program_texts(result)
    for name, module in result.facts.modules.items():
        result.cache.store_imports(sha256(texts[name]), written_imports(module))
    files = {name: m.file for name, m in result.facts.modules.items()}
    result.cache.put_diagnostics(keys, files, list(result.diagnostics))


def program_keys(result: CompileResult) -> dict[str, str]:
    """The cache key of every module of a checked program (the standard library's included)."""
    assert result.facts is not None
    texts = program_texts(result)
    imports = {name: with_prelude(name, written_imports(m)) for name, m in result.facts.modules.items()}
    return module_keys(texts, imports)


def written_imports(module: ast.Module) -> tuple[str, ...]:
    """The modules ``module`` imports, as written."""
    return tuple(sorted({".".join(i.name for i in imp.module) for imp in module.imports}))


def with_prelude(name: str, imports: Iterable[str]) -> tuple[str, ...]:
    """``std.prelude`` is implied for every module but itself."""
    return tuple(sorted({*imports, *((PRELUDE,) if name != PRELUDE else ())}))


def program_texts(result: CompileResult) -> dict[str, str]:
    """The source text of every module the checker saw (the standard library's from the package)."""
    assert result.facts is not None
    std = stdlib_sources()
    own = {m.name: result.sources[m.file].text for m in result.modules if m.file in result.sources}
    return {name: own[name] if name in own else std.get(name, "") for name in result.facts.modules}


def _file_of(module: str, result: CompileResult) -> str:
    """The file a module's spans name: its display path, or the checker's name for a std module."""
    for unit in result.units:
        if unit.module == module:
            return unit.display
    return STDLIB_FILE + flow_path(module)


# --- generating -------------------------------------------------------------------------


def generate_all(result: CompileResult, keys: Mapping[str, str]) -> list[GeneratedModule]:
    """Code for every module of a program that checked without errors (cached modules reused)."""
    assert result.facts is not None
    facts = result.facts
    texts = program_texts(result)
    out = []
    for name in sorted(facts.modules):
        entry = result.cache.get(keys[name]) if result.cache is not None else None
        if entry is not None:
            out.append(GeneratedModule(name, flow_path(name), sha256(texts[name]), entry.code, entry.linemap))
            continue
        gen = generate_module(facts.modules[name], facts, texts[name])
        out.append(gen)
        if result.cache is not None:
            result.cache.put(keys[name], Entry(gen.code, gen.linemap))
    return out


# --- discovering and reading ---------------------------------------------------------------


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


def _first_file(result: CompileResult) -> str:
    """Where a BBF900 about the whole program points: its first file."""
    return result.modules[0].file if result.modules else next(iter(result.sources), "<input>")
