"""The one compiler pipeline: discover -> read -> parse -> check [-> generate], through the cache.

``bbflow check``, ``bbflow build`` and ``bbflow run`` all call
``compile_paths``; it discovers ``.flow`` files (a project folder: those of
its source folder; any other folder: every ``.flow`` file below it; hidden
folders and virtual environments skipped, see ``source.source_files``; a
file: itself), names each module by its path under its source root
(``cell/arm.flow`` -> ``cell.arm``), reads every file, parses it, runs the
checker (``bbflow.compiler.checker.check``), keeping what it established in
``result.facts``, and, with ``generate=True`` and no errors, generates one
Python module per ``.flow`` module (the standard library's included) into
``result.generated``.

With ``use_cache=True`` the on-disk cache (``bbflow.compiler.cache``, in
``.bbflow/cache`` under the project root) works per module. The files are
read and every module's base key is computed from cached scans of its text (a
text never seen is parsed to scan it). The keys of modules that read signals
(agents, ``wait_signal`` steps) add the program's signal table: its digest is
cached under the declaring modules' base keys; when it is not, each declaring
module's resolved signals are looked up under its base key, and the modules
whose signals are missing are checked first (step one, with the other modules
whose checks miss) to give
them. A module whose check is cached under its key is neither parsed nor
checked: its diagnostics are replayed. The modules that still miss are checked
(step two). Each check runs over the modules asked for and what their checks
read: their import closure (the whole program for a module with syntax errors
or an import that does not resolve); the signals of declaring modules outside
it are given to the checker as resolved (``check(..., declared=...)``), so an
agent is checked with its import closure only. Only the bodies of the modules
asked for are checked (``check(..., bodies=...)``), with those of the
reactors they compose; the rest of the closure is read for its declarations.
A module's diagnostics are taken from a check that judged it and read all it
reads, the others' come from the cache. A check that read the signals for a
module whose key does not add the table (a scan that missed it) is reported
but never stored.
The whole-program checks (a signal declared twice, a signal never used) are
then computed for the whole program from per-module summaries, every run.
Code is generated only for modules whose code is not cached under their key.
``result.cached`` is true when nothing was parsed, checked or generated;
``modules`` and ``facts`` hold only what this run parsed and checked (ask
without the cache when you need all of them).

Without the cache the same steps run with every module missing, so a replay
is byte for byte a cold check: the diagnostics come out in one canonical order
(by file and position, then by content), whichever run found them.

A file or folder inside a project's folder (its source folder or not, as
``examples/demo.flow``) is checked as part of the project: the project's
other files are read too (``result.context``), so that imports resolve as
they do in the project, and only the diagnostics of what was named
are shown. The project file, ``bbflow.toml``, is checked with the program
(``bbflow.compiler.project_check``, BBF701), on every run.

An editor compiles the same program again and again: ``trees`` (a
``ParsedTrees``, kept between runs) hands back the syntax tree of a file
whose name and text were parsed before instead of parsing it again, and
``facts_for`` names files to check even when their check is cached, for
their facts; ``result.module_facts`` gives, for every module checked this
run, the ``Facts`` of the check that established it.

Any exception escaping the parser, the checker or the code generator is a
compiler bug and becomes a BBF900 diagnostic, never a crash (and nothing of
that run is cached). Problems with the paths themselves (missing, unreadable,
not a ``.flow`` file, an unreadable bbflow.toml) are not diagnostics about the
user's program: they raise ``InputError``, which the command line reports as
a usage error (exit 2).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import attrs

from bbflow.compiler import ast
from bbflow.compiler.cache import (
    Cache,
    Entry,
    ModuleCheck,
    Scan,
    SignalEntry,
    base_keys,
    import_closure,
    module_keys,
    sha256,
    signal_table,
    table_digest,
    table_id,
)
from bbflow.compiler.checker import (
    Declared,
    check,
    duplicate_signals,
    handled_signals,
    robot_types,
    signal_entries,
    signal_use,
    unused_signals,
)
from bbflow.compiler.codegen.generated import GeneratedModule, flow_path
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label
from bbflow.compiler.project_check import project_diagnostics
from bbflow.compiler.semantic.facts import Facts
from bbflow.compiler.semantic.modules import PRELUDE, STDLIB_FILE, load_stdlib, stdlib_sources
from bbflow.compiler.source import (
    SUFFIX,
    InputError,
    SourceFile,
    Span,
    normalised,
    read_regular,
    source_files,
    undecodable_at,
)
from bbflow.compiler.syntax.parser import parse_module
from bbflow.project import PROJECT_FILE, Project, ProjectError, ProjectFile, find_project, read_project

T = TypeVar("T")


@attrs.frozen(slots=True)
class SourceUnit:
    """One file to compile: where it is, how to show it, and its module name."""

    path: Path  # resolved, for reading and de-duplication
    display: str  # as the user would write it (relative to the current folder when given so)
    module: str  # dotted module name
    root: Path  # the source root the module name is relative to


@attrs.define
class ParsedTrees:
    """Syntax trees kept between runs (an editor's), by file, module name and text.

    A tree is immutable and what the checker learns goes to side tables, so
    one parse serves every later run that reads the same text under the same
    name. Only the trees of the last run are kept (``compile_paths`` drops the
    others at its end): memory follows the program, not the edits.
    """

    trees: dict[tuple[str, str, str], tuple[ast.Module | None, list[Diagnostic]]] = attrs.Factory(dict)
    used: set[tuple[str, str, str]] = attrs.Factory(set)

    def get(self, key: tuple[str, str, str]) -> tuple[ast.Module | None, list[Diagnostic]] | None:
        found = self.trees.get(key)
        if found is not None:
            self.used.add(key)
        return found

    def put(self, key: tuple[str, str, str], module: ast.Module | None, diags: list[Diagnostic]) -> None:
        self.trees[key] = (module, diags)
        self.used.add(key)

    def settle(self, texts: Mapping[str, str]) -> None:
        """Forget the trees of texts no longer in the program (``texts``: display -> text)."""
        self.trees = {k: v for k, v in self.trees.items() if k in self.used or texts.get(k[0]) == k[2]}
        self.used = set()


@attrs.define
class CompileResult:
    modules: list[ast.Module] = attrs.Factory(list)  # parsed this run, in discovery order (see the docstring)
    sources: dict[str, SourceFile] = attrs.Factory(dict)  # by display path (the spans' ``file``)
    diagnostics: Diagnostics = attrs.Factory(Diagnostics)
    roots: list[Path] = attrs.Factory(list)  # source roots, for resolving imports of unnamed modules
    projects: list[Project] = attrs.Factory(list)
    facts: Facts | None = None  # what the checker established this run (None if it did not run or crashed)
    units: list[SourceUnit] = attrs.Factory(list)  # the files discovered, in order
    generated: list[GeneratedModule] = attrs.Factory(list)  # with generate=True and no errors
    cache: Cache | None = None  # the cache consulted (None without use_cache)
    cached: bool = False  # replayed from the cache: nothing was parsed, checked or generated
    project_files: dict[str, ProjectFile] = attrs.Factory(dict)  # the projects' bbflow.toml, by display path
    #: files read only as part of a project that a file named inside it belongs to: their diagnostics are not shown
    context: set[str] = attrs.Factory(set)
    #: module name -> the facts of the check this run that established it (every module checked this run)
    module_facts: dict[str, Facts] = attrs.Factory(dict)

    @property
    def files(self) -> int:
        """The .flow files given or found, read or not (an unreadable one is still a file checked)."""
        return len(({unit.display for unit in self.units} | set(self.sources)) - self.context)

    @property
    def shown_sources(self) -> dict[str, SourceFile]:
        """The texts diagnostics may point into: the .flow files and the projects' bbflow.toml."""
        return {**self.sources, **{d: SourceFile(d, p.text) for d, p in self.project_files.items()}}

    @property
    def cache_root(self) -> Path:
        """Where ``.bbflow`` goes: the project root if there is one, else the first source root."""
        if self.projects:
            return self.projects[0].root
        return self.units[0].root if self.units else Path.cwd()


def compile_paths(paths: Iterable[str | Path], *, use_cache: bool = False, generate: bool = False,
                  buffers: Mapping[Path, str] | None = None, projects: bool = True,
                  trees: ParsedTrees | None = None, facts_for: Collection[Path] = ()) -> CompileResult:
    """Discover, read, parse and check (and generate); raises InputError only for unusable paths.

    ``buffers``: the texts of files open in an editor, by resolved path; each is
    compiled instead of what is on disk. A buffer named in ``paths`` that is not
    on disk (never saved) is compiled as if it were saved: with its project, its
    module named from the project's source root.
    ``projects=False`` compiles the paths as loose files, whatever ``bbflow.toml``
    is above them (the language server's way to check a file of a broken project).
    ``trees``: syntax trees kept from earlier runs (see the module docstring);
    ``facts_for``: files (resolved paths) to check even if their check is cached.
    """
    buffers = buffers or {}
    given = [Path(p) for p in paths]
    unsaved = {p.resolve() for p in given if not p.exists() and p.resolve() in buffers}
    result = CompileResult()
    result.units = discover(given, result, projects=projects, unsaved=unsaved)
    for unit in result.units:
        buffer = buffers.get(unit.path)
        text = read_source(unit, result.diagnostics) if buffer is None else normalised(buffer)
        if text is not None:
            result.sources[unit.display] = SourceFile(unit.display, text)
    if use_cache and result.units:
        result.cache = Cache.for_project(result.cache_root)
    with _parsed_trees_out_of_gc() as settle:
        _Run(result, generate, settle, trees=trees, facts_for={p.resolve() for p in facts_for}).run()
    if trees is not None:
        trees.settle({d: s.text for d, s in result.sources.items()})
    return result


@contextlib.contextmanager
def _parsed_trees_out_of_gc() -> Iterator[Callable[[], None]]:
    """Keep the cyclic collector off the trees already parsed during one run.

    A compilation builds millions of long-lived objects (syntax trees) that
    the collector would otherwise scan again and again as the heap grows:
    about a fifth of the time of a 100k-line check. After each parsed module,
    ``settle()`` freezes what exists (``gc.freeze``); at the end everything is
    handed back to the collector. A process that froze objects itself (before
    forking, say) is left alone.
    """
    if gc.get_freeze_count():
        yield lambda: None
        return
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


@attrs.define
class _Run:
    """One run of the pipeline over the program of ``result`` (the steps of the module docstring)."""

    result: CompileResult
    generate: bool
    settle: Callable[[], None] = lambda: None  # called after each parsed module (see _parsed_trees_out_of_gc)
    trees: ParsedTrees | None = None  # syntax trees of earlier runs, to reuse
    facts_for: set[Path] = attrs.Factory(set)  # files checked even when their check is cached
    #: the program: module -> text, the standard library first, then the files as discovered
    texts: dict[str, str] = attrs.Factory(dict)
    files: dict[str, str] = attrs.Factory(dict)  # module -> the file its spans name
    own: dict[str, SourceUnit] = attrs.Factory(dict)  # the program's modules read from files
    shadowed: list[SourceUnit] = attrs.Factory(list)  # files whose module name another file (or std) has
    cache: Cache | None = None  # None when this run cannot be cached (an unreadable file, a shadowed name)
    exact: bool = True  # what this run found may be stored (no crash, nothing outside the program's files)
    crashed: bool = False  # the checker crashed: what it found is reported as is
    parsed: dict[str, ast.Module | None] = attrs.Factory(dict)  # own modules parsed (None: the parser crashed)
    parse_diags: dict[str, list[Diagnostic]] = attrs.Factory(dict)
    scans: dict[str, Scan] = attrs.Factory(dict)
    base: dict[str, str] = attrs.Factory(dict)  # module -> its base key (see bbflow.compiler.cache)
    #: a signal-declaring module -> its resolved signals (cached, or found by this run's step one),
    #: read only when the table is not cached or a check runs
    entries: dict[str, tuple[SignalEntry, ...] | None] = attrs.Factory(dict)
    fresh: list[str] = attrs.Factory(list)  # declaring modules whose signals step one found
    table: tuple[str, str] | None = None  # (table_id, table_digest) made this run, to store
    checks: dict[str, ModuleCheck] = attrs.Factory(dict)  # cached checks, then this run's too
    #: module -> its diagnostics and the facts of a check this run that read all its check reads
    found: dict[str, list[Diagnostic]] = attrs.Factory(dict)
    facts_of: dict[str, Facts] = attrs.Factory(dict)
    code: dict[str, Entry] = attrs.Factory(dict)

    def run(self) -> None:
        result = self.result
        self._program()
        keys = self._lookup() if self.cache is not None else {}
        missed = self._missed() if not self.crashed else []
        later = [name for name in missed if name not in self.found]
        facts = self._check(later) if later else None
        for unit in result.units:
            if self.own.get(unit.module) is unit and self.parsed.get(unit.module) is not None:
                result.modules.append(self.parsed[unit.module])  # type: ignore[arg-type]
            elif unit in self.shadowed:
                module = self._parse(unit)
                if module is not None:
                    result.modules.append(module)
        if self.crashed:
            return  # what the checker found is reported as is, nothing is stored or generated
        result.facts = facts or next(reversed(self.facts_of.values()), None)
        result.module_facts = dict(self.facts_of)
        for name in missed:
            self.checks[name] = self._module_check(name)
        if self.cache is not None and self.exact:
            for name in self.fresh:
                self.cache.put_signals(self.base[name], self.entries[name] or ())
            if self.table is not None:
                self.cache.put_table(*self.table)
            for name in missed:
                self.cache.put_check(keys[name], self.files, self.checks[name])
        self._report()
        if self.generate and not result.diagnostics.has_errors():
            generated = _guarded(result.diagnostics, _first_file(result), "code generator",
                                 lambda: self._generate(keys))
            result.generated = generated or []
        result.cached = self.cache is not None and not missed and not self.facts_of

    # --- the program and its keys --------------------------------------------------------

    def _program(self) -> None:
        """The modules of the program, their texts and files; whether this run may use the cache."""
        result = self.result
        std = stdlib_sources()
        self.texts.update(std)
        self.files.update({name: STDLIB_FILE + flow_path(name) for name in std})
        first = {module_identity(name): file for name, file in self.files.items()}
        for unit in result.units:
            source = result.sources.get(unit.display)
            if source is None:
                continue
            identity = module_identity(unit.module)
            if identity in first:
                self.shadowed.append(unit)  # the checker sees the first module of a name only
                _twin(unit, identity, first[identity], result.diagnostics)
                continue
            first[identity] = unit.display
            self.own[unit.module] = unit
            self.texts[unit.module] = source.text
            self.files[unit.module] = unit.display
        if result.cache is not None and not self.shadowed and len(result.sources) == len(result.units):
            self.cache = result.cache

    def _lookup(self) -> dict[str, str]:
        """Every module's key and the checks and code cached under them (step one on the way, if needed)."""
        assert self.cache is not None
        cache = self.cache
        if not self._scan_all():
            self.cache = None  # a file the parser crashed on: this run is checked whole and not cached
            return {}
        self.base = base = base_keys(self.texts, self.scans)
        for name in self.texts:
            if not self.scans[name].reads_signals:  # its key is its base key
                self._cached_check(name, base[name])
        tid = table_id(base, self.scans)
        digest = cache.table(tid)
        if digest is None:
            self._read_entries()
            self.fresh = [name for name, entries in self.entries.items() if entries is None]
            if self.fresh:  # step one
                # with no declaration's signals cached (a cold cache, a new compiler), no agent's check is either
                agents = len(self.fresh) == len(self.entries)
                facts = self._check([name for name in self.texts if name in self.fresh or (
                    name not in self.checks and (agents or not self.scans[name].reads_signals))])
                if facts is None:
                    return {}
                for name in self.fresh:
                    self.entries[name] = signal_entries(facts.modules[name], facts)
            digest = table_digest(signal_table({name: entries or () for name, entries in self.entries.items()}))
            self.table = (tid, digest)
        keys = module_keys(base, self.scans, digest)
        for name in self.texts:
            if self.scans[name].reads_signals:
                self._cached_check(name, keys[name])
        if self.generate and not self._replayed_errors():
            for name in self.texts:
                entry = cache.get(keys[name])
                if entry is not None:
                    self.code[name] = entry
        return keys

    def _scan_all(self) -> bool:
        """Every module's scan, cached or made now; False if the parser crashed on a file."""
        assert self.cache is not None
        for name, text in self.texts.items():
            scan = self.cache.scan(text)
            if scan is None and name in self.own:
                module = self._parse(self.own[name])
                if module is None:
                    continue
                scan = self._scan(module, any(d.is_error for d in self.parse_diags[name]))
                self.cache.put_scan(text, scan)
            if scan is not None:
                self.scans[name] = scan
        if any(name not in self.scans for name in self.texts):
            self._scan_stdlib()
        return all(name in self.scans for name in self.texts)

    def _read_entries(self) -> None:
        """The resolved signals of every declaring module not read yet, from the cache (None on a miss)."""
        assert self.cache is not None
        for name in self.texts:
            if self.scans[name].signals and name not in self.entries:
                entries = self.cache.signals(self.base[name])
                texts = tuple(site.text for site in self.scans[name].signals)
                ok = entries is not None and tuple(e.text for e in entries) == texts
                self.entries[name] = entries if ok else None

    def _cached_check(self, name: str, key: str) -> None:
        assert self.cache is not None
        found = self.cache.check(key, self.files)
        if found is not None:
            self.checks[name] = found

    def _scan_stdlib(self) -> None:
        """Scan the standard library's modules (once per compiler: the scans are cached)."""
        assert self.cache is not None
        diags = Diagnostics()
        for module in load_stdlib(diags):
            scan = self._scan(module, any(d.is_error and d.span.file == module.file for d in diags))
            self.cache.put_scan(self.texts[module.name], scan)
            self.scans[module.name] = scan

    @staticmethod
    def _scan(module: ast.Module, broken: bool) -> Scan:
        return Scan.of(module, broken, () if module.name == PRELUDE else (PRELUDE,))

    def _missed(self) -> list[str]:
        """The modules to check: those whose check is not cached, and for code, those whose code is not."""
        code_too = self.generate and self.cache is not None and not self._replayed_errors()
        wanted = {name for name, unit in self.own.items() if unit.path in self.facts_for}
        return [name for name in self.texts
                if name not in self.checks or (code_too and name not in self.code) or name in wanted]

    def _replayed_errors(self) -> bool:
        """Has a cached check an error (so that no code will be generated this run)?"""
        return any(d.is_error for c in self.checks.values() for d in c.diagnostics)

    # --- checking ------------------------------------------------------------------------

    def _needed(self, names: list[str]) -> set[str]:
        """The modules the checks of ``names`` read, signals aside (see the module docstring)."""
        if self.cache is None or any(self._reads_everything(n) for n in names):
            return set(self.texts)
        return import_closure(names, self.scans)

    def _reads_everything(self, name: str) -> bool:
        """Does the check of ``name`` read the whole program (syntax errors, an import that does not resolve)?"""
        scan = self.scans[name]
        return scan.broken or any(m not in self.texts for m in scan.imports)

    def _check(self, names: list[str]) -> Facts | None:
        """Check ``names`` with what they read: the diagnostics and facts of every module of the check
        that read all it reads go to ``found`` and ``facts_of``. None if the checker crashed (reported).

        A declaring module whose resolved signals are not cached (a damaged entry) joins the check."""
        if self.cache is not None:
            self._read_entries()
            names = [*names, *(n for n, entries in self.entries.items() if entries is None and n not in names)]
        needed = self._needed(names)
        whole = len(needed) == len(self.texts)
        modules = []
        diags = Diagnostics()
        for name, unit in self.own.items():
            if name in needed:
                module = self._parse(unit)
                diags.extend(self.parse_diags[name])
                if module is not None:
                    modules.append(module)
                else:
                    self.exact = False
        declared = None if whole else self._declared(needed)
        # the bodies checked: those asked for (with the reactors they compose), unless the check is of everything
        partial = self.cache is not None and not any(self._reads_everything(n) for n in names)
        bodies = set(names) if partial else None
        facts = _guarded(diags, _first_file(self.result, modules), "checker",
                         lambda: check(modules, diags, program_wide=False, declared=declared, bodies=bodies))
        if facts is None:
            self.exact = False
            self.crashed = True
            self.result.diagnostics.extend(_canonical([*self._replayed(), *diags]))
            return None
        if self.cache is None:
            for name, module in facts.modules.items():
                self.scans[name] = self._scan(module, name in facts.broken)
        # the modules this check judged: those asked for, or all of them (a module the parser crashed on
        # is not in facts)
        taken = {name for name in (names if partial else [*facts.modules, *names])
                 if name not in self.found and (whole or not self._reads_everything(name))}
        if any(not self.scans[name].reads_signals for name in taken & facts.signal_readers):
            self.exact = False  # a check read signals that its module's key does not cover: never stored
        owner = {file: name for name, file in self.files.items()}
        for name in taken:
            self.found[name] = []
            self.facts_of[name] = facts
        for d in diags:
            of = owner.get(d.span.file)
            if of is None:
                self.exact = False  # about no module of the program: reported, never stored
                self.result.diagnostics.add(d)
            elif of in taken:
                self.found[of].append(d)
        return facts

    def _declared(self, needed: set[str]) -> Declared:
        """The program's signal-declaring modules, with the resolved signals of those outside ``needed``."""
        return {name: None if name in needed or name not in self.own else
                tuple(zip(self.scans[name].in_file(self.files[name]), self.entries[name] or ()))
                for name in self.texts if self.scans[name].signals}

    def _module_check(self, name: str) -> ModuleCheck:
        """What this run's check found about ``name`` (one that read all its check reads)."""
        facts = self.facts_of[name]
        module = facts.modules.get(name)
        if module is None:
            return ModuleCheck(tuple(_canonical(self.found[name])))
        routes, emitted = signal_use(module, facts)
        return ModuleCheck(tuple(_canonical(self.found[name])), routes, emitted, robot_types(module, facts))

    def _parse(self, unit: SourceUnit) -> ast.Module | None:
        """The module of ``unit``, parsed once per run (its diagnostics in ``parse_diags``)."""
        if unit.module in self.parsed and self.own.get(unit.module) is unit:
            return self.parsed[unit.module]
        source = self.result.sources[unit.display]
        key = (unit.display, unit.module, source.text)
        kept = self.trees.get(key) if self.trees is not None else None
        if kept is not None:
            module, items = kept
        else:
            diags = Diagnostics()
            module = _guarded(diags, unit.display, "parser", lambda: parse_module(source, unit.module, diags))
            items = diags.items
            self.settle()
            if self.trees is not None and not any(d.code == codes.BBF900.code for d in items):
                self.trees.put(key, module, items)
        if self.own.get(unit.module) is unit:
            self.parsed[unit.module] = module
            self.parse_diags[unit.module] = items
        else:
            self.result.diagnostics.extend(items)  # a shadowed file: only its syntax is checked
        return module

    def _replayed(self) -> list[Diagnostic]:
        return [d for c in self.checks.values() for d in c.diagnostics]

    def _report(self) -> None:
        """Every module's diagnostics and the whole-program checks', in the canonical order."""
        program = Diagnostics()
        sites = {name: self.scans[name].in_file(self.files[name]) for name in self.texts if name in self.scans}
        duplicate_signals([site for declared in sites.values() for site in declared], program)
        declared = {site.text for found in sites.values() for site in found}
        used = handled_signals(declared, {p for c in self.checks.values() for p in c.routes})
        used.update(s for c in self.checks.values() for s in c.emitted)
        broken = [name for name, scan in self.scans.items() if scan.broken]
        unused_signals(sites, used, broken, program)
        complete = all(name in self.scans and not self.scans[name].broken for name in self.texts)
        types = {f"{name}.{robot.name}": robot for name, check in self.checks.items() for robot in check.robots}
        for display, read in self.result.project_files.items():
            program.extend(project_diagnostics(read, display, self.scans if complete else None, types))
        diags = self.result.diagnostics
        context = self.result.context
        diags.items = _canonical(d for d in [*diags.items, *self._replayed(), *program] if d.span.file not in context)

    # --- generating ----------------------------------------------------------------------

    def _generate(self, keys: dict[str, str]) -> list[GeneratedModule]:
        """Code for every module of a program that checked without errors (cached code reused)."""
        from bbflow.compiler.codegen.generate import generate_module  # only here: a check generates nothing

        out = []
        for name in sorted(self.texts):
            text = self.texts[name]
            entry = self.code.get(name)
            if entry is not None:
                out.append(GeneratedModule(name, flow_path(name), sha256(text), entry.code, entry.linemap))
                continue
            facts = self.facts_of.get(name)
            assert facts is not None, f"{name}: neither cached nor checked"
            gen = generate_module(facts.modules[name], facts, text)
            out.append(gen)
            if self.cache is not None:
                self.cache.put(keys[name], Entry(gen.code, gen.linemap))
        return out


def _canonical(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """By file and position, then by content: the same list whichever run found each diagnostic."""
    def order(d: Diagnostic) -> tuple[object, ...]:
        return (_at(d.span), d.severity.value, d.code, d.message,
                tuple((_at(lb.span), lb.message) for lb in d.labels), d.notes, d.help or "")

    return sorted(diags, key=order)


def _at(span: Span) -> tuple[str, int, int, int, int]:
    return (span.file, span.line, span.column, span.end_line, span.end_column)


# --- discovering and reading ---------------------------------------------------------------


def discover(paths: Iterable[str | Path], result: CompileResult, *, projects: bool = True,
             unsaved: Collection[Path] = ()) -> list[SourceUnit]:
    """The files to compile, each once, in the order given (folders sorted).

    A file inside a project's folder is checked as part of it: the project's
    other files are read too (as ``result.context``, their diagnostics not shown).
    ``unsaved``: files (resolved paths) not on disk that are named anyway (an editor's new buffers)."""
    units: dict[Path, SourceUnit] = {}
    named: set[Path] = set()
    for given in paths:
        for unit, shown in _units_of(Path(given), result, projects, unsaved):
            units.setdefault(unit.path, unit)
            if shown:
                named.add(unit.path)
    result.context = {unit.display for path, unit in units.items() if path not in named}
    return list(units.values())


def _units_of(given: Path, result: CompileResult, projects: bool = True,
              unsaved: Collection[Path] = ()) -> list[tuple[SourceUnit, bool]]:
    """The files ``given`` names, each with whether it was named (not only read as part of its project)."""
    if not given.exists() and given.resolve() not in unsaved:
        raise InputError(f"{given}: no such file or folder")
    if given.is_file() and given.name == PROJECT_FILE:
        given = given.parent
    project = _project_of(given, result) if projects else None
    if given.is_dir():
        top = project.source_dir if project and (given / PROJECT_FILE).is_file() else given.resolve()
        files = source_files(top)
        if not files and not any(read.problems for read in result.project_files.values() if read.project is project):
            raise InputError(f"{given}: no {SUFFIX} files found")
    else:
        if given.suffix != SUFFIX:
            raise InputError(f"{given}: not a {SUFFIX} file")
        top = given.resolve()
        files = [top]
    inside = project is not None and _is_under(top, project.source_dir)
    root = project.source_dir if project and inside else top if given.is_dir() else top.parent
    # a file or folder in a project's folder is checked as part of the project (its imports resolve there, as
    # in an editor), with the project's files in the project's order, so that "first declared" means what it
    # means for the project; one outside the source folder (`examples/demo.flow`) is named from its own
    # folder (`demo`), as `bbflow check . examples/demo.flow` names it
    named = set(files)
    if project:
        everything = source_files(project.source_dir)
        files = [*everything, *(f for f in files if f not in set(everything))]  # (a named file in a hidden folder)
    roots = {f: project.source_dir if project and _is_under(f, project.source_dir) else root for f in files}
    for folder in roots.values():
        if folder not in result.roots:
            result.roots.append(folder)
    return [(SourceUnit(f, _display(f, given), module_name(f, roots[f]), roots[f]), f in named) for f in files]


def _project_of(given: Path, result: CompileResult) -> Project | None:
    folder = find_project(given)
    if folder is None:
        return None
    for known in result.projects:
        if known.root == folder:
            return known
    try:
        read = read_project(folder)
    except ProjectError as e:
        raise InputError(str(e)) from e
    result.projects.append(read.project)
    result.project_files[_display(read.file, given)] = read
    return read.project


def module_identity(name: str) -> str:
    """What a module name is, once generated: ``cell.__init__`` is the package ``cell`` (as ``cell.flow``
    is), and ``a.b`` from ``a.b.flow`` is ``a.b`` from ``a/b.flow``."""
    return name.removesuffix(".__init__") if name != "__init__" else name


def _twin(unit: SourceUnit, identity: str, other: str, diags: Diagnostics) -> None:
    """BBF105: ``unit`` is a module that another file (or the standard library) already is."""
    std = other.startswith(STDLIB_FILE)
    diags.error(codes.BBF105, f"`{unit.display}` and `{other}` are both module `{identity}`",
                Span.point(unit.display, 1, 1),
                labels=(Label(Span.point(other, 1, 1), f"module `{identity}` is this file"),),
                notes=(("the standard library's modules cannot be replaced by a project's" if std else
                        "only the first file would be checked and built; the other would be silently ignored"),),
                help="rename or move one of the two files")


def module_name(file: Path, root: Path) -> str:
    """``ROOT/cell/arm.flow`` -> ``cell.arm``."""
    return ".".join(file.relative_to(root).with_suffix("").parts)


def read_source(unit: SourceUnit, diags: Diagnostics) -> str | None:
    """The file's text with newlines normalised; None (and a BBF001) if it is not UTF-8."""
    data = read_regular(unit.path, unit.display)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, column = undecodable_at(data, e)
        diags.error(codes.BBF001, f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                    Span.point(unit.display, line, column), help="save the file as UTF-8")
        return None
    return normalised(text)


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
    except Exception as e:
        import traceback  # only for a crash

        frame = traceback.extract_tb(e.__traceback__)[-1]
        diags.error(
            codes.BBF900, f"internal compiler error in the {stage}: {type(e).__name__}: {e}",
            Span.point(file, 1, 1),
            notes=(f"raised at {Path(frame.filename).name}:{frame.lineno} in {frame.name}",),
            help="this is a bug in bbflow, not in your program; please report it with this file",
        )
        return None


def _first_file(result: CompileResult, modules: list[ast.Module] | None = None) -> str:
    """Where a BBF900 about the whole program points: its first file."""
    modules = result.modules if modules is None else modules
    return modules[0].file if modules else next(iter(result.sources), "<input>")
