"""The language server's handlers called in-process (the subprocess session is tests/test_lsp_server.py).

A ``FlowServer`` gets a workspace as ``initialize`` would give it; what it
publishes is captured instead of written to a client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls", reason="bbflow lsp needs the optional `lsp` extra")

from codegen_helpers import flows_project
from lsprotocol import types as lsp
from pygls.workspace import Workspace

from bbflow.lsp import server as lsp_server

SHAPES = "type Pose = {x: float, y: float}\n"
CELL = """\
from shapes import Pose

robot Arm {
    command move_to(target: Pose) -> Pose
}

reactor Go(p: Pose) -> Pose on Arm {
    step there = move_to(target: p) irreversible "parked"
    return there
}
"""


class Server(lsp_server.FlowServer):
    """A FlowServer that keeps what it would send; each test runs it in an event loop of its own."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.sent_params: list[lsp.PublishDiagnosticsParams] = []
        self.shown: list[str] = []  # the messages shown to the user
        self.protocol._workspace = Workspace(root.as_uri())

    def text_document_publish_diagnostics(self, params: lsp.PublishDiagnosticsParams) -> None:  # type: ignore[override]
        self.sent_params.append(params)

    def window_show_message(self, params: lsp.ShowMessageParams) -> None:  # type: ignore[override]
        self.shown.append(params.message)

    async def open(self, path: Path, text: str) -> str:
        """Open ``path`` with ``text`` and wait for its program."""
        uri = path.as_uri()
        self.edit(uri, text, 1)
        lsp_server.did_open(self, lsp.DidOpenTextDocumentParams(lsp.TextDocumentItem(uri, "bbflow", 1, text)))
        await self.worker.settled(path, text)
        return uri

    def edit(self, uri: str, text: str, version: int = 2) -> None:
        """The editor's buffer of ``uri`` is now ``text`` (no check is asked for)."""
        self.workspace.put_text_document(lsp.TextDocumentItem(uri, "bbflow", version, text))

    def last(self, uri: str) -> list[lsp.Diagnostic]:
        return [p for p in self.sent_params if p.uri == uri][-1].diagnostics


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return flows_project(tmp_path, {"shapes.flow": SHAPES})


def at(text: str, word: str) -> lsp.Position:
    return _position(text, text.index(word))


def _position(text: str, offset: int) -> lsp.Position:
    before = text[:offset]
    return lsp.Position(before.count("\n"), len(before) - (before.rfind("\n") + 1))


