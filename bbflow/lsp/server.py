"""The pygls wiring of ``bbflow lsp``: protocol messages in, ``bbflow.lsp.analysis`` answers out.

Everything the server knows comes from ``compile_program`` (the file's whole
project, open buffers in place of the files on disk), run by the ``Worker``
in a thread of its own: the loop never waits for the compiler. Hover,
go-to-definition and completion answer at once from the last program (the
cursor found on the same line in the text it analysed: ``Shift``); rename,
references, code actions and the outline wait for the program checked with
the current text (``FlowServer.here``). Every request can be cancelled
(``$/cancelRequest``): one still waiting is answered with the LSP's
RequestCancelled error (-32800). This module converts positions between the
client's encoding (UTF-16 unless the client offers another) and the
compiler's characters, lines ending where the client ends them (``\n``,
``\r\n`` or ``\r``; not at a form feed: ``FlowDocument``), and publishes diagnostics for every file of the
program and its bbflow.toml (an empty list for a file whose problems are
gone), sending only what changed. A check after an edit starts once typing
pauses for ``DEBOUNCE`` seconds; opening and saving check at once. Files
changed on disk (``workspace/didChangeWatchedFiles``, registered for
``**/*.flow`` and ``**/bbflow.toml`` when the client can) are checked again
in every program that reads them.

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
import functools
import itertools
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcMethodNotFound
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument, Workspace

from bbflow import __version__
from bbflow.compiler import SUFFIX
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
from bbflow.lsp.locate import Location, Pos, Range
from bbflow.lsp.program import Program, scope_of
from bbflow.lsp.refactor import RenameError, quick_fixes, references, rename
from bbflow.lsp.shift import Shift
from bbflow.lsp.worker import Worker
from bbflow.project import PROJECT_FILE

DEBOUNCE = 0.05  # seconds of quiet after an edit before the project is checked again (a burst is one check)
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits for it

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


#: A line with its end, as the LSP counts lines: they end at ``\r\n``, ``\r`` or ``\n`` only.
_LSP_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


_TOUCHES = itertools.count()


class FlowDocument(TextDocument):
    """pygls' document, its lines split as the client splits them.

    pygls splits with ``str.splitlines``, which also ends a line at a form feed
    (whitespace in a .flow file), a vertical tab or U+2028: every incremental
    edit after one on its line went to the wrong place, and the server's copy
    of the document drifted from the editor's for good.

    ``touched`` orders the documents by when the client last opened or changed
    them: a file open twice (by two paths, one through a link) is the document
    being edited, not the one opened last.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.touched = next(_TOUCHES)

    def apply_change(self, change: Any) -> None:
        super().apply_change(change)
        self.touched = next(_TOUCHES)

    @property
    def lines(self) -> Sequence[str]:
        return tuple(_LSP_LINE.findall(self.source))

    @functools.cached_property
    def resolved(self) -> Path | None:
        """The file it is (``path_of`` its URI), resolved once while it is open: documents are looked up by
        path for every location and diagnostic sent, and resolving each open document's URI for each of
        them took seconds for a few hundred references with a few dozen files open."""
        return path_of(self.uri)


class FlowWorkspace(Workspace):
    """pygls' workspace, whose documents are ``FlowDocument``s."""

    def _create_text_document(self, doc_uri: str, source: str | None = None, version: int | None = None,
                              language_id: str | None = None) -> TextDocument:
        return FlowDocument(doc_uri, source=source, version=version, language_id=language_id,
                            sync_kind=self._sync_kind, position_codec=self.position_codec)


#: A byte order mark: a character of the first line to a client whose text starts with one, none to the compiler.
BOM = "\ufeff"
#: Half of a UTF-16 pair, which a client may send (an emoji cut in two): no UTF-8 file can hold it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lsp_text(text: str) -> str:
    """``text`` as the compiler reads it: without a leading byte order mark, every line ending a ``\n``,
    half of a UTF-16 pair a U+FFFD (what an editor saves in its place). The lines stay those the client
    counts, and so do the columns, but on the first line of a text that started with a byte order mark
    (one less: ``FlowServer.to_pos``)."""
    return _LONE_SURROGATE.sub("\ufffd", text.removeprefix(BOM)).replace("\r\n", "\n").replace("\r", "\n")


