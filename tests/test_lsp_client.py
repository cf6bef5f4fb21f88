"""`bbflow lsp` end to end, driven by pytest-lsp's client over the server's standard input and output.

Each test starts ``python -m bbflow lsp`` in a subprocess. The tests of the
worker (answers while a check runs, cancellation) hold the server's checks
with a ``sitecustomize`` that makes each check wait while a file exists: the
test decides when a check may finish, so nothing depends on timing. (The raw
protocol abuse tests, which need malformed messages, are in
tests/test_lsp_server.py.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("pygls", reason="bbflow lsp needs the optional `lsp` extra")
pytest_lsp = pytest.importorskip("pytest_lsp")
pytest_asyncio = pytest.importorskip("pytest_asyncio")

from codegen_helpers import flows_project  # noqa: E402
from lsprotocol import types as lsp  # noqa: E402
from pygls.exceptions import JsonRpcException  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402
from test_lsp_server import FLOW  # noqa: E402

WAIT = 60.0  # seconds: only a guard against a hung server, never a measurement


#: makes every check of the server wait while the file named by $BBFLOW_TEST_HOLD exists (at most 60 s)
HOLD = """\
import os, time
import bbflow.lsp.worker as worker

_compile = worker.compile_program


def _held(*args, **kwargs):
    for _ in range(6000):
        if not os.path.exists(os.environ["BBFLOW_TEST_HOLD"]):
            break
        time.sleep(0.01)
    return _compile(*args, **kwargs)


worker.compile_program = _held
"""


def position(text: str, word: str, nth: int = 0, after: bool = False) -> lsp.Position:
    """The position of the ``nth`` occurrence of ``word`` (or just after it)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(word, at + 1)
    at += len(word) if after else 0
    return lsp.Position(text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1))


async def start(tmp_path: Path, *, env: dict[str, str] | None = None, watch: bool = True,
                edits: lsp.WorkspaceEditClientCapabilities | None = None) -> LanguageClient:
    config = ClientServerConfig([sys.executable, "-m", "bbflow", "lsp"], server_env={**os.environ, **(env or {})})
    client = await config.start()
    assert isinstance(client, LanguageClient)
    client.registrations: list[lsp.Registration] = []  # type: ignore[attr-defined]
    client.registered = asyncio.Event()  # type: ignore[attr-defined]

    @client.feature(lsp.CLIENT_REGISTER_CAPABILITY)
    def registered(params: lsp.RegistrationParams) -> None:
        client.registrations.extend(params.registrations)  # type: ignore[attr-defined]
        client.registered.set()  # type: ignore[attr-defined]

    watched = lsp.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True) if watch else None
    try:
        await client.initialize_session(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(workspace=lsp.WorkspaceClientCapabilities(
                did_change_watched_files=watched, workspace_edit=edits)),
            root_uri=tmp_path.as_uri()))
    except BaseException:
        await stop(client)
        raise
    return client


async def stop(client: LanguageClient) -> None:
    """Shut the server down as an editor does; a server that has not exited by then (a failed or hung
    shutdown) is killed, so no test leaves its process behind."""
    try:
        await asyncio.wait_for(client.shutdown_session(), WAIT)
    finally:
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()
        await client.stop()


@pytest_asyncio.fixture
async def project(tmp_path: Path) -> Path:
    return flows_project(tmp_path, {"cell.flow": FLOW})


@pytest_asyncio.fixture
async def client(project: Path) -> AsyncIterator[LanguageClient]:
    c = await start(project)
    yield c
    await stop(c)


@pytest_asyncio.fixture
async def held(project: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[LanguageClient, Path]]:
    """A server whose checks wait while the returned file exists."""
    site = tmp_path_factory.mktemp("site")
    (site / "sitecustomize.py").write_text(HOLD, encoding="utf-8")
    hold = site / "hold"
    c = await start(project, env={"PYTHONPATH": str(site), "BBFLOW_TEST_HOLD": str(hold)})
    yield c, hold
    hold.unlink(missing_ok=True)
    await stop(c)


def open_file(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "bbflow", version, text)))
    return uri


def change(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        lsp.VersionedTextDocumentIdentifier(version, uri), [lsp.TextDocumentContentChangeWholeDocument(text)]))


async def diagnostics(client: LanguageClient, uri: str, codes: list[str] | None = None) -> list[lsp.Diagnostic]:
    """The diagnostics of ``uri`` once published (with exactly ``codes``, when given)."""
    async def wait() -> list[lsp.Diagnostic]:
        while True:
            found = client.diagnostics.get(uri)
            if found is not None and (codes is None or [str(d.code) for d in found] == codes):
                return list(found)
            await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    return await asyncio.wait_for(wait(), WAIT)