def test_open_publishes_the_programs_diagnostics_with_a_link_to_the_explanation(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", CELL.replace("move_to(target: p)", "mvoe_to(target: p)"))
        [diag] = ls.last(uri)
        assert diag.code == "BBF101" and "mvoe_to" in diag.message
        assert diag.range.start == at(CELL, "move_to(target: p)")
        assert diag.code_description is not None and diag.code_description.href.endswith("BBF101.md")

    run(scenario)


def test_an_unsaved_buffer_is_compiled_with_its_project(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"  # never written to disk
        uri = await ls.open(cell, CELL)
        assert ls.last(uri) == []
        program = ls.worker.last(cell)
        assert program is not None and program.module(cell) is not None

    run(scenario)


def test_hover_definition_symbols_and_completion(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        cell.write_text(CELL, encoding="utf-8")
        uri = await ls.open(cell, CELL)
        doc = lsp.TextDocumentIdentifier(uri)

        hover = await lsp_server.on_hover(ls, lsp.HoverParams(doc, at(CELL, "move_to(target: p)")))
        assert hover is not None and "move_to" in hover.contents.value  # type: ignore[union-attr]

        [target] = await lsp_server.on_definition(ls, lsp.DefinitionParams(doc, at(CELL, "Pose\n\nrobot"))) or []
        assert target.uri == (project / "flows" / "shapes.flow").as_uri() and target.range.start.line == 0

        symbols = await lsp_server.on_document_symbol(ls, lsp.DocumentSymbolParams(doc)) or []
        assert {s.name for s in symbols} >= {"Arm", "Go"}

        edited = CELL.replace("return there", "return th")
        ls.edit(uri, edited)
        found = await lsp_server.on_completion(ls, lsp.CompletionParams(doc, _after(edited, "return th")))
        assert found is not None and "there" in {item.label for item in found.items}

    run(scenario)


def test_a_byte_order_mark_is_a_character_of_the_first_line_to_the_client_and_none_to_the_compiler(
        project: Path) -> None:
    # a client whose text starts with U+FEFF counts it on the first line; the compiler drops it: the first
    # line's diagnostics, hover and definition were dropped (the line seemed edited since the check), the
    # outline was empty and every keyword was offered in the first declaration
    text = "\ufeff" + CELL.replace("from shapes import Pose\n", "from shapes import Pose, Nope\n")

    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        cell.write_text(text, encoding="utf-8")
        uri = await ls.open(cell, text)
        doc = lsp.TextDocumentIdentifier(uri)
        [diag] = ls.last(uri)
        assert "Nope" in diag.message and diag.range.start == at(text, "Nope")
        hover = await lsp_server.on_hover(ls, lsp.HoverParams(doc, at(text, "Pose")))
        assert hover is not None and hover.range is not None and hover.range.start == at(text, "Pose")
        [target] = await lsp_server.on_definition(ls, lsp.DefinitionParams(doc, at(text, "Pose"))) or []
        assert target.uri == (project / "flows" / "shapes.flow").as_uri()
        symbols = await lsp_server.on_document_symbol(ls, lsp.DocumentSymbolParams(doc)) or []
        assert [s.selection_range.start for s in symbols] == [at(text, "Arm {"), at(text, "Go(")]

        ls.edit(uri, "\ufeffty")
        found = await lsp_server.on_completion(ls, lsp.CompletionParams(doc, lsp.Position(0, 3)))
        assert found is not None and "type" in {i.label for i in found.items}
        assert not {"step", "after", "emit"} & {i.label for i in found.items}

        ls.edit(uri, text.replace("robot Arm", "robot   Arm"))
        [edit] = lsp_server.on_formatting(ls, lsp.DocumentFormattingParams(doc, lsp.FormattingOptions(4, True))) or []
        assert edit.range.start == lsp.Position(0, 0) and edit.new_text == text[1:]  # the mark goes, as in bbflow fmt

    run(scenario)


def test_half_of_a_utf16_pair_in_the_editors_text_is_checked_as_the_replacement_character_it_is_saved_as(
        project: Path) -> None:
    # a client may send a lone surrogate (an emoji cut in two, escaped in JSON): the check failed on encoding it,
    # and the file got one BBF900 "internal compiler error" instead of its diagnostics
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL.replace("robot Arm {", "# \ud83d in a comment\nrobot Arm {"))
        assert ls.last(uri) == []
        text = CELL.replace("return there", "return \ud83dthere")
        uri = await ls.open(cell, text)
        [diag] = ls.last(uri)
        assert diag.code == "BBF001" and "\ufffd" in diag.message and diag.range.start == at(text, "\ud83d")

    run(scenario)


def test_a_rename_right_after_an_edit_of_another_open_file_renames_the_uses_that_edit_made(project: Path) -> None:
    # the rename waited for its own file's check only: the other file's edit, whose check waits for typing to
    # pause, was not checked yet, so the use it added was left behind (and a use on a line it moved, dropped)
    async def scenario() -> None:
        ls = Server(project)
        cell, shapes = project / "flows" / "cell.flow", project / "flows" / "shapes.flow"
        cell.write_text(CELL, encoding="utf-8")
        uri = await ls.open(cell, CELL)
        shapes_uri = await ls.open(shapes, SHAPES)
        edited = CELL.replace("reactor Go(", "type Other = Pose\n\nreactor Go(")
        ls.edit(uri, edited)  # no check asked for yet: typing has not paused
        found = await lsp_server.on_rename(ls, lsp.RenameParams(
            text_document=lsp.TextDocumentIdentifier(shapes_uri), position=at(SHAPES, "Pose"), new_name="Pose2"))
        assert found is not None and found.changes is not None
        renamed = sorted((e.range.start.line, e.range.start.character) for e in found.changes[uri])
        lines = edited.split("\n")
        assert renamed == [(n, i) for n, line in enumerate(lines) for i in range(len(line)) if line.startswith("Pose", i)]

    run(scenario)


def test_a_file_open_by_two_paths_is_checked_as_the_one_being_edited(project: Path, tmp_path: Path) -> None:
    # a project opened through a link, and a file of it opened by its real path too (a jump to a definition
    # gives that one): the check read the buffer opened last, so the edits of the other were never checked
    link = tmp_path / "link"
    link.symlink_to(project)
    cell = project / "flows" / "cell.flow"
    cell.write_text(CELL, encoding="utf-8")
    broken = CELL.replace("move_to(target: p)", "mvoe_to(target: p)")

    async def scenario() -> None:
        ls = Server(project)
        real = await ls.open(cell, CELL)
        linked = await ls.open(link / "flows" / "cell.flow", CELL)
        ls.workspace.update_text_document(lsp.VersionedTextDocumentIdentifier(2, real),
                                          lsp.TextDocumentContentChangeWholeDocument(broken))
        await ls.worker.settled(cell, broken)
        [diag] = ls.last(real)
        assert diag.code == "BBF101" and "mvoe_to" in diag.message
        ls.workspace.remove_text_document(real)  # closed without saving: the other one is the file's buffer again
        lsp_server.did_close(ls, lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(real)))
        await ls.worker.settled(cell, CELL)
        assert ls.last(linked) == []

    run(scenario)


def test_hover_answers_from_the_last_program_on_a_line_the_edit_left_alone(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL)
        edited = "# a new first line\n" + CELL.replace("return there", "return th")
        ls.edit(uri, edited)  # not checked yet
        doc = lsp.TextDocumentIdentifier(uri)
        hover = await lsp_server.on_hover(ls, lsp.HoverParams(doc, at(edited, "move_to(target: p)")))
        assert hover is not None and "move_to" in hover.contents.value  # type: ignore[union-attr]
        assert hover.range is not None and hover.range.start == at(edited, "move_to(target: p)")
        assert await lsp_server.on_hover(ls, lsp.HoverParams(doc, at(edited, "th\n"))) is None  # an edited line

    run(scenario)


def _after(text: str, words: str) -> lsp.Position:
    return _position(text, text.index(words) + len(words))


def test_an_edit_is_checked_once_typing_pauses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lsp_server, "DEBOUNCE", 0.0)

    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL)
        broken = CELL.replace("-> Pose on Arm", "-> Pos on Arm")
        ls.edit(uri, broken)
        change: Any = lsp.DidChangeTextDocumentParams(lsp.VersionedTextDocumentIdentifier(2, uri), [])
        await lsp_server.did_change(ls, change)
        await ls.worker.settled(cell, broken)
        assert [d.code for d in ls.last(uri)] == ["BBF101"]

    run(scenario)