class FlowProtocol(LanguageServerProtocol):
    """pygls' protocol, answering every request, even one it cannot read or one after shutdown; its
    workspace (made by pygls on ``initialize``) is a ``FlowWorkspace``."""

    @property
    def _workspace(self) -> Workspace | None:
        return self._flow_workspace

    @_workspace.setter
    def _workspace(self, given: Workspace | None) -> None:
        if given is not None and not isinstance(given, FlowWorkspace):
            given = FlowWorkspace(given.root_uri, given._sync_kind, list(given.folders.values()),
                                  given.position_encoding)
        self._flow_workspace = given

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                return _Unreadable(data["id"], data["method"])
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unreadable):
            known = message.method in self.fm.features or self.get_message_type(message.method) is not None
            invalid = (JsonRpcInvalidParams(f"invalid params for {message.method}") if known
                       else JsonRpcMethodNotFound(f"no method {message.method}"))
            self._send_response(message.id, None, invalid.to_response_error())
            return
        method = getattr(message, "method", None)
        if self._shutdown and method is not None and method != lsp.EXIT and hasattr(message, "id"):
            late = JsonRpcInvalidRequest(f"{method} after shutdown: the server only accepts exit now")
            self._send_response(message.id, None, late.to_response_error())
            return
        super().handle_message(message)


class _Answers(logging.Filter):
    """pygls logs every error a handler raises, with its traceback, as if the server had failed; an
    invalid-params error raised on purpose (a rename refused, with its reason) is an answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], JsonRpcInvalidParams))


def _strict_str(value: Any, _: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _converter() -> Any:
    """pygls' converter, except that a string must be a string (``"uri": 42`` is invalid params, not "42")."""
    converter = default_converter()
    converter.register_structure_hook(str, _strict_str)
    return converter


@attrs.frozen(slots=True)
class Here:
    """Where a request points: the file, the program answering, and the cursor in the text it analysed."""

    uri: str
    path: Path
    program: Program
    text: str  # the document's text now
    pos: Pos  # the cursor, in the text ``program`` analysed


