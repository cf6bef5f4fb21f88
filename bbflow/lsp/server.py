"""The pygls wiring of ``bbflow lsp``: protocol messages in, ``bbflow.lsp.analysis`` answers out.

Everything the server knows comes from ``compile_program`` (the file's whole
project, open buffers in place of the files on disk); this module only keeps
the last program of each project, converts positions between the client's
encoding (UTF-16 unless the client offers another) and the compiler's
characters, and publishes diagnostics for every file of the project (an
empty list for a file whose problems are gone). Checks after an edit wait
until typing pauses for ``DEBOUNCE`` seconds; opening and saving check at once.

A careless or hostile client never breaks the server (``FlowProtocol``): a
request whose params cannot be read (missing, of the wrong type, a negative
position) is answered with JSON-RPC's -32602 (invalid params), a request
after ``shutdown`` with -32600 (invalid request); a URI that names no file
(a NUL byte in it) is ignored; a request on a file that is not open is
answered from the file on disk (or with nothing); a position past the end of
the text finds nothing. ``exit`` ends the process with 0 after ``shutdown``
and 1 without; a client that closes the server's input without ``exit`` ends
it too (with 1).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.uris import from_fs_path, to_fs_path

from bbflow import __version__
from bbflow.lsp.analysis import (
    DocSymbol,
    EditorDiagnostic,
    definition,
    diagnostics_by_file,
    document_symbols,
    hover,
)
from bbflow.lsp.complete import complete
from bbflow.lsp.formatting import format_document
from bbflow.lsp.locate import Pos, Range
from bbflow.lsp.program import Program, compile_program, scope_of
from bbflow.lsp.refactor import RenameError, quick_fixes, references, rename

DEBOUNCE = 0.3  # seconds of quiet after an edit before the project is checked again
SUFFIX = ".flow"

SEVERITIES = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning,
              "note": lsp.DiagnosticSeverity.Information}
SYMBOL_KINDS = {
    "reactor": lsp.SymbolKind.Function, "action": lsp.SymbolKind.Function, "step": lsp.SymbolKind.Variable,
    "let": lsp.SymbolKind.Variable, "switch": lsp.SymbolKind.Variable, "map": lsp.SymbolKind.Array,
    "agent": lsp.SymbolKind.Class, "route": lsp.SymbolKind.Method, "robot": lsp.SymbolKind.Interface,
    "command": lsp.SymbolKind.Method, "event": lsp.SymbolKind.Event, "signal": lsp.SymbolKind.Event,
    "state": lsp.SymbolKind.Field, "type": lsp.SymbolKind.Struct, "enum": lsp.SymbolKind.Enum,
    "enum member": lsp.SymbolKind.EnumMember,
}
COMPLETION_KINDS = {
    "keyword": lsp.CompletionItemKind.Keyword, "variable": lsp.CompletionItemKind.Variable,
    "function": lsp.CompletionItemKind.Function, "reactor": lsp.CompletionItemKind.Function,
    "field": lsp.CompletionItemKind.Field, "type": lsp.CompletionItemKind.Struct,
    "enum": lsp.CompletionItemKind.Enum, "enum member": lsp.CompletionItemKind.EnumMember,
    "module": lsp.CompletionItemKind.Module, "signal": lsp.CompletionItemKind.Event,
    "robot": lsp.CompletionItemKind.Interface, "agent": lsp.CompletionItemKind.Class,
}


class _Unreadable:
    """A request whose message could not be read into its params type: answered with -32602."""

    def __init__(self, msg_id: Any, method: str) -> None:
        self.id = msg_id
        self.method = method


class FlowProtocol(LanguageServerProtocol):
    """pygls' protocol, answering every request, even one it cannot read or one after shutdown."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                return _Unreadable(data["id"], data["method"])
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unreadable):
            invalid = JsonRpcInvalidParams(f"invalid params for {message.method}")
            self._send_response(message.id, None, invalid.to_response_error())
            return
        method = getattr(message, "method", None)
        if self._shutdown and method is not None and method != lsp.EXIT and hasattr(message, "id"):
            late = JsonRpcInvalidRequest(f"{method} after shutdown: the server only accepts exit now")
            self._send_response(message.id, None, late.to_response_error())
            return
        super().handle_message(message)


def _strict_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _converter() -> Any:
    """pygls' converter, except that a string must be a string (``"uri": 42`` is invalid params, not "42")."""
    converter = default_converter()
    converter.register_structure_hook(str, _strict_str)
    return converter