def test_closing_an_unsaved_file_clears_its_diagnostics(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL.replace("move_to(target: p)", "mvoe_to(target: p)"))
        assert ls.last(uri) != []
        ls.workspace.remove_text_document(uri)  # what pygls does before the server's handler is called
        lsp_server.did_close(ls, lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri)))
        assert ls.last(uri) == []

    run(scenario)


def test_a_broken_project_file_is_a_diagnostic_of_bbflow_toml_at_the_key(project: Path) -> None:
    (project / "bbflow.toml").write_text('[project]\nname = "cell"\nsourc = "flows"\n', encoding="utf-8")

    async def scenario() -> None:
        ls = Server(project)
        await ls.open(project / "flows" / "cell.flow", CELL)
        [diag] = ls.last((project / "bbflow.toml").as_uri())
        assert diag.code == "BBF701" and "sourc" in diag.message and diag.range.start == lsp.Position(2, 0)

    run(scenario)


def test_while_a_file_has_a_syntax_error_hover_answers_from_its_last_check_without_one(project: Path) -> None:
    from bbflow.lsp.analysis import hover
    from bbflow.lsp.locate import Pos

    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL)
        typing = CELL + "reactor Half(\n"  # a syntax error: the file's bodies are not checked
        ls.edit(uri, typing)
        latest = await ls.worker.settled(cell, typing)
        assert [d.code for d in ls.last(uri)] == ["BBF001"]
        where = at(typing, "p) irreversible")
        assert hover(latest, cell, Pos(where.line, where.character)) is None  # the broken check knows no types
        shown = await lsp_server.on_hover(ls, lsp.HoverParams(lsp.TextDocumentIdentifier(uri), where))
        assert shown is not None and "(param) p: Pose" in shown.contents.value  # type: ignore[union-attr]

    run(scenario)