class FlowServer(LanguageServer):
    """The language server: the worker that checks programs, and what was last published."""

    def __init__(self) -> None:
        super().__init__("bbflow", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
                         protocol_cls=FlowProtocol, converter_factory=_converter)
        self.worker = Worker(self.buffers, self.publish)
        self.published: dict[Path, set[Path]] = {}  # by scope: files last given diagnostics
        self.sent: dict[Path, tuple[str, list[lsp.Diagnostic]]] = {}  # by file: the diagnostics last published, and to
        self.edits: dict[Path, int] = {}  # by file: edits seen, so that only the last one's wait checks
        self.shifts: dict[Path, tuple[str, str, Shift]] = {}  # by file: (analysed, current, their shift)
        self.now: dict[Path, tuple[str, str, list[str]]] = {}  # by file: (its text, as lsp_text, its lines)
        self.exit_status = 1  # what the process ends with: 0 once the client said shutdown, then exit

    # --- documents and programs -------------------------------------------------------

    def buffers(self) -> dict[Path, str]:
        """The text of every open .flow document, by resolved path."""
        out = {}
        for path, doc in self._documents().items():
            if path.suffix == SUFFIX:
                out[path] = self._lines(path, doc.source, opened=True)[0]
        return out

    def _documents(self) -> dict[Path, TextDocument]:
        """The open document of each file: of two of one file (opened by two paths), the last touched."""
        out: dict[Path, TextDocument] = {}
        for doc in sorted(self.workspace.text_documents.values(), key=lambda d: getattr(d, "touched", 0)):
            path = doc_path(doc)
            if path is not None:
                out[path] = doc
        return out

    def document(self, path: Path) -> TextDocument | None:
        """The open document of ``path``, whatever the URI the client opened it by.

        Never looked up by URI: pygls keys its documents by the URI unquoted, which is no URI (a ``#`` or
        ``%`` in the path names another file), and a client may escape a URI differently each time. Of two
        documents of the file (opened by two paths, one through a link), the one last touched."""
        return max((doc for doc in self.workspace.text_documents.values() if doc_path(doc) == path),
                   key=lambda d: getattr(d, "touched", 0), default=None)

    def text_of(self, path: Path) -> str | None:
        """The text of an open document, else of the file on disk; None when there is neither."""
        doc = self.document(path)
        if doc is not None:
            return doc.source
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError):
            return None

    async def here(self, uri: str, position: lsp.Position, *, fresh: bool, good: bool = False) -> Here | None:
        """The file, program and cursor of a request (None when there is nothing there).

        ``fresh``: wait for the program checked with the document's text now;
        otherwise answer at once from the last program. Either way, unless
        ``fresh`` without ``good``, each file as its last check without a
        syntax error saw it, the cursor found on the same line in the text it
        analysed (None on a line edited since).
        """
        path = path_of(uri)
        text = self.text_of(path) if path is not None else None
        if path is None or text is None:
            return None
        text = lsp_text(text)
        program = None if fresh else self.worker.last(path)
        if program is None or path not in program.texts:
            program = await self.worker.settled(path, text, every_buffer=fresh)
        if not fresh or good:
            program = program.last_good()
        now = self.to_pos(position, text, self.has_bom(path))
        pos = self.shift(path, program, text).to_old(now) if now is not None else None
        return Here(uri, path, program, text, pos) if pos is not None else None

    def shift(self, path: Path, program: Program, text: str | None = None) -> Shift:
        """The lines of ``path`` as ``program`` analysed it matched to the editor's."""
        old = program.texts.get(path) or program.project_files.get(path, "")
        new = text if text is not None else self.current_text(path, old)
        kept = self.shifts.get(path)
        if kept is not None and kept[0] is old and kept[1] == new:
            return kept[2]
        found = Shift(old, new)
        self.shifts[path] = (old, new, found)
        return found

    def has_bom(self, path: Path) -> bool:
        """Does the editor's text of ``path`` start with a byte order mark? A file not open is taken as
        editors show it, without one."""
        doc = self.document(path)
        return doc is not None and doc.source.startswith(BOM)

    def current_text(self, path: Path, analysed: str) -> str:
        return self.current_lines(path, analysed)[0]

    def current_lines(self, path: Path, analysed: str) -> tuple[str, list[str], bool]:
        """The editor's text of ``path`` (else ``analysed``), its lines, made once for each text (every
        location and diagnostic sent asks, and making them again for each of 3,000 references in a
        3,000-step file took a second), and whether it starts with a byte order mark (``has_bom``)."""
        doc = self.document(path)
        if doc is None:
            return *self._lines(path, analysed, opened=False), False
        return *self._lines(path, doc.source, opened=True), doc.source.startswith(BOM)

    def _lines(self, path: Path, source: str, opened: bool) -> tuple[str, list[str]]:
        """``source`` of ``path`` (as ``lsp_text`` if it is an open document's) and its lines, made once."""
        kept = self.now.get(path)
        if kept is None or kept[0] is not source:
            text = lsp_text(source) if opened else source
            kept = self.now[path] = (source, text, text.split("\n"))
        return kept[1], kept[2]

    def publish(self, program: Program) -> None:
        """Send the diagnostics of every file of ``program`` that changed since last sent.

        Only of the files it owns: a project's check also reads the files of a project nested in its folder
        (as its own modules, their imports unresolved), whose diagnostics are their own project's."""
        by_file = {path: diags for path, diags in diagnostics_by_file(program).items()
                   if scope_of(path) == program.scope}
        for gone in self.published.get(program.scope, set()) - set(by_file):
            self.send_diagnostics(gone, program, [])
        self.published[program.scope] = set(by_file)
        for path, diags in by_file.items():
            self.send_diagnostics(path, program, diags)

    def send_diagnostics(self, path: Path, program: Program, diags: list[EditorDiagnostic]) -> None:
        """Send what the editor should show now, unless it shows that already.

        Compared as sent, not as checked: a diagnostic on a line edited since its check is left
        out, and the next check finding the same diagnostic must still send it."""
        out = [d for diag in diags if (d := self.to_lsp_diagnostic(diag, path, program)) is not None]
        uri = self.uri_of(path)
        if self.sent.get(path) == (uri, out):
            return
        self.sent[path] = (uri, out)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, out))

    def forget(self, scope: Path) -> None:
        """No open file belongs to ``scope`` any more: its program goes, and the diagnostics it published."""
        program = self.worker.forget(scope)
        for path in self.published.pop(scope, set()):
            if program is not None:
                self.send_diagnostics(path, program, [])

    def uri_of(self, path: Path) -> str:
        """The URI the client opened ``path`` under (else the file URI of the path)."""
        doc = self.document(path)
        if doc is not None:
            return doc.uri
        return from_fs_path(str(path)) or path.as_uri()

    # --- conversions ------------------------------------------------------------------

    def to_lsp_range(self, r: Range, lines: list[str], bom: bool = False) -> lsp.Range:
        """``r`` of the text of ``lines`` in the client's units; ``bom``: the client's text starts with a byte
        order mark, which ``lines`` lack (``lsp_text``) and the client counts on the first line."""
        if bom and r.start.line == 0:
            lines = [BOM + lines[0], *lines[1:]]
            r = Range(Pos(0, r.start.character + 1), Pos(r.end.line, r.end.character + (r.end.line == 0)))
        server = lsp.Range(lsp.Position(r.start.line, r.start.character), lsp.Position(r.end.line, r.end.character))
        return self.workspace.position_codec.range_to_client_units(lines, server)

    def client_range(self, path: Path, r: Range, program: Program) -> lsp.Range | None:
        """``r`` of ``path`` as ``program`` analysed it, where it is in the editor now (None if edited)."""
        analysed = program.texts.get(path) or program.project_files.get(path)
        if analysed is None:
            try:
                analysed = lsp_text(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                analysed = ""
            return self.to_lsp_range(r, analysed.split("\n"))
        now, lines, bom = self.current_lines(path, analysed)
        moved = self.shift(path, program, now).to_new(r)
        return self.to_lsp_range(moved, lines, bom) if moved is not None else None

    def to_lsp_location(self, loc: Location, program: Program) -> lsp.Location | None:
        r = self.client_range(loc.path, loc.range, program)
        return lsp.Location(self.uri_of(loc.path), r) if r is not None else None

    def to_pos(self, position: lsp.Position, text: str, bom: bool = False) -> Pos | None:
        """The position in compiler characters of ``text`` (``lsp_text``); None past the end of the text
        (nothing is there). ``bom``: the client's text starts with a byte order mark, a character it counts."""
        lines = text.split("\n")
        if position.line >= len(lines):
            return None
        if bom and position.line == 0:
            lines[0] = BOM + lines[0]
        try:
            p = self.workspace.position_codec.position_from_client_units(lines, position)
        except (IndexError, ValueError):
            return None
        return Pos(p.line, max(p.character - (bom and p.line == 0), 0))

    def to_lsp_diagnostic(self, d: EditorDiagnostic, path: Path, program: Program) -> lsp.Diagnostic | None:
        where = self.client_range(path, d.range, program)
        if where is None:
            return None
        related = [lsp.DiagnosticRelatedInformation(loc, r.message) for r in d.related
                   if (loc := self.to_lsp_location(r.location, program)) is not None]
        return lsp.Diagnostic(
            range=where, message=d.message, severity=SEVERITIES[d.severity],
            code=d.code, source="bbflow", related_information=related or None,
            code_description=lsp.CodeDescription(d.explain.as_uri()) if d.explain is not None else None)

    def to_lsp_symbol(self, s: DocSymbol, lines: list[str], bom: bool) -> lsp.DocumentSymbol:
        return lsp.DocumentSymbol(
            name=s.name, kind=SYMBOL_KINDS.get(s.kind, lsp.SymbolKind.Variable), detail=s.detail or None,
            range=self.to_lsp_range(s.range, lines, bom), selection_range=self.to_lsp_range(s.selection, lines, bom),
            children=[self.to_lsp_symbol(c, lines, bom) for c in s.children] or None)


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


def doc_path(doc: TextDocument) -> Path | None:
    """The file an open document is (resolved once per document: ``FlowDocument.resolved``)."""
    return doc.resolved if isinstance(doc, FlowDocument) else path_of(doc.uri)


WATCHED = ("**/*" + SUFFIX, "**/" + PROJECT_FILE)


@server.feature(lsp.INITIALIZED)
def on_initialized(ls: FlowServer, params: lsp.InitializedParams) -> None:
    """Ask the client to tell of .flow files and bbflow.toml changed on disk (a `git checkout`, a build)."""
    workspace = ls.client_capabilities.workspace
    watch = workspace.did_change_watched_files if workspace is not None else None
    if watch is not None and watch.dynamic_registration:
        ls.client_register_capability(lsp.RegistrationParams([lsp.Registration(
            "bbflow-watched-files", lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            lsp.DidChangeWatchedFilesRegistrationOptions([lsp.FileSystemWatcher(g) for g in WATCHED]))]))


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: FlowServer, params: lsp.DidOpenTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is not None:
        ls.sent.pop(path, None)  # an opened file is always sent its diagnostics
        ls.worker.want(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: FlowServer, params: lsp.DidSaveTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is not None:
        ls.worker.want(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: FlowServer, params: lsp.DidChangeTextDocumentParams) -> None:
    path = path_of(params.text_document.uri)
    if path is None:
        return
    seen = ls.edits[path] = ls.edits.get(path, 0) + 1
    await asyncio.sleep(DEBOUNCE)
    if ls.edits.get(path) == seen:  # no edit since: typing has paused
        ls.worker.want(path)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: FlowServer, params: lsp.DidCloseTextDocumentParams) -> None:
    """The file is read from disk again; if it is not there (never saved), its diagnostics go, and the rest of
    its project, which read its buffer, is checked again without it."""
    path = path_of(params.text_document.uri)
    if path is None:
        return
    ls.edits.pop(path, None)
    ls.shifts.pop(path, None)
    ls.now.pop(path, None)
    if path.is_file() or ls.document(path) is not None:  # on disk, or open by another path still
        ls.worker.want(path)
    else:
        ls.sent.pop(path, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(params.text_document.uri, []))
        if scope_of(path) == path:
            ls.forget(path)
        else:  # an import of it resolved while it was open: it no longer does
            ls.worker.want(path)


@server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: FlowServer, params: lsp.DidChangeWatchedFilesParams) -> None:
    """Files changed on disk: check again every program that reads one (an open file's buffer wins).

    A bbflow.toml created or deleted moves files in or out of a project: every
    open file is then checked in the program it now belongs to, and programs
    no open file belongs to any more are dropped with their diagnostics."""
    buffers = ls.buffers()
    changes = [(p, change.type) for change in params.changes
               if (p := path_of(change.uri)) is not None and p not in buffers]
    changed = [p for p, _ in changes]
    if any(p.name == PROJECT_FILE and kind != lsp.FileChangeType.Changed for p, kind in changes):
        scopes = {scope_of(p) for p in buffers}
        for scope in [s for s in ls.worker.programs if s not in scopes]:
            ls.forget(scope)
        for path in buffers:
            ls.worker.want(path)
    for scope, program in list(ls.worker.programs.items()):
        if any(p in program.texts or p in program.project_files or (scope.is_dir() and scope in p.parents)
               for p in changed):
            ls.worker.want(next((p for p in program.texts if p in buffers or p.is_file()), scope))


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def on_hover(ls: FlowServer, params: lsp.HoverParams) -> lsp.Hover | None:
    here = await ls.here(params.text_document.uri, params.position, fresh=False)
    answer = hover(here.program, here.path, here.pos) if here is not None else None
    if here is None or answer is None:
        return None
    where = ls.client_range(here.path, answer.range, here.program)
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, answer.markdown), where)


