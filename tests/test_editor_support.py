"""Editor support: formatting through the language server, the TextMate grammar and the VS Code manifest."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bbflow.compiler.syntax import flow_parser
from bbflow.lsp.formatting import format_document

ROOT = Path(__file__).resolve().parent.parent
EDITORS = ROOT / "editors"

MESSY = "signal  a\nagent A {\non a {emit a}\n}\n"
CANONICAL = "signal a\nagent A {\n    on a { emit a }\n}\n"


def test_the_formatting_edit_replaces_the_document() -> None:
    edit = format_document(MESSY, "a.flow")
    assert edit is not None
    whole, text = edit
    assert text == CANONICAL
    assert (whole.start.line, whole.start.character, whole.end.line, whole.end.character) == (0, 0, 4, 0)
    assert format_document(CANONICAL, "a.flow") is None  # nothing to change
    assert format_document("reactor {\n", "a.flow") is None  # a syntax error: left alone


def test_formatting_over_the_protocol(tmp_path: Path) -> None:
    pytest.importorskip("pygls", reason="bbflow lsp needs the optional `lsp` extra")
    from test_lsp_server import Client

    (tmp_path / "bbflow.toml").write_text('[project]\nname = "cell"\n')
    (tmp_path / "cell.flow").write_text(MESSY)
    client = Client(tmp_path)
    try:
        init = client.request("initialize", {"processId": os.getpid(), "rootUri": tmp_path.as_uri(),
                                             "capabilities": {}})
        assert init["capabilities"]["documentFormattingProvider"]
        client.notify("initialized", {})
        uri = (tmp_path / "cell.flow").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "flow", "version": 1,
                                                                "text": MESSY}})
        edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                           "options": {"tabSize": 4, "insertSpaces": True}})
        assert edits == [{"range": {"start": {"line": 0, "character": 0}, "end": {"line": 4, "character": 0}},
                          "newText": CANONICAL}]
        client.request("shutdown")
        client.notify("exit")
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
        client.proc.communicate()


def test_the_textmate_grammar_knows_every_keyword() -> None:
    grammar = json.loads((EDITORS / "bbflow.tmLanguage.json").read_text())
    assert grammar["scopeName"] == "source.flow" and grammar["fileTypes"] == ["flow"]
    keywords = {t.pattern.value for t in flow_parser().terminals
                if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)}
    rules = json.dumps(grammar["repository"])
    missing = sorted(k for k in keywords if not re.search(rf"[|(:]{k}[|)\\]", rules))
    assert not missing, f"keywords without colour: {missing}"
    for rule in _rules(grammar["repository"]):  # every regex compiles (Python's syntax is close to Oniguruma's here)
        for key in ("match", "begin", "end"):
            if key in rule:
                re.compile(rule[key])


def test_the_vscode_manifest_points_at_the_grammar() -> None:
    manifest = json.loads((EDITORS / "package.json").read_text())
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".flow"] and grammar["language"] == language["id"] == "flow"
    assert (EDITORS / grammar["path"]).resolve() == (EDITORS / "bbflow.tmLanguage.json").resolve()
    assert grammar["scopeName"] == "source.flow"
    assert json.loads((EDITORS / language["configuration"]).read_text())["comments"]["lineComment"] == "#"


def _rules(node: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(node, dict):
        if any(k in node for k in ("match", "begin")):
            found.append(node)
        for value in node.values():
            found.extend(_rules(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_rules(value))
    return found


def test_routes_complete_the_agents_robot_events(tmp_path: Path) -> None:
    from bbflow.lsp.complete import complete
    from bbflow.lsp.locate import Pos
    from bbflow.lsp.program import compile_program

    text = ("robot Arm {\n    command home() -> bool\n    event force: {newtons: float}\n    event bumped\n}\n"
            "agent Picker on Arm {\n    on robot.event.\n}\n")
    path = tmp_path / "cell.flow"
    path.write_text(text)
    program = compile_program(path, {path: text})
    line = text.split("\n").index("    on robot.event.")
    got = {c.label for c in complete(program, path, text, Pos(line, len("    on robot.event.")))}
    assert {"force", "bumped"} <= got
    coordinator = text.replace("agent Picker on Arm", "agent Picker")
    got = {c.label for c in complete(program, path, coordinator, Pos(line, len("    on robot.event.")))}
    assert not {"force", "bumped"} & got  # an agent on no robot hears no robot's events
