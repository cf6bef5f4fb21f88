"""The three renderers of diagnostics: text (golden files), JSON (shape), SARIF (schema)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from bbflow.compiler.diagnostics.codes import CODES
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label, Severity
from bbflow.compiler.diagnostics.render_json import render_json
from bbflow.compiler.diagnostics.render_sarif import file_uri, render_sarif
from bbflow.compiler.diagnostics.render_text import render_text
from bbflow.compiler.source import SourceFile, Span

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())
UPDATE = os.environ.get("BBFLOW_UPDATE_GOLDEN") == "1"  # regenerate golden files, then review the diff

FILE = "flows/cell.flow"
TEXT = """\
robot Arm {
    command move_to(target: Pose) -> Pose category motion
}

reactor Beep() on Arm {
    step a beep()
    step a = move_to(target: {x: 0.0,
\t\ty: 1.0, z: 0.2})
}
"""
SOURCES = {FILE: SourceFile(FILE, TEXT)}


def sample() -> Diagnostics:
    diags = Diagnostics()
    diags.error("BBF001", "expected `=` after the step name", Span(FILE, 6, 12, 6, 16),
                help="a step is written `step NAME = CALL`")
    diags.error("BBF102", "step `a` is defined twice", Span(FILE, 7, 10, 7, 11),
                labels=(Label(Span(FILE, 6, 10, 6, 11), "first defined here"),),
                notes=("steps of one reactor need distinct names",))
    diags.error("BBF203", "record has no field `y`", Span(FILE, 8, 3, 8, 4), help="did you mean `x`?")
    diags.error("BBF201", "expected `Pose`, found a record without `y`", Span(FILE, 7, 30, 8, 17))
    diags.warning("BBF303", "the value of step `a` is never used", Span.point(FILE, 6, 5))
    return diags


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text()


def test_text_golden_plain() -> None:
    check_golden("render_plain.txt", render_text(sample().sorted(), SOURCES))


def test_text_golden_colour() -> None:
    check_golden("render_colour.txt", render_text(sample().sorted(), SOURCES, color=True))


def test_text_has_colour_only_when_asked() -> None:
    plain = render_text(sample(), SOURCES)
    coloured = render_text(sample(), SOURCES, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in coloured


def test_text_caret_under_the_span() -> None:
    out = render_text([sample().items[0]], SOURCES).splitlines()
    assert out[0] == "error[BBF001]: expected `=` after the step name"
    assert out[1] == " --> flows/cell.flow:6:12"
    source_line = next(i for i, line in enumerate(out) if line.startswith("6 |"))
    assert out[source_line + 1].index("^") == out[source_line].index("beep")
    assert out[source_line + 1].endswith("^~~~")


def test_text_expands_tabs_consistently() -> None:
    out = render_text([sample().items[2]], SOURCES).splitlines()
    line = next(i for i, text in enumerate(out) if text.startswith("8 |"))
    assert "\t" not in out[line]
    assert out[line + 1].index("^") == out[line].index("y:")


def test_text_caret_stands_under_the_span_after_wide_characters() -> None:
    # an emoji or a CJK character takes two terminal cells, a combining accent none: the caret
    # was placed by characters, two cells left of `nope` per emoji
    from rich.cells import cell_len

    line = 'on a { emit a {s: "🤖日e\u0301"} emit nope }'
    source = SourceFile(FILE, line + "\n")
    column = line.index("nope") + 1
    diag = Diagnostic("BBF504", Severity.ERROR, "no signal `nope`", Span(FILE, 1, column, 1, column + 4))
    out = render_text([diag], {FILE: source}).splitlines()
    shown = next(i for i, text in enumerate(out) if text.startswith("1 |"))
    under = out[shown + 1]
    assert under.endswith("^~~~")
    assert cell_len(under[: under.index("^")]) == cell_len(out[shown][: out[shown].index("nope")])


def test_text_without_source_shows_the_location() -> None:
    diag = Diagnostic("BBF103", Severity.ERROR, "module `cell.arms` not found", Span.point("other.flow", 3, 6))
    assert render_text([diag], {}) == "error[BBF103]: module `cell.arms` not found\n --> other.flow:3:6\n\n"


def test_text_wide_gutter_for_big_line_numbers() -> None:
    text = "\n" * 120 + "step x = y\n"
    diag = Diagnostic("BBF101", Severity.ERROR, "unknown name `y`", Span("big.flow", 121, 10, 121, 11))
    out = render_text([diag], {"big.flow": SourceFile("big.flow", text)}).splitlines()
    assert out[1] == "   --> big.flow:121:10"
    assert out[3] == "121 | step x = y"
    assert out[4] == "    |          ^"


def test_json_shape_is_exactly_the_contract() -> None:
    report = json.loads(render_json(sample().items, files=3))
    assert set(report) == {"version", "diagnostics", "files"} and report["version"] == 1
    assert report["files"] == 3
    keys = {"code", "severity", "message", "file", "line", "column", "end_line", "end_column", "notes", "help"}
    for d in report["diagnostics"]:
        assert set(d) == keys
        assert isinstance(d["notes"], list)
        assert d["help"] is None or isinstance(d["help"], str)
    first = report["diagnostics"][0]
    assert first == {
        "code": "BBF001", "severity": "error", "message": "expected `=` after the step name",
        "file": FILE, "line": 6, "column": 12, "end_line": 6, "end_column": 16,
        "notes": [], "help": "a step is written `step NAME = CALL`",
    }


def test_json_labels_become_notes() -> None:
    report = json.loads(render_json([sample().items[1]], files=1))
    assert report["diagnostics"][0]["notes"] == [
        "steps of one reactor need distinct names", "first defined here (flows/cell.flow:6:10)"]


def test_json_warning_severity() -> None:
    report = json.loads(render_json([sample().items[4]], files=1))
    assert report["diagnostics"][0]["severity"] == "warning"


def test_sarif_validates_against_the_schema() -> None:
    log = json.loads(render_sarif(sample().sorted()))
    jsonschema.validate(log, SCHEMA)


def test_sarif_empty_run_validates() -> None:
    log = json.loads(render_sarif([]))
    jsonschema.validate(log, SCHEMA)
    assert log["runs"][0]["results"] == []


def test_schema_rejects_broken_sarif() -> None:
    """The schema is not vacuous: a misspelt region key or a bad level fails it."""
    log = json.loads(render_sarif(sample().sorted()))
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    region["startline"] = region.pop("startLine")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SCHEMA)
    log = json.loads(render_sarif(sample().sorted()))
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, SCHEMA)


def test_sarif_rules_and_results() -> None:
    log = json.loads(render_sarif(sample().sorted()))
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    assert all(r["help"]["text"].startswith(f"# {r['id']}") for r in rules)
    assert rules[list(CODES).index("BBF303")]["defaultConfiguration"]["level"] == "warning"
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["BBF303", "BBF001", "BBF102", "BBF201", "BBF203"]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
    dup = results[2]
    assert dup["level"] == "error"
    assert dup["message"]["text"] == "step `a` is defined twice\nnote: steps of one reactor need distinct names"
    loc = dup["locations"][0]["physicalLocation"]
    assert loc == {"artifactLocation": {"uri": "flows/cell.flow", "uriBaseId": "%SRCROOT%"},
                   "region": {"startLine": 7, "startColumn": 10, "endLine": 7, "endColumn": 11}}
    assert dup["relatedLocations"][0]["message"]["text"] == "first defined here"


def test_sarif_uris() -> None:
    assert file_uri("flows/my cell.flow") == "flows/my%20cell.flow"
    assert file_uri("/abs/cell.flow") == "file:///abs/cell.flow"


def test_a_label_in_another_file_gets_its_own_block() -> None:
    from bbflow.compiler.diagnostics.core import Diagnostic, Label, Severity
    from bbflow.compiler.diagnostics.render_text import render_text
    from bbflow.compiler.source import SourceFile, Span

    a = SourceFile("a.flow", "signal cell.start\n")
    b = SourceFile("b.flow", "signal cell.start: {count: int}\n")
    diag = Diagnostic("BBF102", Severity.ERROR, "signal `cell.start` is already declared", Span("b.flow", 1, 8, 1, 18),
                      labels=(Label(Span("a.flow", 1, 8, 1, 18), "first declared here"),))
    assert render_text([diag], {"a.flow": a, "b.flow": b}) == (
        "error[BBF102]: signal `cell.start` is already declared\n"
        " --> b.flow:1:8\n"
        "  |\n"
        "1 | signal cell.start: {count: int}\n"
        "  |        ^~~~~~~~~~\n"
        " ::: a.flow:1:8\n"
        "  |\n"
        "1 | signal cell.start\n"
        "  |        ---------- first declared here\n"
        "\n")
    # without the other file at hand, the label becomes a note naming its place
    assert "= note: first declared here (a.flow:1:8)" in render_text([diag], {"b.flow": b})


def test_sarif_for_code_scanning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fingerprints that survive moved lines, relative URIs against %SRCROOT%, the invocation, no fake URIs."""
    from bbflow.compiler.diagnostics.core import Diagnostic, Severity

    monkeypatch.chdir(tmp_path)
    source = SourceFile(FILE, TEXT)
    log = json.loads(render_sarif(sample().sorted(), {FILE: source}))
    jsonschema.validate(log, SCHEMA)
    run = log["runs"][0]
    assert run["invocations"] == [{"executionSuccessful": True}]
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": tmp_path.as_uri() + "/"}}
    assert "informationUri" not in run["tool"]["driver"]
    prints = [r["partialFingerprints"]["bbflow/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)
    moved = SourceFile(FILE, "\n\n" + TEXT)  # two lines added above: the same findings
    shifted = [Diagnostic(d.code, d.severity, d.message, Span(d.span.file, d.span.line + 2, d.span.column,
                                                              d.span.end_line + 2, d.span.end_column))
               for d in sample().sorted()]
    again = json.loads(render_sarif(shifted, {FILE: moved}))["runs"][0]["results"]
    assert [r["partialFingerprints"]["bbflow/v1"] for r in again] == prints
    inside = Diagnostic("BBF101", Severity.ERROR, "m", Span(str(tmp_path / "a.flow"), 1, 1, 1, 2))
    outside = Diagnostic("BBF101", Severity.ERROR, "m", Span("/elsewhere/b.flow", 1, 1, 1, 2))
    stdlib = Diagnostic("BBF101", Severity.ERROR, "m", Span("<stdlib>/std/prelude.flow", 1, 1, 1, 2))
    places = [r["locations"][0]["physicalLocation"]["artifactLocation"]
              for r in json.loads(render_sarif([inside, outside, stdlib]))["runs"][0]["results"]]
    assert places == [{"uri": "a.flow", "uriBaseId": "%SRCROOT%"}, {"uri": "file:///elsewhere/b.flow"},
                      {"uri": "stdlib/std/prelude.flow"}]


def test_sarif_when_the_check_cannot_run() -> None:
    from bbflow.compiler.diagnostics.render_sarif import render_sarif_failure

    log = json.loads(render_sarif_failure("nope.flow: no such file or folder"))
    jsonschema.validate(log, SCHEMA)
    [invocation] = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "nope.flow: no such file or folder"


def test_control_characters_from_the_file_are_shown_escaped(tmp_path: Path) -> None:
    from bbflow.compiler.pipeline import compile_paths

    (tmp_path / "evil.flow").write_text('reactor R() {\n    step a = nothing("\x1b]52;c;ZWNobyBoaQ==\x07\u202e")\n}\n')
    result = compile_paths([tmp_path])
    out = render_text(result.diagnostics.items, {str(k): v for k, v in result.sources.items()})
    assert result.diagnostics.items and "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]52;c;ZWNobyBoaQ==\\x07\\u202e" in out


def test_an_enormous_name_is_shortened_alike_in_text_json_and_sarif(tmp_path: Path) -> None:
    """A 5,000-character name was printed whole, in the message, the help and the source line."""
    from rich.cells import cell_len

    from bbflow.compiler.pipeline import compile_paths
    from bbflow.compiler.diagnostics.core import LONGEST_WORD

    name = "a" * 5000
    (tmp_path / "big.flow").write_text(f"enum E {{ {name} }}\nreactor R() -> E {{\n    return E.{name}x\n}}\n"
                                       f"reactor Q() -> int {{ return {name}y }}\n")
    result = compile_paths([tmp_path / "big.flow"])
    sources = {str(k): v for k, v in result.sources.items()}
    member = next(d for d in result.diagnostics.items if "no member" in d.message)
    assert member.message == f"enum `E` has no member `{'a' * 37}...{'a' * 36}x`"
    assert member.help == f"did you mean `{'a' * 37}...{'a' * 36}`?"
    text = render_text(result.diagnostics.items, sources)
    assert max(cell_len(line) for line in text.splitlines()) < 200
    assert len(result.diagnostics.items) == 2 and "unknown name" in text
    found = json.loads(render_json(result.diagnostics.items, 1))["diagnostics"]
    sarif = json.loads(render_sarif(result.diagnostics.items, sources))["runs"][0]["results"]
    everything = [*(d["message"] for d in found), *(r["message"]["text"] for r in sarif)]
    assert all(max(len(word) for word in m.split()) <= LONGEST_WORD for m in everything)
    assert member.message in [d["message"] for d in found] and any(member.message in t for t in everything[2:])


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_line_too_wide_is_shown_around_its_mark_with_the_caret_under_it(where: str) -> None:
    from rich.cells import cell_len

    pad = "日" * 100 + "x" * 100  # wide characters before the mark: counted in cells
    line = {"start": "nope " + pad + pad, "middle": pad + " nope " + pad, "end": pad + pad + " nope"}[where]
    column = line.index("nope") + 1
    diag = Diagnostic("BBF101", Severity.ERROR, "unknown name `nope`", Span(FILE, 1, column, 1, column + 4))
    out = render_text([diag], {FILE: SourceFile(FILE, line + "\n")}).splitlines()
    shown, under = out[3], out[4]
    assert shown.startswith("1 | ") and under.endswith("^~~~")
    assert cell_len(shown) <= 4 + 120 and (shown.startswith("1 | ...") == (where != "start"))
    assert shown.endswith("...") == (where != "end")
    assert cell_len(under[: under.index("^")]) == cell_len(shown[: shown.index("nope")])


def test_a_long_path_in_a_message_is_never_shortened(tmp_path: Path) -> None:
    """Shortening enormous names cut the paths of BBF105 in the middle too: the files could not be opened."""
    from bbflow.compiler.pipeline import compile_paths

    folder = tmp_path / "My Robot Cells" / ("station_with_two_grippers_and_a_camera_" * 3)  # a blank, and long
    (folder / "a.b").mkdir(parents=True)
    (folder / "a.b" / "c.flow").write_text("signal a.b\n")
    (folder / "a.b.c.flow").write_text("signal c.d\n")
    [twin] = [d for d in compile_paths([folder]).diagnostics.items if d.code == "BBF105"]
    assert twin.message == f"`{folder / 'a.b.c.flow'}` and `{folder / 'a.b' / 'c.flow'}` are both module `a.b.c`"
    # a path the diagnostic does not point at is kept whole too; an enormous name or string is still cut
    name, text, path = "n" * 100, '"' + "s/" * 50 + '"', str(folder / "x.flow")
    diag = Diagnostic("BBF101", Severity.ERROR, f"`{name}` {text} {path}", Span(FILE, 1, 1, 1, 2), help=path)
    assert diag.message == f"`{'n' * 37}...{'n' * 37}` {text[:38]}...{text[-38:]} {path}" and diag.help == path


def test_many_diagnostics_on_one_long_plain_line_do_not_measure_it_in_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """4,000 unknown names on a line of 30,000 characters took 36 s to show: each diagnostic measured the
    whole line in terminal cells, several times. A line of plain ASCII is a cell a character."""
    import rich.cells

    names = [f"zz{i}" for i in range(300)]
    line = "    return [" + ", ".join(names) + "]"
    diags = [Diagnostic("BBF101", Severity.ERROR, f"unknown name `{name}`",
                        Span(FILE, 2, line.index(name + ",") + 1 if name != names[-1] else line.index(name + "]") + 1,
                             2, line.index(name) + len(name) + 1))
             for name in names[::50]]
    sources = {FILE: SourceFile(FILE, "reactor R() -> list[int] {\n" + line + "\n}\n")}
    shown = render_text(diags, sources)
    assert "2 | ..., zz47, zz48" in shown and all(f"unknown name `{n}`" in shown for n in names[::50])

    def measured(text: str) -> int:
        raise AssertionError("a plain line measured in cells")

    monkeypatch.setattr(rich.cells, "cell_len", measured)
    assert render_text(diags, sources) == shown