@server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
async def on_definition(ls: FlowServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
    here = await ls.here(params.text_document.uri, params.position, fresh=False)
    if here is None:
        return None
    found = [loc for t in definition(here.program, here.path, here.pos)
             if (loc := ls.to_lsp_location(t, here.program)) is not None]
    return found or None


@server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["."]))
async def on_completion(ls: FlowServer, params: lsp.CompletionParams) -> lsp.CompletionList | None:
    path = path_of(params.text_document.uri)
    if path is None:
        return None
    text = ls.text_of(path)
    text = lsp_text(text) if text is not None else None
    pos = ls.to_pos(params.position, text, ls.has_bom(path)) if text is not None else None
    if text is None or pos is None:
        return None
    # the last program, even if a little stale: the text being typed rarely compiles cleanly; the cursor's
    # scope is looked up where the cursor was in the text it analysed (lines typed since shift the rest)
    program = (ls.worker.last(path) or await ls.worker.settled(path, None)).last_good()
    items = complete(program, path, text, pos, ls.shift(path, program, text).near_old(pos))
    return lsp.CompletionList(is_incomplete=False, items=[
        lsp.CompletionItem(c.label, kind=COMPLETION_KINDS.get(c.kind, lsp.CompletionItemKind.Text),
                           detail=c.detail or None) for c in items])