def test_an_edit_after_a_form_feed_lands_where_the_editor_made_it(project: Path) -> None:
    # pygls split a document's lines with str.splitlines, which ends one at a form feed (whitespace in
    # a .flow file): the editor's line 0 was two lines to the server, and the edit went before the \f
    ls = Server(project)
    uri = (project / "flows" / "cell.flow").as_uri()
    ls.edit(uri, "type A = int  \f# page\u2028two\ntype B = int\n", 1)
    end_of_line_0 = lsp.Position(0, len("type A = int  \f# page\u2028two"))
    change = lsp.TextDocumentContentChangePartial(range=lsp.Range(end_of_line_0, end_of_line_0), text="!")
    ls.workspace.update_text_document(lsp.VersionedTextDocumentIdentifier(2, uri), change)
    assert ls.workspace.get_text_document(uri).source == "type A = int  \f# page\u2028two!\ntype B = int\n"


def test_a_file_with_old_mac_line_ends_gets_its_diagnostics_where_the_editor_shows_them(project: Path) -> None:
    text = CELL.replace("move_to(target: p)", "mvoe_to(target: p)")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", text.replace("\n", "\r"))
        [diag] = ls.last(uri)  # it was none: the editor's text was one line, the compiler's many
        assert diag.code == "BBF101" and diag.range.start == at(text, "mvoe_to")
        hover = await lsp_server.on_hover(ls, lsp.HoverParams(lsp.TextDocumentIdentifier(uri), at(text, "Pose) ->")))
        assert hover is not None and "Pose" in hover.contents.value  # type: ignore[union-attr]

    run(scenario)


def test_deleting_the_only_saved_file_of_a_project_rechecks_the_open_unsaved_one(project: Path) -> None:
    # the check was asked for the deleted file: "no .flow files found" became a BBF900 published on it,
    # and the open file's diagnostics were cleared
    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"  # never saved
        uri = await ls.open(cell, CELL)
        assert ls.last(uri) == []
        shapes = project / "flows" / "shapes.flow"
        shapes.unlink()
        lsp_server.did_change_watched_files(ls, lsp.DidChangeWatchedFilesParams(
            [lsp.FileEvent(shapes.as_uri(), lsp.FileChangeType.Deleted)]))
        await ls.worker.settled(cell, CELL)
        [diag] = ls.last(uri)
        assert diag.code == "BBF103" and "`shapes` not found" in diag.message
        assert not any(d.code == "BBF900" for p in ls.sent_params for d in p.diagnostics)

    run(scenario)


def test_a_diagnostic_left_out_while_its_line_was_edited_is_sent_by_the_next_check(project: Path) -> None:
    from bbflow.lsp.program import compile_program

    broken = CELL.replace("move_to(target: p)", "mvoe_to(target: p)")

    async def scenario() -> None:
        ls = Server(project)
        cell = project / "flows" / "cell.flow"
        uri = await ls.open(cell, CELL)
        assert ls.last(uri) == []
        checked = compile_program(cell, {cell: broken})  # a check of the text with the mistake...
        ls.edit(uri, broken.replace("mvoe_to(target: p)", "mvoe_to(target: p )"))  # ...finishing while that line changes
        ls.publish(checked)
        assert ls.last(uri) == []  # on an edited line: left out
        ls.edit(uri, broken)
        ls.publish(compile_program(cell, {cell: broken}))  # the same diagnostic, on the line as checked
        [diag] = ls.last(uri)  # it was not sent: the same as the last "sent", which the editor never got
        assert diag.code == "BBF101" and diag.range.start == at(broken, "mvoe_to")

    run(scenario)


