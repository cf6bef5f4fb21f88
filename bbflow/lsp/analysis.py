"""What the editor asks, answered from a compiled program: pure functions, no protocol.

Every function takes a ``Program`` (``bbflow.lsp.program``) or its parts and a
position, and returns plain values (``bbflow.lsp.locate`` ranges, the dataclasses
below); ``bbflow.lsp.server`` turns them into LSP messages. Names and types come
from the checker's ``Facts`` (``refs``, ``calls``, ``types``, ``decl_types``),
never from resolving a name again, except for type names and imports, whose
bindings ``Facts`` does not keep (``locate.global_decl`` follows the
checker's order).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

from bbflow.compiler import CODES, CallKind, Diagnostic, Facts, Ref, RefKind, ast, explain
from bbflow.compiler import types as T
from bbflow.lsp.locate import (
    Location,
    Pos,
    Range,
    contains,
    decl_span,
    file_path,
    global_decl,
    in_stdlib,
    location,
    module_file,
    path_at,
)
from bbflow.lsp.program import Program

CODE_WORD = re.compile(r"BBF\d{3}", re.IGNORECASE)


# --- diagnostics --------------------------------------------------------------------


@attrs.frozen(slots=True)
class Related:
    location: Location
    message: str


@attrs.frozen(slots=True)
class EditorDiagnostic:
    range: Range
    severity: str  # "error" | "warning" | "note"
    code: str
    message: str  # with the help and the notes, one per line
    related: tuple[Related, ...] = ()
    explain: Path | None = None  # the code's explanation page (the text of `bbflow explain CODE`)


def diagnostics_by_file(program: Program) -> dict[Path, list[EditorDiagnostic]]:
    """The program's diagnostics for each of its files (every file present, with [] when it is clean).

    A diagnostic about a file outside the program (the standard library) is
    left out, and so are those of a standard library file opened in the editor
    (checked alone, it declares again what the library declares). The problems
    of the project's ``bbflow.toml`` (BBF701) are diagnostics of that file, at
    the key's line.
    """
    out: dict[Path, list[EditorDiagnostic]] = {path: [] for path in [*program.files, *program.project_files]
                                               if not in_stdlib(path)}
    for diag in program.result.diagnostics.sorted():
        path = file_path(diag.span.file)
        if path is not None and path in out:
            out[path].append(editor_diagnostic(diag))
    return out


def editor_diagnostic(diag: Diagnostic) -> EditorDiagnostic:
    lines = [diag.message]
    if diag.help:
        lines.append(f"help: {diag.help}")
    lines += [f"note: {note}" for note in diag.notes]
    related = tuple(Related(loc, label.message) for label in diag.labels
                    if (loc := location(label.span)) is not None)
    return EditorDiagnostic(Range.of(diag.span), diag.severity.value, diag.code, "\n".join(lines), related,
                            explain_page(diag.code))


def explain_page(code: str) -> Path | None:
    """The shipped explanation page of ``code`` (what ``bbflow explain`` prints), if it is a file."""
    if code not in CODES:
        return None
    from importlib import resources

    page = resources.files("bbflow").joinpath("explain", f"{code}.md")
    return Path(str(page)) if isinstance(page, Path) and page.is_file() else None


def explain_summary(code: str) -> str | None:
    """``**BBF401**: title`` and the first paragraph of the code's explanation."""
    known = code.upper()
    if known not in CODES:
        return None
    try:
        page = explain(known)
    except (KeyError, OSError):
        return f"**{known}**: {CODES[known].title}"
    paragraphs = [p.strip() for p in page.split("\n\n")]
    body = [p for p in paragraphs if p and not p.startswith("#") and not p.startswith("Severity:")]
    first = " ".join(body[0].split()) if body else ""
    return f"**{known}**: {CODES[known].title}\n\n{first}".rstrip()


# --- hover --------------------------------------------------------------------------


@attrs.frozen(slots=True)
class HoverInfo:
    range: Range
    markdown: str