def doc(uri: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri)


# --- a session -----------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_session_diagnostics_hover_definition_completion_symbols(client: LanguageClient,
                                                                         project: Path) -> None:
    uri = open_file(client, project / "flows" / "cell.flow", FLOW)
    [diag] = await diagnostics(client, uri)
    start = position(FLOW, "mvoe_to(")
    assert diag.code == "BBF101" and diag.range == lsp.Range(start, lsp.Position(start.line, start.character + 7))
    assert diag.severity == lsp.DiagnosticSeverity.Error and diag.source == "bbflow"
    assert "move_to" in diag.message  # the help ("did you mean") is part of the message
    assert diag.code_description is not None and diag.code_description.href.endswith("BBF101.md")

    shown = await client.text_document_hover_async(lsp.HoverParams(doc(uri), position(FLOW, "pick)")))
    assert shown is not None and "(param) pick: Pose" in shown.contents.value  # type: ignore[union-attr]
    explained = await client.text_document_hover_async(lsp.HoverParams(doc(uri), position(FLOW, "mvoe_to(")))
    assert explained is not None and "BBF101" in explained.contents.value  # type: ignore[union-attr]

    found = await client.text_document_definition_async(lsp.DefinitionParams(doc(uri), position(FLOW, "ready", 1)))
    ready = position(FLOW, "ready")
    assert found == [lsp.Location(uri, lsp.Range(ready, lsp.Position(ready.line, ready.character + 5)))]

    typing = FLOW.replace("mvoe_to(", "move_to(").replace("return there", "let p = pick.")
    change(client, uri, typing, 2)
    items = await client.text_document_completion_async(lsp.CompletionParams(
        doc(uri), position(typing, "pick.", after=True)))
    assert isinstance(items, lsp.CompletionList) and {i.label for i in items.items} == {"x", "y", "z"}

    change(client, uri, FLOW.replace("mvoe_to(", "move_to("), 3)
    await diagnostics(client, uri, [])  # the check after the last edit clears them

    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(uri)))
    assert symbols is not None and [s.name for s in symbols] == ["Pose", "Arm", "Go"]
    assert [c.name for c in symbols[2].children or []] == ["ready", "there"]  # type: ignore[union-attr]


# --- authoring: formatting, references, rename, code actions, completion of robot events --------------------

MESSY = "signal  a\nagent A {\non a {emit a}\n}\n"
CANONICAL = "signal a\nagent A {\n    on a { emit a }\n}\n"


@pytest.mark.asyncio
async def test_formatting_references_and_rename(client: LanguageClient, project: Path) -> None:
    uri = open_file(client, project / "flows" / "messy.flow", MESSY)
    edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
        doc(uri), lsp.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert list(edits or []) == [lsp.TextEdit(lsp.Range(lsp.Position(0, 0), lsp.Position(4, 0)), CANONICAL)]

    at = lsp.Position(2, 3)  # the `a` of `on a`
    found = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc(uri), position=at, context=lsp.ReferenceContext(include_declaration=True)))
    assert sorted((r.range.start.line, r.range.start.character) for r in found or []) == [(0, 8), (2, 3), (2, 11)]
    without = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc(uri), position=at, context=lsp.ReferenceContext(include_declaration=False)))
    assert sorted((r.range.start.line, r.range.start.character) for r in without or []) == [(2, 3), (2, 11)]

    renamed = await client.text_document_rename_async(lsp.RenameParams(doc(uri), at, "cell.go"))
    assert renamed is not None and renamed.changes is not None
    assert {e.new_text for e in renamed.changes[uri]} == {"cell.go"} and len(renamed.changes[uri]) == 3
    with pytest.raises(JsonRpcException) as refused:
        await client.text_document_rename_async(lsp.RenameParams(doc(uri), at, "on"))
    assert refused.value.code == -32602 and "'on' is not valid here" in refused.value.message


NO_UNDO = FLOW.replace("""    step ready = home() irreversible "parking"
    step there = mvoe_to(target: pick) after ready undo home()""", """    step there = move_to(target: pick)
    step back = hme() after there""")


