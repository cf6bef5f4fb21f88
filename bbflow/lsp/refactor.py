"""Find references, rename, and quick fixes (code actions) for ``bbflow lsp``.

References are found through go-to-definition: every name in the program's
files whose definition is the one under the cursor is a reference (its
declaration included), so whatever ``definition`` resolves (steps, lets,
inputs, state fields, route bindings, types, enum members, commands,
actions, reactors, agents, robots, signals) can be found and renamed. A
signal type is one dotted token: renaming a signal replaces it whole.

Quick fixes: every "did you mean `X`?" of a diagnostic becomes "Replace with
`X`"; a BBF401 (an effectful step without undo) offers "Add `irreversible`"
(with a reason to fill in) and "Add `undo`" (``bbflow.lsp.undo_fix``: the
command the robot declares as the inverse of the step's, else a snippet to
choose one of the robot's commands).
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from bbflow.compiler import ast
from bbflow.lsp.analysis import EditorDiagnostic, definition, definition_of
from bbflow.lsp.complete import keyword_terminals
from bbflow.lsp.locate import Location, Pos, Range, name_paths, path_at
from bbflow.lsp.program import Program
from bbflow.lsp.undo_fix import undo_insert

__all__ = ["Fix", "RenameError", "quick_fixes", "references", "rename"]

#: a name as the grammar spells it: ASCII only (``\w`` alone also takes ``é`` and ``٣``, which no name can hold)
_WORD = re.compile(r"[A-Za-z_]\w*", re.ASCII)
_NAME = re.compile(r"[A-Za-z_]\w*\Z", re.ASCII)
_SIGNAL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z", re.ASCII)
_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`")
_BACKTICKED = re.compile(r"`([^`]+)`")


class RenameError(Exception):
    """A rename that cannot be done: nothing under the cursor, or a new name that is not valid."""


@attrs.frozen(slots=True)
class Fix:
    title: str
    path: Path
    range: Range
    new_text: str
    diagnostic: EditorDiagnostic
    preferred: bool = False
    snippet: str | None = None  # ``new_text`` as an LSP snippet (tab stops), for clients that take snippet edits


def references(program: Program, path: Path, pos: Pos) -> list[Location]:
    """Every place (declaration included) that names what is under the cursor, file by file in order."""
    targets = definition(program, path, pos)
    if not targets:
        return []
    spelled = None  # what `result` and `error` stand for is the call: the other of the two is not a reference
    if path in program.texts and not _is_name(program, targets[0]):
        line = program.texts[path].split("\n")[pos.line]
        spelled = next((m.group() for m in _WORD.finditer(line) if m.start() <= pos.character <= m.end()), None)
    found: dict[tuple[Path, Range], Location] = {}
    for file in program.texts:  # every name checked once, in one walk of each tree (not one per word)
        module = program.module(file)
        for node_path in name_paths(module) if module is not None else ():
            node = node_path[-1]
            if (spelled is not None and getattr(node, "name", None) != spelled) \
                    or definition_of(program, file, node_path) != targets:
                continue
            where = Range.of(node.span)
            found.setdefault((file, where), Location(file, where))
    return sorted(found.values(), key=lambda loc: (str(loc.path), loc.range.start.line, loc.range.start.character))


def rename(program: Program, path: Path, pos: Pos, new_name: str) -> list[Location]:
    """The places to replace with ``new_name``; raises ``RenameError`` when the rename is not possible."""
    places = references(program, path, pos)
    if not places:
        raise RenameError("nothing to rename here (put the cursor on a name)")
    here = program.module(path)
    at = path_at(here, pos) if here is not None else []
    if len(at) > 1 and isinstance(at[-2], (ast.FromImport, ast.ModuleImport)) and at[-1] in at[-2].module:
        raise RenameError("a module is renamed by renaming its file (its name is its path under `source`)")
    target = definition(program, path, pos)[0]
    if target.path not in program.texts:
        raise RenameError("it is declared in the standard library, which cannot be edited")
    if not _is_name(program, target):
        raise RenameError("nothing to rename here: `result` and `error` are the call's, not names you declared")
    module = program.module(target.path)
    declared = path_at(module, target.range.start) if module is not None else []
    if len(declared) > 1 and isinstance(declared[-2], ast.FieldType):
        raise RenameError("a record field cannot be renamed here: its uses (`x.field`, `{field: ...}`) are not "
                          "tracked, so some would be left behind")
    signal = bool(declared) and isinstance(declared[-1], ast.SignalType)
    valid = _SIGNAL if signal else _NAME
    if not valid.match(new_name) or set(new_name.split(".")) & set(keyword_terminals().values()):
        what = "a signal type such as pick.requested" if signal else "a name (ASCII letters, digits, _) that is not a keyword"
        raise RenameError(f"{new_name!r} is not valid here: expected {what}")
    broken = next(iter(program.broken()), None)
    if broken is not None:  # its bodies were not checked: the uses in them are not known
        raise RenameError(f"{broken.name} has a syntax error: fix it first, or the uses of the name in it "
                          "would be left behind")
    return places


def _is_name(program: Program, target: Location) -> bool:
    """Is ``target`` a name (or signal type) in the program's text, not a call (what `result` stands for)?"""
    r = target.range
    lines = program.texts.get(target.path, "").split("\n")
    return r.start.line == r.end.line < len(lines) and bool(
        _SIGNAL.match(lines[r.start.line][r.start.character:r.end.character]))


