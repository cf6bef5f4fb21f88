"""`bbflow check`: discovery, module names, formats, exit codes and the summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler import pipeline
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.pipeline import CompileResult, compile_paths, module_name
from bbflow.compiler.source import InputError
from bbflow.compiler.reports import report, summary
from bbflow.compiler.source import SourceFile, Span

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pick_and_place"
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())

CLEAN = """\
type Pose = {x: float, y: float, z: float}
"""
BROKEN = """\
type Pose = {x: float, y: float, z: float}

reactor Park() on Arm {
    step a home()
}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["check", *args])
    return result.exit_code, result.stdout, result.stderr


def write(folder: Path, rel: str, text: str) -> Path:
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clean_file(tmp_path: Path) -> None:
    code, out, err = run(str(write(tmp_path, "ok.flow", CLEAN)))
    assert (code, out, err) == (0, "", "no problems in 1 file\n")


def test_syntax_error_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bad.flow", BROKEN)
    code, out, err = run("bad.flow")
    assert code == 1
    assert out.startswith("error[BBF001]: ")
    assert " --> bad.flow:4:12\n" in out
    assert "4 |     step a home()" in out
    assert "\x1b[" not in out  # not a terminal: no colour
    assert err == "1 error in 1 file\n"


def test_json_format(tmp_path: Path) -> None:
    write(tmp_path, "a/bad.flow", BROKEN)
    write(tmp_path, "a/ok.flow", CLEAN)
    code, out, err = run("--format", "json", str(tmp_path / "a"))
    assert code == 1
    assert err == ""
    doc = json.loads(out)
    assert doc["files"] == 2
    [diag] = doc["diagnostics"]
    assert (diag["code"], diag["line"], diag["column"]) == ("BBF001", 4, 12)
    assert diag["file"] == str(tmp_path / "a" / "bad.flow")


def test_sarif_format(tmp_path: Path) -> None:
    code, out, _ = run("--format", "sarif", str(write(tmp_path, "bad.flow", BROKEN)))
    assert code == 1
    log = json.loads(out)
    jsonschema.validate(log, SCHEMA)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["BBF001"]


def test_default_path_is_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "one.flow", CLEAN)
    write(tmp_path, "sub/two.flow", CLEAN)
    write(tmp_path, ".hidden/three.flow", BROKEN)  # hidden folders (.venv, .git) are skipped
    monkeypatch.chdir(tmp_path)
    assert run() == (0, "", "no problems in 2 files\n")