@pytest.mark.asyncio
async def test_code_actions_for_did_you_mean_and_a_step_without_undo(client: LanguageClient, project: Path) -> None:
    uri = open_file(client, project / "flows" / "cell.flow", NO_UNDO)
    [typo] = await diagnostics(client, uri, ["BBF101"])
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        doc(uri), typo.range, lsp.CodeActionContext([typo])))
    assert [a.title for a in actions or [] if isinstance(a, lsp.CodeAction)] == ["Replace with `home`"]
    [replace] = [a for a in actions or [] if isinstance(a, lsp.CodeAction)]
    assert list(replace.diagnostics or []) == [typo]  # the diagnostic it fixes, as the client shows it

    change(client, uri, NO_UNDO.replace("hme()", "home()"), 2)
    [missing] = await diagnostics(client, uri, ["BBF401"])
    actions = await client.text_document_code_action_async(lsp.CodeActionParams(
        doc(uri), missing.range, lsp.CodeActionContext([missing])))
    titles = [a.title for a in actions or [] if isinstance(a, lsp.CodeAction)]
    assert "Add `undo`" in titles and "Add `irreversible`" in titles
    # this client does not take snippet edits: it gets the plain text, the snippet's first choice
    [undo] = [a for a in actions or [] if isinstance(a, lsp.CodeAction) and a.title == "Add `undo`"]
    assert undo.edit is not None and undo.edit.document_changes is None and undo.edit.changes is not None
    [edit] = undo.edit.changes[uri]
    assert edit.new_text == " undo home()"


@pytest_asyncio.fixture
async def snippet_client(project: Path) -> AsyncIterator[LanguageClient]:
    """A client that applies LSP 3.18 snippet edits in workspace edits."""
    c = await start(project, edits=lsp.WorkspaceEditClientCapabilities(document_changes=True,
                                                                       snippet_edit_support=True))
    yield c
    await stop(c)


@pytest.mark.asyncio
async def test_a_client_taking_snippet_edits_gets_add_undo_as_a_snippet(snippet_client: LanguageClient,
                                                                        project: Path) -> None:
    text = NO_UNDO.replace("hme()", "home()")
    uri = open_file(snippet_client, project / "flows" / "cell.flow", text, version=7)
    [missing] = await diagnostics(snippet_client, uri, ["BBF401"])
    actions = await snippet_client.text_document_code_action_async(lsp.CodeActionParams(
        doc(uri), missing.range, lsp.CodeActionContext([missing])))
    by_title = {a.title: a for a in actions or [] if isinstance(a, lsp.CodeAction)}
    undo = by_title["Add `undo`"].edit
    assert undo is not None and undo.changes is None and undo.document_changes is not None
    [change_] = undo.document_changes
    assert isinstance(change_, lsp.TextDocumentEdit)
    assert (change_.text_document.uri, change_.text_document.version) == (uri, 7)
    [edit] = change_.edits
    assert isinstance(edit, lsp.SnippetTextEdit)
    assert edit.snippet == lsp.StringValue(" undo ${1|home,move_to|}($2)")
    assert edit.range.start == edit.range.end == position(text, "step there = move_to(target: pick)", after=True)
    irreversible = by_title["Add `irreversible`"].edit  # a fix without a snippet stays a plain edit
    assert irreversible is not None and irreversible.changes is not None and irreversible.document_changes is None


ROBOT_EVENTS = """\
robot Arm {
    command home() -> {x: float}
    event force: {newtons: float}
    event bumped
}

agent Watch on Arm {
    on robot.event.
}
"""


@pytest.mark.asyncio
async def test_routes_complete_the_robots_events(client: LanguageClient, project: Path) -> None:
    uri = open_file(client, project / "flows" / "watch.flow", ROBOT_EVENTS)
    await diagnostics(client, uri)
    items = await client.text_document_completion_async(lsp.CompletionParams(
        doc(uri), position(ROBOT_EVENTS, "robot.event.", after=True)))
    assert isinstance(items, lsp.CompletionList) and {"force", "bumped"} <= {i.label for i in items.items}


# --- the worker: never waiting for a check, cancellation ---------------------------------------------------


async def edit_held(client: LanguageClient, hold: Path, project: Path, edited: str) -> str:
    """Open cell.flow, let its first check finish, then edit it to ``edited`` with the check of that held."""
    uri = open_file(client, project / "flows" / "cell.flow", FLOW)
    await diagnostics(client, uri, ["BBF101"])
    hold.touch()  # the next check waits
    change(client, uri, edited, 2)
    return uri


@pytest.mark.asyncio
async def test_hover_and_definition_answer_while_a_check_is_running(held: tuple[LanguageClient, Path],
                                                                    project: Path) -> None:
    client, hold = held
    edited = "# a new first line\n" + FLOW.replace("mvoe_to(", "move_to(")
    uri = await edit_held(client, hold, project, edited)
    # on lines the edit left alone, answered from the last program, at the places they are now
    shown = await client.text_document_hover_async(lsp.HoverParams(doc(uri), position(edited, "home()")))
    assert shown is not None and "(command) home()" in shown.contents.value  # type: ignore[union-attr]
    assert shown.range is not None and shown.range.start == position(edited, "home()")
    found = await client.text_document_definition_async(lsp.DefinitionParams(doc(uri), position(edited, "Pose", 3)))
    assert found is not None and [loc.range.start for loc in found] == [position(edited, "Pose")]  # type: ignore[union-attr]
    assert [str(d.code) for d in client.diagnostics[uri]] == ["BBF101"]  # the check has not finished
    hold.unlink()
    await diagnostics(client, uri, [])