def hover(program: Program, path: Path, pos: Pos, text: str | None = None) -> HoverInfo | None:
    """The type (or declaration) of what is under the cursor, and the explanation of a diagnostic there.

    ``text``: the file's current text (for a code such as ``BBF401`` written in
    a comment); defaults to the compiled text.
    """
    text = program.texts.get(path, "") if text is None else text
    code = _code_at(text, pos)
    if code is not None:
        summary = explain_summary(code[0])
        return HoverInfo(code[1], summary) if summary else None
    module = program.module(path)
    facts = program.facts(path)
    parts: list[str] = []
    where: Range | None = None
    if module is not None and facts is not None:
        node_path = path_at(module, pos)
        found = describe(facts, module, node_path)
        if found is not None:
            where, signature, detail = found
            parts.append(f"```flow\n{signature}\n```")
            if detail:
                parts.append(f"```flow\n{detail}\n```")
    for diag in program.result.diagnostics.sorted():
        if file_path(diag.span.file) == path and contains_or_at(diag, pos):
            summary = explain_summary(diag.code)
            if summary and summary not in parts:
                parts.append(summary)
                where = where or Range.of(diag.span)
    if not parts or where is None:
        return None
    return HoverInfo(where, "\n\n---\n\n".join(parts))


def contains_or_at(diag: Diagnostic, pos: Pos) -> bool:
    span = diag.span
    empty = (span.line, span.column) >= (span.end_line, span.end_column)
    return contains(span, pos) or (empty and (span.line - 1, span.column - 1) == (pos.line, pos.character))


def _code_at(text: str, pos: Pos) -> tuple[str, Range] | None:
    lines = text.split("\n")
    if not 0 <= pos.line < len(lines):
        return None
    for m in CODE_WORD.finditer(lines[pos.line]):
        if m.start() <= pos.character <= m.end():
            return m.group().upper(), Range(Pos(pos.line, m.start()), Pos(pos.line, m.end()))
    return None


def describe(facts: Facts, module: ast.Module, node_path: list[Any]) -> tuple[Range, str, str | None] | None:
    """What the innermost interesting node of ``node_path`` is: (its range, a signature, a detail)."""
    node, parent = node_path[-1], node_path[-2] if len(node_path) > 1 else None
    if isinstance(node, ast.Ident) and isinstance(parent, (ast.Name, ast.Attr)) and (
            isinstance(parent, ast.Name) or parent.name is node):
        node, parent = parent, node_path[-3] if len(node_path) > 2 else None
    if isinstance(node, (ast.Name, ast.Attr)) and isinstance(parent, ast.CallExpr) and parent.callee is node:
        target = facts.call(parent)
        if target is not None:
            return Range.of(node.span), call_signature(facts, target.kind, target.qualname, target.decl), None
    if isinstance(node, ast.Ident):
        return _describe_ident(facts, module, node, parent)
    if isinstance(node, ast.SignalType):
        return _describe_signal(facts, node, parent)
    if isinstance(node, ast.NamedType) or (isinstance(parent, ast.NamedType) and isinstance(node, ast.Ident)):
        return None
    expr = next((n for n in reversed(node_path) if n in facts.types), None)
    if expr is None:
        return None
    t = facts.types[expr]
    if isinstance(expr, (ast.Name, ast.Attr)) and (ref := facts.ref(expr)) is not None:
        return Range.of(expr.span), _ref_signature(ref, t), type_detail(t)
    if isinstance(expr, ast.Attr):
        return Range.of(expr.name.span), f"(field) {expr.name.name}: {t}", type_detail(t)
    if isinstance(expr, (ast.NamedType, ast.ListType, ast.MapType, ast.OptionalType, ast.RecordType)):
        return Range.of(expr.span), f"(type) {t}", type_detail(t)
    return Range.of(expr.span), str(t), type_detail(t)


