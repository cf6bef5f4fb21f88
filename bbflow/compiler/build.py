"""Build orchestration: check -> generate -> write, through the on-disk cache.

``build_paths`` is ``bbflow build``: it refuses to write anything when the
check reports errors, and otherwise writes one Python module per ``.flow``
module (the standard library's included, under ``std/``) into packages that
mirror the module names, with a manifest for ``bbflow.runtime.loader``.
``compile_project`` is what ``bbflow run`` uses: the same, into
``PROJECT/.bbflow/cache/build``, then loaded into a ``model.Program``.

The cache (``bbflow.compiler.cache``): when every module's key (its source
and, transitively, its imports') is cached, nothing is parsed, checked or
generated: diagnostics and code come from the cache. When some module
changed, the program is checked as a whole (names and types cross module
boundaries), and only the modules whose keys missed are generated again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TypeVar

import attrs

from bbflow import __version__
from bbflow.compiler import ast
from bbflow.compiler.cache import Cache, Entry, module_keys, sha256
from bbflow.compiler.codegen import GeneratedModule, flow_path, generate_module, module_path
from bbflow.compiler.diagnostics import Diagnostics
from bbflow.compiler.facts import Facts
from bbflow.compiler.checker import check
from bbflow.compiler.parser import parse_module
from bbflow.compiler.pipeline import CompileResult, SourceUnit, discover, read_source
from bbflow.compiler.source import SourceFile, Span
from bbflow.runtime import model
from bbflow.runtime.loader import MANIFEST, load_program

STDLIB_PACKAGE = "bbflow.stdlib"
PRELUDE = "std.prelude"
BUILD_DIR = "build"  # under the cache folder, for `bbflow run`
T = TypeVar("T")


@attrs.define
class BuildResult:
    """What a build produced: all diagnostics, the generated modules (none if there were errors)."""

    diagnostics: Diagnostics
    modules: list[GeneratedModule] = attrs.Factory(list)
    sources: dict[str, str] = attrs.Factory(dict)  # display path -> text, for rendering diagnostics
    files: int = 0
    cache: Cache | None = None

    @property
    def ok(self) -> bool:
        return not self.diagnostics.has_errors()


# --- the standard library -----------------------------------------------------------


def stdlib_sources() -> dict[str, str]:
    """Module name -> text of every ``.flow`` file shipped in ``bbflow/stdlib``."""
    found: dict[str, str] = {}

    def walk(folder, prefix: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith((".", "_")):
                walk(entry, (*prefix, entry.name))
            elif entry.name.endswith(".flow"):
                found[".".join((*prefix, entry.name[: -len(".flow")]))] = entry.read_text(encoding="utf-8")

    walk(resources.files(STDLIB_PACKAGE), ())
    return found


# --- checking and generating ------------------------------------------------------------


@attrs.define
class Checked:
    """A compiled program and what the checker established about it (None if a pass crashed)."""

    result: CompileResult
    facts: Facts | None


def check_paths(paths: Iterable[str | Path]) -> Checked:
    """The pipeline's discover -> read -> parse, then the checker, keeping its ``Facts`` for codegen.

    Raises ``InputError`` for unusable paths; a crash of the parser or checker
    is a BBF900 diagnostic.
    """
    result = CompileResult()
    for unit in discover(paths, result):
        text = read_source(unit, result.diagnostics)
        if text is None:
            continue
        source = SourceFile(unit.display, text)
        result.sources[unit.display] = source
        module = _guarded(result, "parser", lambda: parse_module(source, unit.module, result.diagnostics))
        if module is not None:
            result.modules.append(module)
    facts = _guarded(result, "checker", lambda: check(result.modules, result.diagnostics))
    return Checked(result, facts)


def _guarded(result: CompileResult, stage: str, work: Callable[[], T]) -> T | None:
    try:
        return work()
    except Exception as e:  # noqa: BLE001 - the compiler must never crash
        _internal_error(result.diagnostics, result, stage, e)
        return None


def _internal_error(diags: Diagnostics, result: CompileResult, stage: str, e: Exception) -> None:
    first = result.modules[0].file if result.modules else next(iter(result.sources), "<input>")
    diags.error("BBF900", f"internal compiler error in the {stage}: {type(e).__name__}: {e}",
                Span.point(first, 1, 1),
                help="this is a bug in bbflow, not in your program; please report it with this file")


def imports_of(module: ast.Module) -> tuple[str, ...]:
    """The modules ``module`` imports, as written (``std.prelude`` is implied for all but itself)."""
    names = {".".join(i.name for i in imp.module) for imp in module.imports}
    if module.name != PRELUDE:
        names.add(PRELUDE)
    return tuple(sorted(names))


def generate_all(result: CompileResult, facts: Facts, *, cache: Cache | None = None,
                 keys: dict[str, str] | None = None) -> list[GeneratedModule]:
    """Code for every module of a program that checked without errors (cached modules reused)."""
    texts = _texts(result, facts)
    out = []
    for name in sorted(facts.modules):
        key = keys.get(name) if keys else None
        entry = cache.get(key) if cache is not None and key else None
        if entry is not None:
            out.append(GeneratedModule(name, flow_path(name), sha256(texts[name]), entry.code, entry.linemap))
            continue
        gen = generate_module(facts.modules[name], facts, texts[name])
        out.append(gen)
        if cache is not None and key:
            cache.put(key, Entry(gen.code, gen.linemap))
    return out


def build_program(paths: Iterable[str | Path], *, use_cache: bool = True) -> BuildResult:
    """Check the program at ``paths`` and generate its modules (raises ``InputError`` for unusable paths)."""
    paths = list(paths)
    scratch = CompileResult()
    units = discover(paths, scratch)
    cache = Cache.for_project(_cache_root(units, scratch)) if use_cache and units else None
    if cache is not None:
        cached = _from_cache(units, cache)
        if cached is not None:
            return cached
    checked = check_paths(paths)
    result, facts = checked.result, checked.facts
    sources = {d: s.text for d, s in result.sources.items()}
    out = BuildResult(result.diagnostics, sources=sources, files=result.files, cache=cache)
    if facts is None or len(result.modules) != len(units):
        return out  # a file that did not parse, or no checker: nothing to generate or cache
    texts = _texts(result, facts)
    keys = module_keys(texts, {name: imports_of(m) for name, m in facts.modules.items()})
    if cache is not None:
        for name, m in facts.modules.items():
            cache.store_imports(sha256(texts[name]), imports_of(m))
        cache.put_diagnostics(keys, _files(facts), list(result.diagnostics))
    if result.diagnostics.has_errors():
        return out
    try:
        out.modules = generate_all(result, facts, cache=cache, keys=keys)
    except Exception as e:  # noqa: BLE001 - a codegen bug is a BBF900, never a crash
        _internal_error(out.diagnostics, result, "code generator", e)
        out.modules = []
    return out


def write_package(modules: Sequence[GeneratedModule], out_dir: Path | str) -> list[Path]:
    """Write the modules as a package tree under ``out_dir`` with ``__init__.py`` files and the manifest.

    Only what this build owns is replaced: the files it writes. The manifest
    is written last, so a loader never sees a manifest naming missing files.
    """
    out_dir = Path(out_dir)
    names = frozenset(m.module for m in modules)
    written: list[Path] = []
    manifest: dict[str, object] = {"compiler_version": __version__, "abi": model.ABI, "modules": {}}
    packages: set[Path] = {Path(".")}
    for m in sorted(modules, key=lambda m: m.module):
        rel = Path(module_path(m.module, names))
        _write(out_dir / rel, m.code)
        written.append(out_dir / rel)
        for parent in rel.parents:
            packages.add(parent)
        manifest["modules"][m.module] = {"path": rel.as_posix(), "source": m.flow_file,  # type: ignore[index]
                                         "source_sha256": m.source_sha256}
    for pkg in sorted(packages):
        init = out_dir / pkg / "__init__.py"
        if not init.exists():
            _write(init, '"""Generated by bbflow: a package of generated modules."""\n')
            written.append(init)
    _write(out_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    written.append(out_dir / MANIFEST)
    return written


def compile_project(target: str | Path | Sequence[str | Path]) -> tuple[Diagnostics, model.Program | None]:
    """For ``bbflow run``: check and build (through the cache), then load the generated package.

    ``target``: a project folder (or its bbflow.toml), or the paths to
    compile. The package is written to ``PROJECT/.bbflow/cache/build`` (a
    temporary folder when there is no project root to write under) and
    loaded by ``bbflow.runtime.loader``; the Program is None when there were
    errors. Raises ``InputError`` for unusable paths.
    """
    paths = [target] if isinstance(target, (str, Path)) else list(target)
    built = build_program(paths)
    if not built.ok:
        return built.diagnostics, None
    scratch = CompileResult()
    units = discover(paths, scratch)
    root = _cache_root(units, scratch)
    out_dir = root / ".bbflow" / "cache" / BUILD_DIR
    try:
        _replace_tree(built.modules, out_dir)
    except OSError:
        out_dir = Path(tempfile.mkdtemp(prefix="bbflow-build-"))
        write_package(built.modules, out_dir)
    return built.diagnostics, load_program(out_dir)


# --- helpers -----------------------------------------------------------------------------


def _cache_root(units: list[SourceUnit], result: CompileResult) -> Path:
    """The project root if there is one, else the first source root."""
    if result.projects:
        return result.projects[0].root
    return units[0].root if units else Path.cwd()


def _texts(result: CompileResult, facts: Facts) -> dict[str, str]:
    """The source text of every module of the program (the standard library's from the package)."""
    std = stdlib_sources()
    own = {m.name: result.sources[m.file].text for m in result.modules if m.file in result.sources}
    return {name: own[name] if name in own else std.get(name, "") for name in facts.modules}


def _files(facts: Facts) -> dict[str, str]:
    """Module name -> the file its spans name."""
    return {name: m.file for name, m in facts.modules.items()}


def _from_cache(units: list[SourceUnit], cache: Cache) -> BuildResult | None:
    """The whole build from the cache when nothing changed; None on any miss."""
    texts: dict[str, str] = {}
    for unit in units:
        text = read_source(unit, Diagnostics())
        if text is None:
            return None
        texts[unit.module] = text
    std = stdlib_sources()
    imports: dict[str, tuple[str, ...]] = {}
    for name, text in {**std, **texts}.items():
        found = cache.imports(sha256(text))
        if found is None:
            if name in std:
                continue  # a std module the last build did not load
            return None
        imports[name] = found
    used = _imported_closure(texts, imports)
    sources = {name: text for name, text in {**std, **texts}.items() if name in used}
    if set(sources) != used:
        return None  # imports of modules that do not exist: let the checker say so
    keys = module_keys(sources, imports)
    files = {name: next((u.display for u in units if u.module == name), f"<stdlib>/{flow_path(name)}")
             for name in sources}
    diags = cache.get_diagnostics(keys, files)
    if diags is None:
        return None
    out = BuildResult(Diagnostics(diags), sources={u.display: texts[u.module] for u in units},
                      files=len(units), cache=cache)
    if out.diagnostics.has_errors():
        return out
    for name in sorted(sources):
        entry = cache.get(keys[name])
        if entry is None:
            return None
        out.modules.append(GeneratedModule(name, flow_path(name), sha256(sources[name]), entry.code, entry.linemap))
    return out


def _imported_closure(texts: dict[str, str], imports: dict[str, tuple[str, ...]]) -> set[str]:
    """The modules the program uses: its own and, transitively, what they import."""
    seen: set[str] = set()
    stack = list(texts)
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(imports.get(name, ()))
    return seen


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _replace_tree(modules: Sequence[GeneratedModule], out_dir: Path) -> None:
    """Write a fresh package at ``out_dir`` and swap it in, so no stale module survives a rebuild."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    write_package(modules, fresh)
    old = out_dir.with_name(f".old-{os.getpid()}-{out_dir.name}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(fresh, out_dir)
    shutil.rmtree(old, ignore_errors=True)