@server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def on_document_symbol(ls: FlowServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol] | None:
    here = await ls.here(params.text_document.uri, lsp.Position(0, 0), fresh=True)
    if here is None:
        return None
    lines, bom = here.text.split("\n"), ls.has_bom(here.path)
    return [ls.to_lsp_symbol(s, lines, bom) for s in document_symbols(here.program, here.path)]


@server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
def on_formatting(ls: FlowServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
    path = path_of(params.text_document.uri)
    if path is None:
        return None
    text = ls.text_of(path)
    if text is None:
        return None
    edit = format_document(lsp_text(text), str(path))
    bom = text.startswith(BOM)
    if edit is None and not bom:
        return []
    lines = lsp_text(text).split("\n")
    whole, new_text = edit or (Range(Pos(0, 0), Pos(len(lines) - 1, len(lines[-1]))), lsp_text(text))
    end = ls.to_lsp_range(whole, lines, bom).end
    return [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), end), new_text)]  # a byte order mark goes, as with bbflow fmt


@server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
async def on_references(ls: FlowServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
    """Every use of the name under the cursor, after the check of the text now. The bodies of a file with
    a syntax error are not checked: its uses are those of its last check without one (on the lines not
    edited since), and the editor is told so (a message), as it is of a file that never parsed."""
    here = await ls.here(params.text_document.uri, params.position, fresh=True, good=True)
    if here is None:
        return None
    latest = ls.worker.last(here.path)  # the program ``here`` waited for, before ``last_good``
    broken = latest.broken() if latest is not None else []
    if broken:
        ls.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Info, references_note(broken, here.program)))
    places = await asyncio.to_thread(references, here.program, here.path, here.pos)
    if not params.context.include_declaration:
        declared = set(definition(here.program, here.path, here.pos))
        places = [p for p in places if p not in declared]
    return [loc for p in places if (loc := ls.to_lsp_location(p, here.program)) is not None] or None