def _describe_ident(facts: Facts, module: ast.Module, ident: ast.Ident,
                    parent: Any) -> tuple[Range, str, str | None] | None:
    where = Range.of(ident.span)
    if isinstance(parent, ast.AfterMod):
        ref = facts.refs.get(ident)
        if ref is None:
            return None
        t = facts.decl_types.get(ref.decl)
        return where, _ref_signature(ref, t), type_detail(t)
    if isinstance(parent, ast.SetStmt):
        ref = facts.refs.get(ident)
        t = facts.decl_types.get(ref.decl) if ref is not None else None
        return where, f"(state) {ident.name}: {_show(t)}", type_detail(t)
    if isinstance(parent, ast.NamedType):
        decl = global_decl(facts, module, tuple(p.name for p in parent.parts[: parent.parts.index(ident) + 1]))
        return (where, declaration_signature(facts, decl), None) if decl is not None else None
    if isinstance(parent, ast.EnumDecl) and ident is not parent.name:
        return where, f"(enum member) {parent.name.name}.{ident.name}", None
    if isinstance(parent, ast.MapStmt) and ident is parent.item:
        over = facts.types.get(parent.over)
        t = over.item if isinstance(over, (T.ListT, T.MapT)) else None
        return where, f"(item) {ident.name}: {_show(t)}", type_detail(t)
    if isinstance(parent, ast.RouteDecl) and ident is parent.bind:
        t = facts.decl_types.get(parent)
        return where, f"(binding) {ident.name}: {_show(t)}", None
    if getattr(parent, "name", None) is ident:
        t = facts.decl_types.get(parent)
        return where, declaration_signature(facts, parent), type_detail(t) if _is_value(parent) else None
    return None


def _describe_signal(facts: Facts, sig: ast.SignalType, parent: Any) -> tuple[Range, str, str | None] | None:
    where = Range.of(sig.span)
    if isinstance(parent, ast.RouteDecl):
        t = facts.decl_types.get(parent)
        declared = facts.signals.get(sig.text)
        payload = facts.decl_types.get(declared) if declared is not None else None
        shown = f"(route) on {sig.text}" + (f": {payload}" if payload not in (None, T.NONE) else "")
        return where, shown, f"as: {t}" if t is not None else None
    declared = facts.signals.get(sig.text)
    if declared is None:
        return None
    payload = facts.decl_types.get(declared)
    return where, f"(signal) {sig.text}" + (f": {payload}" if payload not in (None, T.NONE) else ""), None


_VALUE_DECLS = (ast.Param, ast.LetStmt, ast.StepStmt, ast.SwitchStmt, ast.MapStmt, ast.StateField)


def _is_value(decl: Any) -> bool:
    return isinstance(decl, _VALUE_DECLS)


def _ref_signature(ref: Ref, t: Any) -> str:
    if ref.kind is RefKind.ENUM_MEMBER:
        owner = getattr(getattr(ref.decl, "name", None), "name", None)
        return f"(enum member) {owner}.{ref.value}" if owner else f"(enum member) {ref.value}"
    if ref.kind is RefKind.ROBOT_STATE:
        return f"(robot state) {ref.value}"
    if ref.kind is RefKind.EVENT:
        return f"(event) {ref.value}: {_show(t)}"
    return f"({ref.kind.value}) {ref.name}: {_show(t)}"


def _show(t: Any) -> str:
    return "?" if t is None else str(t)


def type_detail(t: Any) -> str | None:
    """What a named type stands for: ``Pose = {x: float, ...}``, ``enum Grip { open, closed }``."""
    inner = t
    while isinstance(inner, (T.OptionalT, T.ListT, T.MapT)):
        inner = inner.inner if isinstance(inner, T.OptionalT) else inner.item
    if isinstance(inner, T.RecordT) and inner.name:
        return f"type {inner.name} = " + "{" + ", ".join(f"{n}: {ft}" for n, ft in inner.fields) + "}"
    if isinstance(inner, T.EnumT):
        return f"enum {inner.name} {{ {', '.join(inner.members)} }}"
    return None