@pytest.mark.asyncio
async def test_a_cancelled_request_is_answered_with_request_cancelled(held: tuple[LanguageClient, Path],
                                                                      project: Path) -> None:
    client, hold = held
    uri = await edit_held(client, hold, project, FLOW.replace("mvoe_to(", "move_to("))
    # the outline waits for the check of the current text, which is held: cancel it meanwhile
    waiting = asyncio.wrap_future(client.protocol.send_request(  # sent now (the _async form sends when awaited)
        lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL, lsp.DocumentSymbolParams(doc(uri)), msg_id="outline-1"))
    client.protocol.notify(lsp.CANCEL_REQUEST, lsp.CancelParams(id="outline-1"))
    with pytest.raises(JsonRpcException) as cancelled:
        await asyncio.wait_for(waiting, WAIT)
    assert cancelled.value.code == lsp.LSPErrorCodes.RequestCancelled == -32800
    hold.unlink()
    await diagnostics(client, uri, [])
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(uri)))
    assert symbols is not None and [s.name for s in symbols] == ["Pose", "Arm", "Go"]  # the server goes on


# --- files changed on disk, loose files, bbflow.toml ----------------------------------------------------------

SHAPES = "type Pose = {x: float, y: float, z: float}\n"
USER = "from shapes import Pose\n\nreactor Go(p: Pose) -> float {\n    return p.x\n}\n"


@pytest.mark.asyncio
async def test_files_changed_on_disk_are_watched_and_checked_again(client: LanguageClient, project: Path) -> None:
    await asyncio.wait_for(client.registered.wait(), WAIT)  # type: ignore[attr-defined]
    [registration] = client.registrations  # type: ignore[attr-defined]
    assert registration.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
    globs = {w["globPattern"] for w in registration.register_options["watchers"]}  # type: ignore[index]
    assert globs == {"**/*.flow", "**/bbflow.toml"}

    shapes = project / "flows" / "shapes.flow"
    shapes.write_text(SHAPES, encoding="utf-8")
    uri = open_file(client, project / "flows" / "user.flow", USER)
    await diagnostics(client, uri, [])
    before = await client.text_document_hover_async(lsp.HoverParams(doc(uri), position(USER, "p.x", after=True)))
    assert before is not None and "float" in before.contents.value  # type: ignore[union-attr]

    shapes.write_text(SHAPES.replace("x: float", "x: str"), encoding="utf-8")  # a `git checkout`
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(shapes.as_uri(), lsp.FileChangeType.Changed)]))
    [wrong] = await diagnostics(client, uri, ["BBF201"])
    assert "str" in wrong.message
    after = await client.text_document_hover_async(lsp.HoverParams(doc(uri), position(USER, "p.x", after=True)))
    assert after is not None and "str" in after.contents.value  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_a_loose_file_is_checked_alone(client: LanguageClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("loose").resolve()
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "deep" / "er" / "broken.flow").write_text("reactor {\n", encoding="utf-8")
    loose = folder / "alone.flow"
    text = "type P = {x: flaot}\n"
    uri = open_file(client, loose, text)
    [diag] = await diagnostics(client, uri)
    assert diag.code == "BBF101"
    assert set(client.diagnostics) == {uri}  # nothing of the folder around it was checked


@pytest.mark.asyncio
async def test_bbflow_toml_problems_are_its_diagnostics_and_follow_the_file(client: LanguageClient,
                                                                            project: Path) -> None:
    toml = project / "bbflow.toml"
    toml.write_text('[project]\nname = "cell"\nsource = "flows"\nsourcce = "x"\n', encoding="utf-8")
    uri = open_file(client, project / "flows" / "cell.flow", FLOW)
    [problem] = await diagnostics(client, toml.as_uri(), ["BBF701"])
    assert "sourcce" in problem.message and problem.range.start == lsp.Position(3, 0)
    await diagnostics(client, uri, ["BBF101"])
    toml.write_text('[project]\nname = "cell"\nsource = "flows"\n', encoding="utf-8")
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(
        [lsp.FileEvent(toml.as_uri(), lsp.FileChangeType.Changed)]))
    await diagnostics(client, toml.as_uri(), [])


def test_the_hold_is_a_module_the_server_can_import() -> None:
    """The sitecustomize above patches a name the worker really calls (so the held tests hold something)."""
    from bbflow.lsp import worker

    assert callable(worker.compile_program)
    assert "compile_program" in worker.Worker._run.__code__.co_names