def quick_fixes(program: Program, path: Path, diagnostics: list[EditorDiagnostic]) -> list[Fix]:
    """Code actions for ``diagnostics`` of the file at ``path``."""
    fixes: list[Fix] = []
    module = program.module(path)
    lines = (program.texts.get(path) or program.project_files.get(path) or "").split("\n")
    for diag in diagnostics:
        wrong = _misspelled(lines, diag)
        if wrong is not None:  # a suggestion shortened in the message (an enormous name) is not the text to insert
            fixes.extend(Fix(f"Replace with `{suggestion}`", path, wrong, suggestion, diag, preferred=True)
                         for suggestion in dict.fromkeys(_DID_YOU_MEAN.findall(diag.message)) if "..." not in suggestion)
        if diag.code == "BBF401" and module is not None:
            nodes = path_at(module, diag.range.start)
            step = next((n for n in nodes if isinstance(n, ast.StepStmt)), None)
            if step is not None:
                end = Range.of(step.span).end
                at = Range(end, end)
                fixes.append(Fix("Add `irreversible`", path, at, ' irreversible "why it cannot be undone"', diag))
                reactor = next((n for n in nodes if isinstance(n, ast.ReactorDecl)), None)
                undo = undo_insert(program, path, reactor, step)
                if undo is not None:
                    fixes.append(Fix(undo.title, path, at, undo.text, diag, snippet=undo.snippet))
    return fixes


def _misspelled(lines: list[str], diag: EditorDiagnostic) -> Range | None:
    """Where the name a "did you mean" would replace is: the first name in backticks in the diagnostic's
    message found in its range, else after it on its line; None when there is none.

    The range is not always that name: a route's BBF503 covers ``on pick.x``
    (replacing it all dropped the ``on``), a bbflow.toml problem is at its key
    (``interface`` for ``interface = "cell.Amr"``)."""
    r = diag.range
    if r.start.line >= len(lines):
        return None
    complaint = _BACKTICKED.findall(diag.message.split("\n", 1)[0])
    line = lines[r.start.line]
    end = r.end.character if r.end.line == r.start.line else len(line)
    for lo, hi in ((r.start.character, end), (end, len(line))):
        for name in complaint:
            found = re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", line[lo:hi])
            if found is not None:
                return Range(Pos(r.start.line, lo + found.start()), Pos(r.start.line, lo + found.end()))
    return None