@pytest.mark.parametrize("folder", ["cell #2", "50% done"])
def test_a_project_in_a_folder_whose_uri_needs_escapes_is_served_from_the_editors_buffer(
        tmp_path: Path, folder: str) -> None:
    # pygls keys its documents by the URI unquoted, which is no URI: `#` made the rest a fragment (the open
    # buffer was read as another file, the disk's text checked instead) and diagnostics went to a URI the
    # client never opened
    project = flows_project(tmp_path / folder, {"shapes.flow": SHAPES})
    cell = project / "flows" / "cell.flow"
    cell.write_text(CELL, encoding="utf-8")
    broken = CELL.replace("move_to(target: p)", "mvoe_to(target: p)")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(cell, broken)
        assert "%" in uri
        [diag] = ls.last(uri)
        assert diag.code == "BBF101" and diag.range.start == at(broken, "mvoe_to")
        assert {p.uri for p in ls.sent_params} == {uri, (project / "flows" / "shapes.flow").as_uri(),
                                                   (project / "bbflow.toml").as_uri()}
        doc = lsp.TextDocumentIdentifier(uri)
        hover = await lsp_server.on_hover(ls, lsp.HoverParams(doc, at(broken, "p) irreversible")))
        assert hover is not None and "(param) p: Pose" in hover.contents.value  # type: ignore[union-attr]
        [found] = await lsp_server.on_references(ls, lsp.ReferenceParams(
            lsp.ReferenceContext(include_declaration=True), doc, at(broken, "Go"))) or []
        assert found.uri == uri

    run(scenario)


@pytest.mark.parametrize("where", ["examples/demo.flow", "flows/.drafts/demo.flow"])
def test_an_open_file_that_is_no_source_of_its_project_is_checked_with_it(project: Path, where: str) -> None:
    # a saved file in the project's folder but outside its source folder (or in a hidden folder) was in no
    # program: no diagnostic, not even a syntax error, no hover, no definition
    demo = project / where
    demo.parent.mkdir(parents=True)
    demo.write_text(CELL, encoding="utf-8")
    broken = CELL.replace("move_to(target: p)", "mvoe_to(target: p)")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(demo, broken)
        [diag] = ls.last(uri)
        assert diag.code == "BBF101" and diag.range.start == at(broken, "mvoe_to")
        doc = lsp.TextDocumentIdentifier(uri)
        [target] = await lsp_server.on_definition(ls, lsp.DefinitionParams(doc, at(broken, "Pose\n\nrobot"))) or []
        assert target.uri == (project / "flows" / "shapes.flow").as_uri()
        ls.workspace.remove_text_document(uri)
        lsp_server.did_close(ls, lsp.DidCloseTextDocumentParams(doc))
        await ls.worker.settled(project / "flows" / "shapes.flow", None)
        assert ls.last(uri) == []  # closed: its diagnostics go with it

    run(scenario)


def test_completion_on_lines_typed_since_the_last_check_offers_the_names_of_their_reactor(project: Path) -> None:
    # the cursor was looked up in the last program's text at its line in the editor's text: after lines typed
    # that do not parse yet, that line was in the next reactor, whose names were offered instead
    text = CELL + "\nreactor Other(goal: Pose) -> Pose on Arm {\n" \
                  "    step far = move_to(target: goal) irreversible \"parked\"\n    return far\n}\n"
    typing = text.replace("    return there", "    let m = [1,\n        2,\n        3,\n        th\n    return there")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", text)
        ls.edit(uri, typing)  # a check would meet a syntax error: answers come from the one above
        doc = lsp.TextDocumentIdentifier(uri)
        found = await lsp_server.on_completion(ls, lsp.CompletionParams(doc, _after(typing, "        th")))
        labels = {item.label for item in found.items} if found is not None else set()
        assert {"p", "there"} <= labels and not {"goal", "far"} & labels

    run(scenario)


def test_a_standard_library_file_opened_by_a_jump_shows_no_diagnostics(project: Path) -> None:
    # go to definition on `fault` opens the library's prelude.flow: checked alone it declared again each
    # of the library's declarations, and the editor showed it full of BBF102
    text = CELL.replace("reactor Go", "reactor Safe(s: Safety) -> bool {\n    return s == fault\n}\n\nreactor Go")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", text)
        assert ls.last(uri) == []
        doc = lsp.TextDocumentIdentifier(uri)
        [target] = await lsp_server.on_definition(ls, lsp.DefinitionParams(doc, at(text, "fault"))) or []
        prelude = lsp_server.path_of(target.uri)
        assert prelude is not None and prelude.name == "prelude.flow"
        library = await ls.open(prelude, prelude.read_text(encoding="utf-8"))
        assert [p.diagnostics for p in ls.sent_params if p.uri == library and p.diagnostics] == []
        hover = await lsp_server.on_hover(ls, lsp.HoverParams(lsp.TextDocumentIdentifier(library), target.range.start))
        assert hover is not None and "Safety.fault" in hover.contents.value  # type: ignore[union-attr]

    run(scenario)


