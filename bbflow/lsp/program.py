"""The program an open file belongs to, compiled with the editor's buffers through the compiler's pipeline.

A file in a project (a ``bbflow.toml`` at or above it) is compiled with the
whole project, exactly as ``bbflow check PROJECT`` would, through the
project's per-module cache (``compile_paths(use_cache=True)``): after an edit,
only the modules whose check depends on the edited file are checked again;
the others' diagnostics are replayed. A file outside any project is compiled
alone (never the folder tree around it). Every file is read from the editor's
buffer when it is open there, from disk otherwise; a buffer that was never
saved is compiled too, and so is an open file in the project folder that is none of its sources.

The editor needs more than diagnostics: the syntax tree and the checker's
facts of every file (types, references). A run hands back those of the
modules it checked (``CompileResult.module_facts``); a ``Program`` keeps, for
every file, the ``View`` of the run that last checked it, which stays true as
long as the texts that check read are unchanged (``compile_program`` checks
that and asks the pipeline to check again any file whose view went stale or
is missing). Syntax trees of unchanged files are reused between runs
(``ParsedTrees``). While a file has a syntax error its bodies are not
checked, so ``Program.last_good`` answers about it from its last check
without one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from bbflow.compiler import (
    SUFFIX,
    CompileResult,
    Diagnostics,
    Facts,
    InputError,
    ParsedTrees,
    SourceFile,
    Span,
    ast,
    compile_paths,
)
from bbflow.lsp.locate import in_stdlib
from bbflow.project import find_project


@attrs.frozen(slots=True)
class View:
    """One file as a check saw it: its syntax tree, the facts of that check, and the texts the check read."""

    module: ast.Module
    facts: Facts
    read: Mapping[str, str]  # display path -> text, of every file of the run that made this view

    @property
    def text(self) -> str:
        """The text of the file this view is of, as its check read it."""
        return self.read[self.module.file]

    @property
    def parsed(self) -> bool:
        """Did the file parse (no syntax error stopped the check of its bodies)?"""
        return self.module.name not in self.facts.broken

    def holds(self, texts: Mapping[str, str]) -> bool:
        """Is this view still true for a program of ``texts`` (display -> text)?"""
        return all(self.read.get(m.file) == texts.get(m.file) for m in self.facts.modules.values()
                   if m.file in self.read or m.file in texts)


@attrs.define
class Program:
    """A compiled program: the last run's result, each file's text, and each file's last true view."""

    scope: Path  # a project root, or a loose file
    result: CompileResult
    texts: dict[Path, str] = attrs.Factory(dict)  # every compiled .flow file's text, by resolved path
    views: dict[Path, View] = attrs.Factory(dict)  # by resolved path
    project_files: dict[Path, str] = attrs.Factory(dict)  # the bbflow.toml read, its text by resolved path
    good: dict[Path, View] = attrs.Factory(dict)  # by resolved path: the last view of the file that parsed

    @property
    def files(self) -> list[Path]:
        return list(self.texts)

    def module(self, path: Path) -> ast.Module | None:
        """The parsed module of ``path`` (None if it is not part of the program)."""
        view = self.views.get(path)
        return view.module if view is not None else None

    def facts(self, path: Path) -> Facts | None:
        """The checker's facts about ``path`` (and what its check read)."""
        view = self.views.get(path)
        return view.facts if view is not None else None

    def is_current(self, path: Path, text: str) -> bool:
        """True when ``path`` was compiled with exactly ``text``."""
        return self.texts.get(path) == text

    def broken(self) -> list[Path]:
        """The files whose latest check met a syntax error (their bodies were not checked)."""
        return [p for p in self.texts if (view := self.views.get(p)) is None or not view.parsed]

    def last_good(self) -> Program:
        """This program as the last good check of each file saw it: a file whose latest check met a
        syntax error (so that its bodies were not checked) is taken, with its text, from the last
        check where it parsed. What hover, definition and completion answer from while you type."""
        older = {p: v for p, v in self.good.items() if p in self.texts and self.views.get(p) is not v}
        if not older:
            return self
        shown = {v.module.file for v in older.values()}
        result = attrs.evolve(self.result, diagnostics=Diagnostics(
            [d for d in self.result.diagnostics.items if d.span.file not in shown]))
        return attrs.evolve(self, result=result, texts={**self.texts, **{p: v.text for p, v in older.items()}},
                            views={**self.views, **older})