def type_text(texpr: Any) -> str:
    """A type expression as written."""
    if isinstance(texpr, ast.NamedType):
        return texpr.dotted
    if isinstance(texpr, ast.ListType):
        return f"list[{type_text(texpr.item)}]"
    if isinstance(texpr, ast.MapType):
        return f"map[{type_text(texpr.item)}]"
    if isinstance(texpr, ast.OptionalType):
        return f"{type_text(texpr.inner)}?"
    if isinstance(texpr, ast.RecordType):
        return "{" + ", ".join(f"{f.name.name}: {type_text(f.type)}" for f in texpr.fields) + "}"
    return "?"


def _params(params: tuple[ast.Param, ...]) -> str:
    return ", ".join(f"{p.name.name}: {type_text(p.type)}" + (" = …" if p.default is not None else "")
                     for p in params)


def declaration_signature(facts: Facts, decl: Any) -> str:
    """A one-line summary of a declaration, for hover and completion details."""
    if isinstance(decl, (ast.CommandDecl, ast.ActionDecl, ast.ReactorDecl)):
        kind = {ast.CommandDecl: "command", ast.ActionDecl: "action", ast.ReactorDecl: "reactor"}[type(decl)]
        text = f"({kind}) {decl.name.name}({_params(decl.params)})"
        if decl.result is not None:
            text += f" -> {type_text(decl.result)}"
        if isinstance(decl, ast.ReactorDecl) and decl.robot is not None:
            text += f" on {decl.robot.dotted}"
        if isinstance(decl, ast.CommandDecl) and decl.readonly:
            text += " readonly"
        if isinstance(decl, ast.ActionDecl) and decl.pure:
            text += " pure"
        return text
    if isinstance(decl, ast.TypeAlias):
        return f"type {decl.name.name} = {type_text(decl.type)}"
    if isinstance(decl, ast.EnumDecl):
        return f"enum {decl.name.name} {{ {', '.join(m.name for m in decl.members)} }}"
    if isinstance(decl, ast.RobotDecl):
        return f"robot {decl.name.name}"
    if isinstance(decl, ast.AgentDecl):
        return f"agent {decl.name.name}" + (f" on {decl.robot.dotted}" if decl.robot is not None else "")
    if isinstance(decl, ast.EventDecl):
        return f"(event) {decl.name.name}" + (f": {type_text(decl.payload)}" if decl.payload is not None else "")
    if isinstance(decl, ast.SignalDecl):
        return f"signal {decl.type.text}" + (f": {type_text(decl.payload)}" if decl.payload is not None else "")
    kinds = {ast.Param: "param", ast.LetStmt: "let", ast.StepStmt: "step", ast.SwitchStmt: "switch",
             ast.MapStmt: "map", ast.StateField: "state"}
    local = kinds.get(type(decl))
    if local is not None:
        return f"({local}) {decl.name.name}: {_show(facts.decl_types.get(decl))}"
    name = getattr(getattr(decl, "name", None), "name", "?")
    return name


def call_signature(facts: Facts, kind: CallKind, qualname: str, decl: Any) -> str:
    if decl is not None:
        return declaration_signature(facts, decl)
    if kind is CallKind.WAIT_STATE:
        return "(wait) wait_state(STATE, ...) -> str"
    if kind is CallKind.WAIT_EVENT:
        return "(wait) wait_event(EVENT) -> the event's payload"
    if kind is CallKind.COMMAND:
        return f"(command) {qualname.rsplit('.', 1)[-1]}()"
    return f"(builtin) {qualname}"


# --- go to definition ---------------------------------------------------------------


def definition(program: Program, path: Path, pos: Pos) -> list[Location]:
    """Where the name under the cursor is declared (empty when it is not a name or did not resolve)."""
    module = program.module(path)
    return definition_of(program, path, path_at(module, pos)) if module is not None else []


def definition_of(program: Program, path: Path, node_path: list[Any]) -> list[Location]:
    """Where the innermost node of ``node_path`` (from the module of ``path`` down) is declared."""
    facts = program.facts(path)
    if facts is None:
        return []
    span = _definition_span(facts, node_path[0], node_path)
    found = location(span) if span is not None else None
    return [found] if found is not None else []


