"""What the "Add `undo`" quick fix inserts after a step that lacks one (BBF401).

When the step calls a command C and the robot declares a command X whose
default undo calls C (``command close_gripper(...) undo open_gripper()``: the
two undo each other), the fix is the call ``undo X(...)``, each of X's
parameters taken from the step:

- the step's argument that X's undo passes on to C (``undo C(p: args.q)``
  makes ``q`` the step's argument ``p``), else the step's argument of the
  same name;
- else nothing, when the parameter has a default;
- else the step's own result, when its type is the parameter's.

Otherwise (no such command, a parameter that cannot be derived, or a step
that runs an action or a composed reactor) the fix is a snippet whose first
tab stop offers the robot's commands that change something, those needing no
argument first, and whose second stop is the arguments. A client without
snippet edits gets ``text``, the snippet with its first choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs

from bbflow.compiler import CallKind, Facts, Span, ast
from bbflow.lsp.program import Program

__all__ = ["UndoInsert", "undo_insert"]


@attrs.frozen(slots=True)
class UndoInsert:
    title: str
    text: str  # what to insert after the step (plain text)
    snippet: str | None = None  # the same as an LSP snippet, for clients that take snippet edits


def undo_insert(program: Program, path: Path, reactor: ast.ReactorDecl | None,
                step: ast.StepStmt) -> UndoInsert | None:
    """The undo to insert after ``step`` (of ``reactor``, in the file ``path``), or None when its robot has no
    command that could undo it."""
    facts = program.facts(path)
    if facts is None:
        return None
    robot = _robot(facts, reactor)
    target = facts.call(step.call)
    if robot is not None and target is not None and target.kind is CallKind.COMMAND:
        for inverse in _inverses(robot, target.decl):
            args = _derived(program, facts, step, target.decl, inverse)
            if args is not None:
                call = f"{inverse.name.name}({', '.join(args)})"
                return UndoInsert(f"Add `undo {call}`", f" undo {call}")
    commands = [c for c in robot.commands if not c.readonly] if robot is not None else []
    if not commands:
        return None
    commands.sort(key=lambda c: any(p.default is None for p in c.params))  # stable: declaration order otherwise
    names = [c.name.name for c in commands]
    return UndoInsert("Add `undo`", f" undo {names[0]}()", f" undo ${{1|{','.join(names)}|}}($2)")


def _robot(facts: Facts, reactor: ast.ReactorDecl | None) -> ast.RobotDecl | None:
    robot = facts.decls.get(facts.robots_of.get(reactor, "")) if reactor is not None else None
    return robot if isinstance(robot, ast.RobotDecl) else None


def _inverses(robot: ast.RobotDecl, command: ast.CommandDecl) -> Iterator[ast.CommandDecl]:
    """The commands whose declared default undo calls ``command``."""
    for other in robot.commands:
        undo = other.undo
        if undo is not None and isinstance(undo.callee, ast.Name) and undo.callee.ident.name == command.name.name:
            yield other


def _derived(program: Program, facts: Facts, step: ast.StepStmt, command: ast.CommandDecl,
             inverse: ast.CommandDecl) -> list[str] | None:
    """``inverse``'s arguments taken from ``step`` (a call of ``command``); None if one cannot be."""
    given = {a.name.name: a.value for a in step.call.args if a.name is not None}
    given.update({command.params[i].name.name: a.value for i, a in enumerate(step.call.args)
                  if a.name is None and i < len(command.params)})
    passed_on = {}  # inverse's parameter -> command's parameter, from `undo command(p: args.q)`
    assert inverse.undo is not None
    for arg in inverse.undo.args:
        value = arg.value
        if arg.name is not None and isinstance(value, ast.Attr) and isinstance(value.obj, ast.Name) \
                and value.obj.ident.name == "args":
            passed_on[value.name.name] = arg.name.name
    result_type = facts.decl_types.get(step)
    out: list[str] = []
    for param in inverse.params:
        name = param.name.name
        source = given.get(passed_on.get(name, name))
        if source is not None:
            out.append(f"{name}: {_text(program, source.span)}")
        elif param.default is not None:
            continue
        elif result_type is not None and facts.decl_types.get(param) == result_type:
            out.append(f"{name}: {step.name.name}")
        else:
            return None
    return out


def _text(program: Program, span: Span) -> str:
    lines = program.result.sources[span.file].text.split("\n")[span.line - 1:span.end_line]
    if len(lines) == 1:
        return lines[0][span.column - 1:span.end_column - 1]
    return "\n".join([lines[0][span.column - 1:], *lines[1:-1], lines[-1][:span.end_column - 1]])