def test_a_virtual_environment_in_the_project_folder_is_no_source(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # `python3 -m venv venv` + `pip install bbflow` puts the standard library's .flow files below venv/
    write(tmp_path, "bbflow.toml", '[project]\nname = "cell"\n')
    write(tmp_path, "cell.flow", CLEAN)
    write(tmp_path, "venv/pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path, "venv/lib/python3.11/site-packages/bbflow/stdlib/std/prelude.flow", BROKEN)
    write(tmp_path, "env/site-packages/x.flow", BROKEN)  # (a --target install)
    write(tmp_path, "ui/node_modules/x.flow", BROKEN)
    write(tmp_path, "sub/__pycache__/x.flow", BROKEN)
    write(tmp_path, "sub/two.flow", CLEAN)
    monkeypatch.chdir(tmp_path)
    assert run() == (0, "", "no problems in 2 files\n")
    assert run("--no-cache", str(tmp_path / "sub")) == (0, "", "no problems in 1 file\n")
    code = CliRunner().invoke(main, ["fmt", "--check"], catch_exceptions=False).exit_code
    assert code == 0  # fmt finds the same files (it would rewrite the library's files otherwise)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.flow", "no such file or folder"),
        (lambda tmp: write(tmp, "notes.txt", "hello"), "not a .flow file"),
        (lambda tmp: tmp, "no .flow files found"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(str(make(tmp_path)))
    assert code == 2
    assert out == ""
    assert message in err


def test_the_example_project_is_clean() -> None:
    code, out, err = run(str(EXAMPLE))
    assert (code, out) == (0, ""), out
    assert err == "no problems in 1 file\n"


# --- the pipeline -------------------------------------------------------------------


def test_module_names_under_a_project_source_root(tmp_path: Path) -> None:
    write(tmp_path, "bbflow.toml", '[project]\nname = "cell"\nsource = "flows"\n')
    write(tmp_path, "flows/cell/arm.flow", CLEAN)
    write(tmp_path, "flows/top.flow", CLEAN)
    write(tmp_path, "other/ignored.flow", BROKEN)  # outside the source folder
    result = compile_paths([tmp_path])
    assert [m.name for m in result.modules] == ["cell.arm", "top"]
    assert result.roots == [(tmp_path / "flows").resolve()]
    assert [p.name for p in result.projects] == ["cell"]
    # a folder or a file inside the project keeps the project's module names, and is checked as part of the
    # project (the project's other files are read, their diagnostics not shown)
    for inside in (tmp_path / "flows" / "cell", tmp_path / "flows" / "cell" / "arm.flow"):
        result = compile_paths([inside])
        assert [m.name for m in result.modules] == ["cell.arm", "top"] and result.files == 1
        assert [unit.display for unit in result.units if unit.display not in result.context] == [
            str(tmp_path / "flows" / "cell" / "arm.flow")]


def test_a_file_outside_the_source_folder_is_checked_with_its_project(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`bbflow check examples/demo.flow` checked the file alone (its imports of the project's modules were
    BBF103) while `bbflow check . examples/demo.flow` and an editor checked it with its project."""
    write(tmp_path, "bbflow.toml", '[project]\nname = "cell"\nsource = "flows"\n')
    write(tmp_path, "flows/cell.flow", "robot Arm {\n    command home()\n}\n")
    write(tmp_path, "examples/demo.flow", "from cell import Arm\n\nreactor Home() on Arm {\n    step h = hom()\n}\n")
    monkeypatch.chdir(tmp_path)
    alone, together = run("--no-cache", "examples/demo.flow"), run("--no-cache", ".", "examples/demo.flow")
    assert alone[:2] == together[:2] and alone[0] == 1
    assert "BBF103" not in alone[1] and "`home`?" in alone[1]  # the project's Arm.home
    assert alone[2] == "1 error in 1 file\n" and together[2] == "1 error in 2 files\n"
    for named in ("examples/demo.flow", "examples"):  # the file keeps its own name; so does a folder's
        result = compile_paths([named])
        assert [m.name for m in result.modules] == ["cell", "demo"] and result.files == 1


def test_module_names_without_a_project(tmp_path: Path) -> None:
    write(tmp_path, "lib/cell/arm.flow", CLEAN)
    assert [m.name for m in compile_paths([tmp_path / "lib"]).modules] == ["cell.arm"]
    assert [m.name for m in compile_paths([tmp_path / "lib" / "cell" / "arm.flow"]).modules] == ["arm"]
    assert module_name(Path("/r/a/b/c.flow"), Path("/r")) == "a.b.c"


def test_each_file_once(tmp_path: Path) -> None:
    file = write(tmp_path, "x.flow", CLEAN)
    assert compile_paths([file, tmp_path, file]).files == 1


def test_not_utf8_is_a_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "latin.flow"
    path.write_bytes(b"type A = int\n# caf\xe9\n")
    result = compile_paths([path])
    [diag] = result.diagnostics.items
    assert (diag.code, diag.span.line, diag.span.column) == ("BBF001", 2, 6)
    assert result.modules == []
    assert result.files == 1  # an unreadable file still counts in "1 error in 1 file"


def test_crlf_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / "dos.flow"
    path.write_bytes(BROKEN.replace("\n", "\r\n").encode())
    result = compile_paths([path])
    assert "\r" not in next(iter(result.sources.values())).text
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("BBF001", 4)]


def test_a_form_feed_does_not_shift_the_line_shown_under_a_diagnostic(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "ff.flow", "type A = int\n\f\ntype B = Nope\n")  # a form feed is whitespace, not a newline
    code, out, _ = run("ff.flow")
    assert code == 1 and " --> ff.flow:3:10\n" in out
    assert "3 | type B = Nope\n  |          ^~~~\n" in out  # the line was shown empty: the form feed ended one


def test_a_parser_crash_is_bbf900(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(source: SourceFile, name: str, diags: Diagnostics) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "parse_module", explode)
    result = compile_paths([write(tmp_path, "ok.flow", CLEAN)])
    [diag] = result.diagnostics.items
    assert diag.code == "BBF900"
    assert "RuntimeError: boom" in diag.message
    assert diag.notes and "explode" in diag.notes[0]


def test_unreadable_file_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "ok.flow", CLEAN)

    real_open = os.open

    def refuse(file: object, *args: object, **kwargs: object) -> int:
        if Path(str(file)).name == "ok.flow":
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(InputError, match="ok.flow: cannot read: Permission denied"):
        compile_paths([path])


# --- the report: summary and exit codes ---------------------------------------------


def test_summary_line() -> None:
    assert summary(2, 1, 14) == "2 errors, 1 warning in 14 files"
    assert summary(1, 0, 1) == "1 error in 1 file"
    assert summary(0, 3, 2) == "3 warnings in 2 files"
    assert summary(0, 0, 0) == "no problems in 0 files"


def test_exit_codes_and_strict() -> None:
    result = CompileResult()
    result.sources["a.flow"] = SourceFile("a.flow", "x\n")
    result.diagnostics.warning("BBF303", "unused", Span.point("a.flow", 1, 1))
    out = report(result, "text")
    assert (out.exit_code(strict=False), out.exit_code(strict=True)) == (0, 1)
    assert out.summary == "1 warning in 1 file"
    result.diagnostics.error("BBF101", "unknown", Span.point("a.flow", 1, 1))
    out = report(result, "json")
    assert (out.exit_code(strict=False), out.summary) == (1, None)
    assert [d["code"] for d in json.loads(out.body)["diagnostics"]] == ["BBF303", "BBF101"]


def test_a_broken_project_file_is_a_diagnostic_not_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path, "bbflow.toml", "[project]\nsorce = 'x'\n")
    write(tmp_path, "a.flow", "")
    code, out, _ = run(str(tmp_path))
    assert code == 1
    assert "error[BBF701]: project.sorce: unknown key" in out and "did you mean `source`?" in out


def test_sarif_for_a_broken_project_file_and_a_missing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "bbflow.toml", "[project\nname = 'x'\n")
    write(tmp_path, "cell.flow", CLEAN)
    code, out, _ = run("--format", "sarif", "--no-cache")
    assert code == 1
    log = json.loads(out)
    jsonschema.validate(log, SCHEMA)
    [invocation] = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is True
    [note] = invocation["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("bbflow.toml: invalid TOML")
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["BBF701"]
    code, out, err = run("--format", "sarif", str(tmp_path / "missing.flow"))
    assert code == 2 and "no such file" in err
    log = json.loads(out)
    jsonschema.validate(log, SCHEMA)
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is False


def test_redeclaring_a_standard_signal_says_the_standard_library_declares_it(tmp_path: Path) -> None:
    path = write(tmp_path, "std_signal.flow", "signal robot.state.changed: {from: str, to: str}\n")
    [d] = compile_paths([path]).diagnostics  # it said only "already declared", pointing into no file of the user's
    assert d.code == "BBF102" and d.message.endswith("is already declared by the standard library (std.prelude)")
    assert d.help is not None and "another name" in d.help


@pytest.mark.skipif(sys.platform != "linux", reason="a file name that is not UTF-8 (Linux takes any bytes)")
@pytest.mark.parametrize("cache", [(), ("--no-cache",)])
def test_a_file_name_that_is_not_utf8_is_checked_and_reported_in_every_format(tmp_path: Path,
                                                                              cache: tuple[str, ...]) -> None:
    """``caf\\xe9.flow``, a Latin-1 name from an old share or a USB stick: the cache's key, the JSON and the SARIF
    (its URI) all raised UnicodeEncodeError on the name Python reads as ``caf\\udce9.flow``. The JSON is valid
    UTF-8 (the byte as its ``\\u`` escape) and the URI has the byte percent-encoded, as RFC 3986 says."""
    (tmp_path / os.fsdecode(b"caf\xe9.flow")).write_text(BROKEN)

    def check(*args: str) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([sys.executable, "-m", "bbflow", "check", *cache, *args], cwd=tmp_path,
                              capture_output=True, timeout=60)
        assert done.returncode == 1 and b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
        return done

    assert b"caf\xe9.flow:4:12" in check().stdout  # the name as it is, for the terminal to show
    reported = json.loads(check("--format", "json").stdout.decode("utf-8"))
    assert {d["file"] for d in reported["diagnostics"]} == {os.fsdecode(b"caf\xe9.flow")}
    sarif = json.loads(check("--format", "sarif").stdout.decode("utf-8"))
    jsonschema.validate(sarif, SCHEMA)
    location = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "caf%E9.flow"


def on_a_terminal(argv: list[str], cwd: Path, **environ: str) -> str:
    """What ``bbflow ARGV`` prints on standard output when it is a terminal (a pseudo-terminal), with ``environ``."""
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "bbflow", *argv], cwd=cwd, stdout=follower,
                              stderr=subprocess.DEVNULL, env={**os.environ, **environ}, timeout=60)
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
    assert done.returncode == 1
    return out.decode()


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal")
def test_colour_only_on_a_terminal_that_reads_escapes_and_without_no_color(tmp_path: Path) -> None:
    """TERM=dumb (Emacs' shell and M-x compile) showed the escape sequences as text; an empty NO_COLOR, which
    https://no-color.org says is as if unset, turned colour off."""
    write(tmp_path, "broken.flow", BROKEN)
    argv = ["check", "--no-cache", "broken.flow"]
    assert "\x1b[" in on_a_terminal(argv, tmp_path, TERM="xterm", NO_COLOR="")
    for environ in ({"TERM": "dumb"}, {"TERM": "xterm", "NO_COLOR": "1"}):
        shown = on_a_terminal(argv, tmp_path, **environ)
        assert "\x1b" not in shown and "error[BBF" in shown, environ


def test_ctrl_c_during_a_check_exits_130_not_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check interrupted said click's "Aborted!" and exited 1, the status of a check that found errors."""
    import bbflow.compiler

    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bbflow.compiler, "compile_paths", interrupted)
    result = CliRunner().invoke(main, ["check", str(EXAMPLE)])
    assert result.exit_code == 130 and "interrupted" in result.stderr and "Aborted" not in result.output