def _definition_span(facts: Facts, module: ast.Module, node_path: list[Any]) -> Any:
    node: Any = node_path[-1]
    parent: Any = node_path[-2] if len(node_path) > 1 else None
    grand: Any = node_path[-3] if len(node_path) > 2 else None
    if (isinstance(node, ast.Ident) and isinstance(parent, ast.Name)) or (isinstance(node, ast.Ident) and isinstance(parent, ast.Attr) and parent.name is node):
        node, parent, grand = parent, grand, node_path[-4] if len(node_path) > 3 else None
    if isinstance(node, (ast.Name, ast.Attr)):
        if isinstance(parent, ast.CallExpr) and parent.callee is node:  # a builtin (a wait) is declared nowhere
            decl = target.decl if (target := facts.call(parent)) is not None else None
            return decl_span(decl) if isinstance(decl, (ast.CommandDecl, ast.ActionDecl, ast.ReactorDecl)) else None
        ref = facts.ref(node)
        if ref is not None:
            return _ref_span(ref)
        if isinstance(node, ast.Attr) and isinstance(node.obj, ast.Name):
            decl = global_decl(facts, module, (node.obj.ident.name, node.name.name))
            return decl_span(decl) if decl is not None else None
        return None
    if isinstance(node, ast.Ident):
        if isinstance(parent, (ast.AfterMod, ast.SetStmt)):
            ref = facts.refs.get(node)
            return _ref_span(ref) if ref is not None else None
        if isinstance(parent, ast.NamedType):
            upto = parent.parts[: parent.parts.index(node) + 1]
            decl = global_decl(facts, module, tuple(p.name for p in upto))
            if decl is None and isinstance(grand, (ast.ReactorDecl, ast.AgentDecl)):
                decl = facts.decls.get(facts.robots_of.get(grand, ""))
            return decl_span(decl) if decl is not None else None
        if isinstance(parent, ast.ImportName) and isinstance(grand, ast.FromImport):
            source = ".".join(i.name for i in grand.module)
            decl = facts.decls.get(f"{source}.{parent.name.name}")
            return decl_span(decl) if decl is not None else None
        if isinstance(parent, (ast.FromImport, ast.ModuleImport)) and node in parent.module:
            upto = parent.module[: parent.module.index(node) + 1]
            return module_file(facts, ".".join(i.name for i in upto))
        if isinstance(parent, ast.Arg):  # `target:` in a call: the callee's parameter
            target = facts.call(grand) if isinstance(grand, ast.CallExpr) else None
            params = getattr(target.decl, "params", ()) if target is not None else ()
            return next((p.name.span for p in params if p.name.name == node.name), None)
        if isinstance(parent, ast.FieldInit):  # a record literal's field: declared by no name of its own
            return None
        if isinstance(parent, ast.StatesDecl):  # a robot state's declaration
            return node.span
        if isinstance(parent, ast.CancelStmt):
            decl = global_decl(facts, module, tuple(i.name for i in parent.reactor[: parent.reactor.index(node) + 1]))
            return decl_span(decl) if decl is not None else None
        if node in (getattr(parent, "name", None), getattr(parent, "bind", None)):  # nodes compare by identity
            return node.span
        return None
    if isinstance(node, ast.SignalType):
        declared = facts.signals.get(node.text)
        return declared.type.span if declared is not None else None
    return None


def _ref_span(ref: Ref) -> Any:
    if ref.decl is None:
        return None
    if ref.kind is RefKind.ITEM and isinstance(ref.decl, ast.MapStmt):
        return ref.decl.item.span
    if ref.kind in (RefKind.RESULT, RefKind.ERROR, RefKind.ARGS):
        call = getattr(ref.decl, "call", None)
        return call.span if call is not None else decl_span(ref.decl)
    return decl_span(ref.decl, ref.value)


# --- document symbols ---------------------------------------------------------------