def references_note(broken: list[Path], program: Program) -> str:
    """What the references of a program whose ``broken`` files have a syntax error leave out."""
    older = [p.name for p in broken if p in program.good]
    never = [p.name for p in broken if p not in program.good]
    said = [f"the uses in {', '.join(older)} are those of its last check without a syntax error (lines edited "
            "since are left out)"] if older else []
    said += [f"{', '.join(never)} has a syntax error and no check without one: the uses in it are not listed"] \
        if never else []
    return "References: " + "; ".join(said)


@server.feature(lsp.TEXT_DOCUMENT_RENAME)
async def on_rename(ls: FlowServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
    here = await ls.here(params.text_document.uri, params.position, fresh=True)
    if here is None:
        return None
    try:
        places = await asyncio.to_thread(rename, here.program, here.path, here.pos, params.new_name)
    except RenameError as e:
        raise JsonRpcInvalidParams(message=str(e)) from None  # the editor shows the message
    changes: dict[str, list[lsp.TextEdit]] = {}
    for p in places:
        loc = ls.to_lsp_location(p, here.program)
        if loc is not None:
            changes.setdefault(loc.uri, []).append(lsp.TextEdit(loc.range, params.new_name))
    return lsp.WorkspaceEdit(changes=changes)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
async def on_code_action(ls: FlowServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction] | None:
    path = path_of(params.text_document.uri)
    opened = ls.document(path) if path is not None else None
    version = opened.version if opened is not None else None  # of the text ``here`` reads (no await between)
    here = await ls.here(params.text_document.uri, params.range.start, fresh=True)
    end = ls.to_pos(params.range.end, here.text, ls.has_bom(here.path)) if here is not None else None
    if here is None or end is None:
        return None
    start = here.pos
    mine = [d for d in diagnostics_by_file(here.program).get(here.path, [])
            if (d.range.start.line, d.range.start.character) <= (end.line, end.character)
            and (start.line, start.character) <= (d.range.end.line, d.range.end.character)]
    actions = []
    lines, bom = here.text.split("\n"), ls.has_bom(here.path)
    snippets = takes_snippet_edits(ls.client_capabilities)
    for fix in quick_fixes(here.program, here.path, mine):
        where = ls.to_lsp_range(fix.range, lines, bom)
        if fix.snippet is not None and snippets:
            edit = lsp.WorkspaceEdit(document_changes=[lsp.TextDocumentEdit(
                lsp.OptionalVersionedTextDocumentIdentifier(here.uri, version),
                [lsp.SnippetTextEdit(where, lsp.StringValue(fix.snippet))])])
        else:
            edit = lsp.WorkspaceEdit(changes={here.uri: [lsp.TextEdit(where, fix.new_text)]})
        fixed = ls.to_lsp_diagnostic(fix.diagnostic, here.path, here.program)
        actions.append(lsp.CodeAction(fix.title, kind=lsp.CodeActionKind.QuickFix, is_preferred=fix.preferred or None,
                                      diagnostics=[fixed] if fixed is not None else None, edit=edit))
    return actions


def takes_snippet_edits(capabilities: lsp.ClientCapabilities) -> bool:
    """Whether the client applies a ``SnippetTextEdit`` (LSP 3.18) in a code action's workspace edit: it
    must say so, and take ``documentChanges``, the only place a snippet edit can be."""
    workspace = capabilities.workspace
    edits = workspace.workspace_edit if workspace is not None else None
    return edits is not None and bool(edits.snippet_edit_support) and bool(edits.document_changes)


@server.feature(lsp.EXIT)
def on_exit(ls: FlowServer, params: Any) -> None:
    """Remember the status: pygls ends its loop on exit, but swallows the ``SystemExit`` it raises."""
    ls.exit_status = 0 if ls.protocol._shutdown else 1


def serve(port: int | None = None) -> None:
    """Speak LSP on standard input and output (or on 127.0.0.1:``port``) until the client says exit.

    On standard input and output, exits 0 after ``shutdown`` then ``exit``, else 1 (``exit`` alone, or
    the input closed without it), at once, even while a check runs. The interpreter hands the GIL between
    threads every millisecond (not every 5): the loop answering requests waits less behind the worker's check."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_Answers())
    if port is not None:
        server.start_tcp("127.0.0.1", port)
        return
    server.exit_status = 1
    server.start_io()
    server.worker.close()
    server.shutdown()
    # not sys.exit, which joins the worker's thread: the editor's exit waited for the check running (seconds on
    # a big project); the cache writes each entry to a temporary file first, so a check cut short harms nothing
    os._exit(server.exit_status)