def scope_of(path: Path) -> Path:
    """What ``path`` is compiled with: its project's root, or the file alone."""
    return find_project(path) or path


def compile_program(path: Path, buffers: Mapping[Path, str], previous: Program | None = None,
                    trees: ParsedTrees | None = None) -> Program:
    """Compile the program of ``path`` (resolved), reading open files from ``buffers`` (resolved paths).

    ``previous``: the last program of the same scope, whose views are kept
    where they still hold; ``trees``: syntax trees kept between runs. Never
    raises: an exception anywhere in here is a compiler bug, reported as one
    BBF900 at the start of ``path`` (the server must stay up).
    """
    scope = scope_of(path)
    try:
        program = _compile(scope, path, buffers, previous, trees, ())
        stale = [f for f in program.texts if f not in program.views]
        if stale:  # replayed from the cache with no true view in hand (a first run, an edit undone)
            program = _compile(scope, path, buffers, program, trees, stale)
        return program
    except Exception as e:
        result = CompileResult()
        result.diagnostics.error(
            "BBF900", f"internal compiler error: {type(e).__name__}: {e}", Span.point(str(path), 1, 1),
            help="this is a bug in bbflow, not in your program; please report it with this file")
        text = buffers.get(path, "")
        result.sources[str(path)] = SourceFile(str(path), text)
        return Program(scope, result, {path: text})


def _compile(scope: Path, path: Path, buffers: Mapping[Path, str], previous: Program | None,
             trees: ParsedTrees | None, facts_for: Sequence[Path]) -> Program:
    if scope.is_dir():
        # the open files are named too: one never saved, or outside the source folder (`examples/`), or in
        # a hidden folder, is no source of the project, yet the editor shows it and wants its diagnostics
        opened = [p for p in buffers if p.suffix == SUFFIX and scope in p.parents and scope_of(p) == scope
                  and not in_stdlib(p)]  # (the library of a virtual environment in the project folder)
        try:
            result = compile_paths([scope, *opened], use_cache=True, buffers=buffers, trees=trees,
                                   facts_for=facts_for)
        except InputError:  # nothing saved there yet, or an unreadable project file: the open files alone
            alone = list(dict.fromkeys(p for p in (path, *opened) if p in buffers or p.is_file()))
            if not alone:  # the file asked for is gone from disk, and no file of the scope is open
                return Program(scope, CompileResult(), {})
            result = compile_paths(alone, buffers=buffers, projects=False, trees=trees)
    else:
        result = compile_paths([path], buffers=buffers, trees=trees)
    by_display = {unit.display: unit.path for unit in result.units}
    read = {display: source.text for display, source in result.sources.items()}
    texts = {by_display[d]: text for d, text in read.items() if d in by_display}
    views: dict[Path, View] = {}
    if previous is not None and set(previous.texts) == set(texts):  # a file added or gone: all checked anew
        views = {p: v for p, v in previous.views.items() if p in texts and v.holds(read)}
    for unit in result.units:
        facts = result.module_facts.get(unit.module)
        module = facts.modules.get(unit.module) if facts is not None else None
        if facts is not None and module is not None and module.file == unit.display:
            views[unit.path] = View(module, facts, read)
    projects = {f.file.resolve(): f.text for f in result.project_files.values()}
    good = {p: v for p, v in previous.good.items() if p in texts} if previous is not None else {}
    good.update((p, v) for p, v in views.items() if v.parsed)
    return Program(scope, result, texts, views, projects, good)