@attrs.frozen(slots=True)
class DocSymbol:
    name: str
    kind: str  # "reactor" "step" "agent" "route" "robot" "command" "type" "enum" ...
    range: Range
    selection: Range  # the name
    detail: str = ""
    children: tuple[DocSymbol, ...] = ()


def document_symbols(program: Program, path: Path) -> list[DocSymbol]:
    """The outline of a file: its declarations, with steps, routes, commands and members below them."""
    module = program.module(path)
    if module is None:
        return []
    facts = program.facts(path) or Facts()
    return [s for d in module.decls if (s := _decl_symbol(facts, d)) is not None]


def _sym(name: ast.Ident, kind: str, whole: Any, detail: str = "", children: tuple[DocSymbol, ...] = ()) -> DocSymbol:
    return DocSymbol(name.name, kind, Range.of(whole.span), Range.of(name.span), detail, children)


def _signature_tail(facts: Facts, decl: Any) -> str:
    """``(pick: Pose) -> Pose on Arm``: a callable's signature after its name."""
    signature = declaration_signature(facts, decl)
    return signature[signature.index(f"{decl.name.name}(") + len(decl.name.name):]


def _decl_symbol(facts: Facts, decl: Any) -> DocSymbol | None:
    if isinstance(decl, ast.ReactorDecl):
        steps = tuple(_block_symbols(facts, decl.body))
        return _sym(decl.name, "reactor", decl, _signature_tail(facts, decl), steps)
    if isinstance(decl, ast.AgentDecl):
        state = tuple(_sym(f.name, "state", f, type_text(f.type)) for f in decl.state)
        routes = tuple(DocSymbol(f"on {r.pattern.text}", "route", Range.of(r.span), Range.of(r.pattern.span),
                                 f"as {r.bind.name}" if r.bind is not None else "") for r in decl.routes)
        return _sym(decl.name, "agent", decl, f"on {decl.robot.dotted}" if decl.robot else "", state + routes)
    if isinstance(decl, ast.RobotDecl):
        commands = tuple(_sym(c.name, "command", c, _signature_tail(facts, c))
                         for c in decl.commands)
        events = tuple(_sym(e.name, "event", e, type_text(e.payload) if e.payload else "") for e in decl.events)
        states = tuple(_sym(n, "state", n) for s in decl.states for n in s.names)
        return _sym(decl.name, "robot", decl, "", states + commands + events)
    if isinstance(decl, ast.TypeAlias):
        return _sym(decl.name, "type", decl, type_text(decl.type))
    if isinstance(decl, ast.EnumDecl):
        return _sym(decl.name, "enum", decl, "", tuple(_sym(m, "enum member", m) for m in decl.members))
    if isinstance(decl, ast.ActionDecl):
        return _sym(decl.name, "action", decl, _signature_tail(facts, decl))
    if isinstance(decl, ast.SignalDecl):
        return DocSymbol(decl.type.text, "signal", Range.of(decl.span), Range.of(decl.type.span),
                         type_text(decl.payload) if decl.payload is not None else "")
    return None


def _block_symbols(facts: Facts, block: ast.Block) -> list[DocSymbol]:
    out = []
    for stmt in block.stmts:
        t = facts.decl_types.get(stmt) if not isinstance(stmt, (ast.ReturnStmt, ast.FailStmt)) else None
        detail = str(t) if t is not None else ""
        if isinstance(stmt, (ast.StepStmt, ast.LetStmt)):
            out.append(_sym(stmt.name, "step" if isinstance(stmt, ast.StepStmt) else "let", stmt, detail))
        elif isinstance(stmt, ast.SwitchStmt):
            inner = [s for case in stmt.cases for s in _block_symbols(facts, case.body)]
            inner += _block_symbols(facts, stmt.default) if stmt.default is not None else []
            out.append(_sym(stmt.name, "switch", stmt, detail, tuple(inner)))
        elif isinstance(stmt, ast.MapStmt):
            out.append(_sym(stmt.name, "map", stmt, detail, tuple(_block_symbols(facts, stmt.body))))
    return out