class FlowServer(LanguageServer):
    """The language server, with the last compiled program of each project."""

    def __init__(self) -> None:
        super().__init__("bbflow", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
                         protocol_cls=FlowProtocol, converter_factory=_converter)
        self.programs: dict[Path, Program] = {}  # by scope (project root, or a loose file's folder)
        self.published: dict[Path, set[Path]] = {}  # by scope: files last given diagnostics
        self.edits: dict[Path, int] = {}  # by file: edits seen, so that only the last one's wait checks
        self.problems: dict[Path, str] = {}  # by scope: the project problem last shown
        self.exit_status = 1  # what the process ends with: 0 once the client said shutdown, then exit

    # --- documents and programs -------------------------------------------------------

    def buffers(self) -> dict[Path, str]:
        """The text of every open .flow document, by resolved path."""
        out = {}
        for uri, doc in self.workspace.text_documents.items():
            path = path_of(uri)
            if path is not None and path.suffix == SUFFIX:
                out[path] = doc.source
        return out

    def check(self, path: Path) -> Program:
        """Compile ``path``'s program now and publish its diagnostics."""
        program = compile_program(path, self.buffers())
        self.programs[program.scope] = program
        self.publish(program)
        return program

    def text_of(self, uri: str, path: Path) -> str | None:
        """The text of an open document, else of the file on disk; None when there is neither."""
        doc = self.workspace.text_documents.get(uri)
        if doc is not None:
            return doc.source
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    def current(self, uri: str) -> tuple[Path, Program, str] | None:
        """The program of the document at ``uri``, compiled from its current text (checked again if stale)."""
        path = path_of(uri)
        if path is None:
            return None
        text = self.text_of(uri, path)
        if text is None:
            return None
        program = self.programs.get(scope_of(path))
        if program is None or not program.is_current(path, text.replace("\r\n", "\n")):
            program = self.check(path)
        return path, program, text

    def publish(self, program: Program) -> None:
        by_file = diagnostics_by_file(program)
        for gone in self.published.get(program.scope, set()) - set(by_file):
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(self.uri_of(gone), []))
        self.published[program.scope] = set(by_file)
        for path, diags in by_file.items():
            lines = program.texts.get(path, "").split("\n")
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                self.uri_of(path), [self.to_lsp_diagnostic(d, lines, program) for d in diags]))
        if program.problem and self.problems.get(program.scope) != program.problem:
            self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, program.problem))
        self.problems[program.scope] = program.problem or ""

    def uri_of(self, path: Path) -> str:
        """The URI the client opened ``path`` under (else the file URI of the path)."""
        for uri in self.workspace.text_documents:
            if path_of(uri) == path:
                return uri
        return from_fs_path(str(path)) or path.as_uri()

    # --- conversions ------------------------------------------------------------------

    def to_lsp_range(self, r: Range, lines: list[str]) -> lsp.Range:
        server = lsp.Range(lsp.Position(r.start.line, r.start.character), lsp.Position(r.end.line, r.end.character))
        return self.workspace.position_codec.range_to_client_units(lines, server)

    def to_pos(self, position: lsp.Position, text: str) -> Pos | None:
        """The position in compiler characters; None past the end of the text (nothing is there)."""
        lines = text.split("\n")
        if position.line >= len(lines):
            return None
        try:
            p = self.workspace.position_codec.position_from_client_units(lines, position)
        except (IndexError, ValueError):
            return None
        return Pos(p.line, p.character)

    def lines_of(self, path: Path, program: Program) -> list[str]:
        text = program.texts.get(path)
        if text is None:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
        return text.split("\n")

    def to_lsp_diagnostic(self, d: EditorDiagnostic, lines: list[str], program: Program) -> lsp.Diagnostic:
        related = [lsp.DiagnosticRelatedInformation(
            lsp.Location(self.uri_of(r.location.path),
                         self.to_lsp_range(r.location.range, self.lines_of(r.location.path, program))),
            r.message) for r in d.related]
        return lsp.Diagnostic(
            range=self.to_lsp_range(d.range, lines), message=d.message, severity=SEVERITIES[d.severity],
            code=d.code, source="bbflow", related_information=related or None,
            code_description=lsp.CodeDescription(d.explain.as_uri()) if d.explain is not None else None)

    def to_lsp_symbol(self, s: DocSymbol, lines: list[str]) -> lsp.DocumentSymbol:
        return lsp.DocumentSymbol(
            name=s.name, kind=SYMBOL_KINDS.get(s.kind, lsp.SymbolKind.Variable), detail=s.detail or None,
            range=self.to_lsp_range(s.range, lines), selection_range=self.to_lsp_range(s.selection, lines),
            children=[self.to_lsp_symbol(c, lines) for c in s.children] or None)


server = FlowServer()