def test_a_file_of_a_nested_project_gets_the_diagnostics_of_its_own_project(tmp_path: Path) -> None:
    # the outer project's check reads the nested project's files too (as its modules, their imports not
    # found): each of its checks published a BBF103 on them, and the nested project's check took it back
    outer = flows_project(tmp_path, {"top.flow": SHAPES}, name="outer")
    inner = flows_project(outer / "flows" / "inner", {"shapes.flow": SHAPES}, name="inner")
    use = inner / "flows" / "use.flow"
    use.write_text(CELL, encoding="utf-8")

    async def scenario() -> None:
        ls = Server(outer)
        uri = await ls.open(use, CELL)
        assert ls.last(uri) == []
        await ls.open(outer / "flows" / "top.flow", SHAPES)  # the outer project is checked
        assert ls.last(uri) == []

    run(scenario)


AGENT = CELL + """
signal pick.requested: {at: Pose}
signal pick.done: {at: Pose}
signal pick.failed: {why: str}

agent Picker on Arm {
    on pick.requested as req {
        run Go(p: req.data.at) then {
            emit pick.done {at: result}
        } else {
            emit pick.failed {why: error.message}
        }
    }
}
"""


@pytest.mark.parametrize(("after", "typed", "expected"), [
    ("            emit pick.done {at: result}\n", "            emit pick.done {at: result.", {"x", "y"}),
    ("        run Go(p: req.data.at) then {\n", "            emit pick.done {at: result.", {"x", "y"}),
    ("            emit pick.failed {why: error.message}\n", "            emit pick.failed {why: error.",
     {"message", "code"}),
    ("        } else {\n", "            emit pick.failed {why: error.", {"message", "code"}),
])
def test_completion_after_result_and_error_on_a_line_typed_in_a_run_block(
        project: Path, after: str, typed: str, expected: set[str]) -> None:
    # `result.` and `error.` offered nothing: the names a run binds in its blocks were not in scope

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", AGENT)
        assert ls.last(uri) == []
        typing = AGENT.replace(after, after + typed + "\n")
        ls.edit(uri, typing)  # a syntax error until the line is done: answers come from the check above
        found = await lsp_server.on_completion(ls, lsp.CompletionParams(lsp.TextDocumentIdentifier(uri),
                                                                        _after(typing, typed)))
        assert found is not None and {item.label for item in found.items} == expected

    run(scenario)


USES = """\
from cell import Go
from shapes import Pose

reactor Twice(p: Pose) -> Pose {
    step first = Go(p: p)
    step again = Go(p: first) after first
    return again
}
"""


@pytest.mark.parametrize(("broken", "left_out"), [
    ("    step first = Go(p: p)\n", "    step first = Go(p: p)\n    step = (\n"),  # a line of its own
    ("    step again = Go(p: first) after first\n", "    step again = Go(p: first) after first (\n"),  # a use's
])
def test_references_while_a_file_has_a_syntax_error_come_from_its_last_check_without_one(
        project: Path, broken: str, left_out: str) -> None:
    # the bodies of a file with a syntax error are not checked: the uses in them were left out, silently
    async def scenario() -> None:
        ls = Server(project)
        await ls.open(project / "flows" / "cell.flow", CELL)
        uri = await ls.open(project / "flows" / "twice.flow", USES)
        typing = USES.replace(broken, left_out)
        ls.edit(uri, typing)
        params = lsp.ReferenceParams(context=lsp.ReferenceContext(include_declaration=True),
                                     text_document=lsp.TextDocumentIdentifier(uri), position=at(typing, "first ="))
        found = await lsp_server.on_references(ls, params)
        assert [d.code for d in ls.last(uri)] == ["BBF001"]
        assert found is not None and {loc.uri for loc in found} == {uri}
        starts = [loc.range.start for loc in found]
        uses = [at(typing, "first ="), at(typing, "first) after"), _after(typing, "after ")]
        assert starts == (uses if "step = (" in left_out else uses[:1])  # a use on a line edited since: left out
        assert ls.shown == ["References: the uses in twice.flow are those of its last check without a syntax "
                            "error (lines edited since are left out)"]

    run(scenario)