def path_of(uri: str) -> Path | None:
    """The resolved file path of a ``file:`` URI (None for other schemes, unsaved or remote, and for a
    URI that names no file: a NUL byte in it)."""
    if not isinstance(uri, str) or not uri.startswith("file:"):
        return None
    try:
        fs = to_fs_path(uri)
        return Path(fs).resolve() if fs and "\0" not in fs else None
    except (OSError, ValueError):
        return None


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: FlowServer, params: lsp.DidOpenTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is not None:
        ls.check(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: FlowServer, params: lsp.DidSaveTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is not None:
        ls.check(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: FlowServer, params: lsp.DidChangeTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is None:
        return
    seen = ls.edits[path] = ls.edits.get(path, 0) + 1
    await asyncio.sleep(DEBOUNCE)
    if ls.edits.get(path) == seen:  # no edit since: typing has paused
        ls.check(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: FlowServer, params: lsp.DidCloseTextDocumentParams) -> None:
    """The file is read from disk again; if it is not there (never saved), its diagnostics go."""
    path = path_of(params.text_document.uri)
    if path is None:
        return
    ls.edits.pop(path, None)
    if path.is_file():
        ls.check(path)
    else:
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(params.text_document.uri, []))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
def on_hover(ls: FlowServer, params: lsp.HoverParams) -> lsp.Hover | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    pos = ls.to_pos(params.position, text)
    answer = hover(program, path, pos, text) if pos is not None else None
    if answer is None:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, answer.markdown),
                     ls.to_lsp_range(answer.range, text.split("\n")))


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: FlowServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    pos = ls.to_pos(params.position, text)
    if pos is None:
        return None
    targets = definition(program, path, pos)
    return [lsp.Location(ls.uri_of(t.path), ls.to_lsp_range(t.range, ls.lines_of(t.path, program)))
            for t in targets] or None


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["."]))
def on_completion(ls: FlowServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
    path = path_of(params.text_document.uri)
    if path is None:
        return None
    text = ls.text_of(params.text_document.uri, path)
    pos = ls.to_pos(params.position, text) if text is not None else None
    if text is None or pos is None:
        return None
    # the last program, even if a little stale: the text being typed rarely compiles cleanly
    program = ls.programs.get(scope_of(path)) or ls.check(path)
    items = complete(program, path, text, pos)
    return lsp.CompletionList(is_incomplete=False, items=[
        lsp.CompletionItem(c.label, kind=COMPLETION_KINDS.get(c.kind, lsp.CompletionItemKind.Text),
                           detail=c.detail or None) for c in items])


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(ls: FlowServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol] | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    lines = text.split("\n")
    return [ls.to_lsp_symbol(s, lines) for s in document_symbols(program, path)]


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: FlowServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    path = path_of(params.text_document.uri)
    if path is None:
        return None
    text = ls.text_of(params.text_document.uri, path)
    if text is None:
        return None
    edit = format_document(text, str(path))
    if edit is None:
        return []
    whole, new_text = edit
    return [lsp.TextEdit(ls.to_lsp_range(whole, text.split("\n")), new_text)]


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
def on_references(ls: FlowServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    pos = ls.to_pos(params.position, text)
    if pos is None:
        return None
    places = references(program, path, pos)
    if not params.context.include_declaration:
        declared = {(t.path, t.range) for t in definition(program, path, pos)}
        places = [p for p in places if (p.path, p.range) not in declared]
    return [lsp.Location(ls.uri_of(p.path), ls.to_lsp_range(p.range, ls.lines_of(p.path, program)))
            for p in places] or None


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
def on_rename(ls: FlowServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    pos = ls.to_pos(params.position, text)
    if pos is None:
        return None
    try:
        places = rename(program, path, pos, params.new_name)
    except RenameError as e:
        raise JsonRpcInvalidParams(message=str(e)) from None  # the editor shows the message
    changes: dict[str, list[lsp.TextEdit]] = {}
    for p in places:
        changes.setdefault(ls.uri_of(p.path), []).append(
            lsp.TextEdit(ls.to_lsp_range(p.range, ls.lines_of(p.path, program)), params.new_name))
    return lsp.WorkspaceEdit(changes=changes)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
def on_code_action(ls: FlowServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    found = ls.current(params.text_document.uri)
    if found is None:
        return None
    path, program, text = found
    lines = text.split("\n")
    start, end = ls.to_pos(params.range.start, text), ls.to_pos(params.range.end, text)
    if start is None or end is None:
        return None
    mine = [d for d in diagnostics_by_file(program).get(path, [])
            if (d.range.start.line, d.range.start.character) <= (end.line, end.character)
            and (start.line, start.character) <= (d.range.end.line, d.range.end.character)]
    actions = []
    for fix in quick_fixes(program, path, mine):
        edit = lsp.TextEdit(ls.to_lsp_range(fix.range, lines), fix.new_text)
        actions.append(lsp.CodeAction(fix.title, kind=lsp.CodeActionKind.QuickFix, is_preferred=fix.preferred or None,
                                      edit=lsp.WorkspaceEdit(changes={params.text_document.uri: [edit]})))
    return actions


@server.feature(lsp.EXIT)
def on_exit(ls: FlowServer, params: Any) -> None:
    """Remember the status: pygls ends its loop on exit, but swallows the ``SystemExit`` it raises."""
    ls.exit_status = 0 if ls.protocol._shutdown else 1


def serve(port: int | None = None) -> None:
    """Speak LSP on standard input and output (or on 127.0.0.1:``port``) until the client says exit.

    On standard input and output, exits 0 after ``shutdown`` then ``exit``, else 1 (``exit`` alone, or
    the input closed without it)."""
    if port is not None:
        server.start_tcp("127.0.0.1", port)
        return
    server.exit_status = 1
    server.start_io()
    server.shutdown()
    sys.exit(server.exit_status)