def test_references_while_a_file_never_parsed_say_its_uses_are_not_listed(project: Path) -> None:
    async def scenario() -> None:
        ls = Server(project)
        cell = await ls.open(project / "flows" / "cell.flow", CELL)
        await ls.open(project / "flows" / "twice.flow", USES.replace("    return again\n", "    return again (\n"))
        params = lsp.ReferenceParams(context=lsp.ReferenceContext(include_declaration=True),
                                     text_document=lsp.TextDocumentIdentifier(cell), position=at(CELL, "Go("))
        found = await lsp_server.on_references(ls, params)
        assert found is not None and [loc.range.start.line for loc in found if loc.uri != cell] == [0]  # its import
        assert ls.shown == ["References: twice.flow has a syntax error and no check without one: the uses in it "
                            "are not listed"]
        ls.edit(cell, CELL)
        await lsp_server.on_references(ls, params)  # the other file still broken: said again
        assert len(ls.shown) == 2

    run(scenario)


def test_a_request_resolves_each_open_documents_path_once_not_once_per_location(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every location and diagnostic sent looked its file up among the open documents by resolving each one's
    # URI again: 3 s for 121 references with 40 files open (and more with each file and each location)
    async def scenario() -> None:
        ls = Server(project)
        uris = [await ls.open(project / "flows" / f"cell{i}.flow", CELL.replace("Go(", f"Go{i}(")) for i in range(12)]
        resolved = 0
        resolve = lsp_server.path_of

        def counted(uri: str) -> Path | None:
            nonlocal resolved
            resolved += 1
            return resolve(uri)

        monkeypatch.setattr(lsp_server, "path_of", counted)
        found = await lsp_server.on_references(ls, lsp.ReferenceParams(
            context=lsp.ReferenceContext(include_declaration=True), text_document=lsp.TextDocumentIdentifier(uris[0]),
            position=at(CELL, "Pose\n\nrobot")))
        assert found is not None and len({loc.uri for loc in found}) == 13  # shapes.flow and the 12 cells
        assert resolved <= 2  # the request's URI (once for the request, not once per open file per location)

    run(scenario)


def test_closing_an_unsaved_file_checks_again_the_files_that_import_it(project: Path) -> None:
    # its buffer stayed in the project's program until the next edit: an import of it still resolved, silently
    async def scenario() -> None:
        ls = Server(project)
        user = project / "flows" / "user.flow"
        text = "from never_saved import Pose\n\ntype P = Pose\n"
        user.write_text(text, encoding="utf-8")
        uri = await ls.open(user, text)
        unsaved = project / "flows" / "never_saved.flow"
        await ls.open(unsaved, "type Pose = {x: float}\n")
        assert ls.last(uri) == []
        ls.workspace.remove_text_document(unsaved.as_uri())
        lsp_server.did_close(ls, lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(unsaved.as_uri())))
        await ls.worker.settled(user, None)
        assert [d.code for d in ls.last(uri)] == ["BBF103"]
        assert ls.last(unsaved.as_uri()) == []

    run(scenario)


def test_references_copy_and_split_the_files_text_once_not_once_per_location(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # each location sent copied (line ends) and split the whole file again: a second for the 3,000 references of
    # an input in a 3,000-step reactor
    steps = "".join(f'    step s{i} = move_to(target: p) irreversible "parked"\n' for i in range(60))
    text = CELL.replace("    return there\n", steps + "    return there\n")

    async def scenario() -> None:
        ls = Server(project)
        uri = await ls.open(project / "flows" / "cell.flow", text)
        copies = 0
        made = lsp_server.lsp_text

        def counted(source: str) -> str:
            nonlocal copies
            copies += 1
            return made(source)

        monkeypatch.setattr(lsp_server, "lsp_text", counted)
        found = await lsp_server.on_references(ls, lsp.ReferenceParams(
            context=lsp.ReferenceContext(include_declaration=True), text_document=lsp.TextDocumentIdentifier(uri),
            position=at(text, "p: Pose")))
        assert found is not None and len(found) == 62  # the input, and its 61 uses
        assert copies <= 2  # the request's text, and the file's for the locations

    run(scenario)
