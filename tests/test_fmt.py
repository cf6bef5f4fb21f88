"""``bbflow fmt``: the canonical layout, comments kept, idempotent, the same program; the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flow_strategies import GENERATED, PROGRAMS, SAMPLE
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bbflow.cli import main
from bbflow.compiler import FormatError, ast, format_text
from bbflow.compiler.syntax.parser import flow_parser, parse_text

ROOT = Path(__file__).resolve().parent.parent

# The same program twice: as someone might type it, and in the canonical layout.
GOLDEN = Path(__file__).resolve().parent / "golden"
MESSY = (GOLDEN / "fmt_messy.flow").read_text(encoding="utf-8")
CANONICAL = (GOLDEN / "fmt_canonical.flow").read_text(encoding="utf-8")


def fmt(*argv: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["fmt", *argv], input=stdin)


def test_the_canonical_layout() -> None:
    assert format_text(MESSY) == CANONICAL
    assert format_text(CANONICAL) == CANONICAL


def test_the_shipped_flows_are_in_the_canonical_layout() -> None:
    result = fmt("--check", str(ROOT / "examples"), str(ROOT / "bbflow" / "stdlib"), str(ROOT / "bbflow" / "scaffold"))
    assert result.exit_code == 0, result.output
    assert "0 files would be reformatted" in result.stderr


def test_comments_keep_their_lines_and_aligned_comments_stay_aligned() -> None:
    text = "signal a   # first\nsignal bb  # second\n\n\n\n# alone\nsignal c#tight\n"
    assert format_text(text) == "signal a   # first\nsignal bb  # second\n\n# alone\nsignal c  #tight\n"


def test_a_comment_before_a_closing_brace_is_indented_as_the_block() -> None:
    text = "agent A {\non x {\nemit y\n# last\n}\n}\nsignal x\nsignal y\n"
    assert format_text(text) == "agent A {\n    on x {\n        emit y\n        # last\n    }\n}\nsignal x\nsignal y\n"


def test_syntax_errors_are_refused() -> None:
    with pytest.raises(FormatError) as e:
        format_text("reactor {\n", "bad.flow")
    assert str(e.value).startswith("bad.flow:1:9: BBF001 expected a name after `reactor`")
    assert e.value.diagnostics[0].code == "BBF001"
    with pytest.raises(FormatError, match="BBF002"):
        format_text('signal a\naction f() = "x\\q"\n')


def test_crlf_and_trailing_space() -> None:
    assert format_text("signal a   \r\nsignal b\r\n\r\n\r\n") == "signal a\nsignal b\n"
    assert format_text("") == ""


def test_a_comment_ending_in_blanks_is_formatted_not_refused() -> None:
    # was refused as "internal error: the formatted text would not be the same program"
    assert format_text("signal a  # note \t\n") == "signal a  # note\n"


def test_a_byte_order_mark_is_read_as_check_reads_it(tmp_path: Path) -> None:
    assert format_text("\ufeffsignal a\r\n") == "signal a\n"  # was BBF001 unexpected character
    path = tmp_path / "bom.flow"
    path.write_bytes(b"\xef\xbb\xbfsignal a\n")
    assert fmt(str(path)).exit_code == 0 and path.read_bytes() == b"signal a\n"


# --- the command ------------------------------------------------------------------------


def test_check_diff_and_rewrite(tmp_path: Path) -> None:
    (tmp_path / "ok.flow").write_text(CANONICAL)
    messy = tmp_path / "sub" / "messy.flow"
    messy.parent.mkdir()
    messy.write_text(MESSY)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "skip.flow").write_text(MESSY)
    result = fmt("--check", str(tmp_path))
    assert result.exit_code == 1 and f"would reformat {messy}" in result.stderr
    assert "1 file would be reformatted, 1 unchanged" in result.stderr
    result = fmt("--diff", str(tmp_path))
    assert result.exit_code == 1 and "-type Pose={x:float,y:float,z:float}" in result.stdout
    assert "+type Pose = {x: float, y: float, z: float}" in result.stdout and messy.read_text() == MESSY
    result = fmt(str(tmp_path))
    assert result.exit_code == 0 and messy.read_text() == CANONICAL
    assert (tmp_path / ".hidden" / "skip.flow").read_text() == MESSY
    assert fmt("--check", str(messy)).exit_code == 0


def test_a_file_with_errors_is_left_alone_and_the_others_are_formatted(tmp_path: Path) -> None:
    (tmp_path / "bad.flow").write_text("reactor {\n")
    (tmp_path / "messy.flow").write_text(MESSY)
    result = fmt(str(tmp_path))
    assert result.exit_code == 2
    assert "bad.flow:1:9: BBF001" in result.stderr and (tmp_path / "bad.flow").read_text() == "reactor {\n"
    assert (tmp_path / "messy.flow").read_text() == CANONICAL


def test_standard_input_and_usage_errors(tmp_path: Path) -> None:
    result = fmt("-", stdin=MESSY)
    assert result.exit_code == 0 and result.stdout == CANONICAL
    assert fmt("--check", "-", stdin=MESSY).exit_code == 1
    assert fmt(str(tmp_path / "nope.flow")).exit_code == 2
    (tmp_path / "a.txt").write_text("x")
    assert "not a .flow file" in fmt(str(tmp_path / "a.txt")).stderr


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero")
def test_files_that_cannot_be_read_are_said_with_the_reason_and_never_block(tmp_path: Path) -> None:
    """A file named that is missing printed Python's "[Errno 2] No such file or directory: '...'"; a FIFO named
    x.flow blocked for ever, a link to /dev/zero read until memory ran out. Read as ``bbflow check`` reads."""
    import os

    os.mkfifo(tmp_path / "fifo.flow")
    (tmp_path / "zero.flow").symlink_to("/dev/zero")
    (tmp_path / "latin1.flow").write_bytes("type A = int\n# café\n".encode("latin-1"))
    (tmp_path / "messy.flow").write_text(MESSY)
    names = ["nope.flow", "fifo.flow", "zero.flow", "latin1.flow", "messy.flow"]
    result = fmt(*(str(tmp_path / name) for name in names))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'nope.flow'}: cannot read: No such file or directory",
        f"error: {tmp_path / 'fifo.flow'}: not a regular file",
        f"error: {tmp_path / 'zero.flow'}: not a regular file",
        f"error: {tmp_path / 'latin1.flow'}:2:6: not valid UTF-8 (byte 0xe9): save the file as UTF-8",
        f"reformatted {tmp_path / 'messy.flow'}",
        "1 file reformatted, 0 unchanged, 4 not formatted",
    ]
    assert (tmp_path / "messy.flow").read_text() == CANONICAL


def test_formatted_output_checks_the_same(tmp_path: Path) -> None:
    copy = tmp_path / "cell.flow"
    copy.write_text(MESSY)

    def found() -> list[tuple[str, str]]:
        out = CliRunner().invoke(main, ["check", "--format", "json", "--no-cache", str(copy)]).stdout
        return [(d["code"], d["message"]) for d in json.loads(out)["diagnostics"]]

    before = found()
    assert before  # MESSY has mistakes a check finds (a step named twice ...), so there is something to compare
    assert fmt(str(copy)).exit_code == 0
    assert found() == before


# --- properties -------------------------------------------------------------------------


def _valid(text: str) -> bool:
    return not parse_text(text)[1].has_errors()


def _assert_formats(text: str) -> None:
    out = format_text(text)
    assert format_text(out) == out
    before, after = parse_text(text)[0], parse_text(out)[0]
    assert ast.dump(before.decls) == ast.dump(after.decls) and ast.dump(before.imports) == ast.dump(after.imports)
    assert [c.text.rstrip() for c in before.comments] == [c.text for c in after.comments]
    assert all(line == line.rstrip() for line in out.splitlines())


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(GENERATED)
def test_programs_from_the_grammar_format_idempotently_to_the_same_tree(text: str) -> None:
    assume(_valid(text))
    _assert_formats(text)


VALID = [p for p in [*PROGRAMS, SAMPLE, MESSY] if _valid(p)]


@st.composite
def respaced(draw: st.DrawFn) -> str:
    """A valid program whose tokens are joined again by random whitespace, with comments added."""
    text = draw(st.sampled_from(VALID))
    interactive = flow_parser().parse_interactive(text)
    tokens = [str(t) for t in interactive.iter_parse()]
    separators = st.sampled_from([" ", "  ", "\n", "\n\n\n", "\t", " \n    ", "  # note\n"])
    return "".join(tok + draw(separators) for tok in tokens)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(respaced())
def test_respaced_real_programs_format_idempotently_to_the_same_tree(text: str) -> None:
    _assert_formats(text)


@pytest.mark.skipif(sys.platform == "win32", reason="a file size limit (RLIMIT_FSIZE)")
def test_a_file_that_cannot_be_written_whole_is_left_as_it_was(tmp_path: Path) -> None:
    """A full disk (here: a file size limit under the formatted size): the file was truncated, then written in
    part, and the rest of the source was lost. The new text replaces the old whole or not at all; the file is
    reported not formatted (exit 2), and a file written whole is still formatted."""
    import resource
    import signal
    import subprocess

    messy = "".join(f"signal s{i}.x:{{a:int}}\n" for i in range(200))  # longer once formatted
    limit = len(messy.encode()) + 16
    (tmp_path / "big.flow").write_text(messy)
    (tmp_path / "small.flow").write_text("type A  =  int\n")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "bbflow", "fmt", str(tmp_path)], capture_output=True, text=True,
                          preexec_fn=small_files, timeout=60)
    assert done.returncode == 2, done.stderr
    assert (tmp_path / "big.flow").read_text() == messy
    assert f"error: {tmp_path / 'big.flow'}: cannot write: File too large" in done.stderr
    assert (tmp_path / "small.flow").read_text() == "type A = int\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.flow", "small.flow"]  # no temporary file left


def test_a_block_opened_on_a_continuation_line_is_indented_by_its_statement() -> None:
    # the body went by the continuation line: one level too deep, and its `}` not under `reactor`
    text = ("reactor R(a: int,\n"
            "          b: int) -> int {\n"
            "    let s = a + b\n"
            "    switch t on s\n"
            "            > 1 {\n"
            "        case true { return s }\n"
            "        default { return b }\n"
            "    }\n"
            "    return t\n"
            "}\n")
    assert format_text(text) == ("reactor R(a: int,\n"
                                 "    b: int) -> int {\n"
                                 "    let s = a + b\n"
                                 "    switch t on s\n"
                                 "        > 1 {\n"
                                 "        case true { return s }\n"
                                 "        default { return b }\n"
                                 "    }\n"
                                 "    return t\n"
                                 "}\n")


def test_a_record_opened_on_a_continuation_line_still_goes_by_that_line() -> None:
    text = ("type P = {x: float, y: float}\n"
            "action f(p: P) -> P pure = \"m:f\"\n"
            "reactor R() -> P {\n"
            "    step a = f(p:\n"
            "        {x: 1.0,\n"
            "         y: 2.0})\n"
            "    return a\n"
            "}\n")
    out = format_text(text)
    assert "\n        {x: 1.0,\n            y: 2.0})\n" in out, out


def test_then_and_else_on_their_own_lines_hold_their_blocks_by_those_lines() -> None:
    text = ("signal go: {n: int}\n"
            "reactor R(n: int) -> int {\n    return n\n}\n"
            "agent A {\n"
            "    state { busy: bool = false }\n"
            "    on go as g\n"
            "        when not busy\n"
            "        and g.data.n > 0 {\n"
            "        run R(n: g.data.n)\n"
            "            then {\n"
            "                set busy = false\n"
            "            }\n"
            "            else { set busy = false\n"
            "                set busy = true }\n"
            "        if busy\n"
            "            and busy {\n"
            "            set busy = false\n"
            "        } else { set busy = true }\n"
            "    }\n"
            "}\n")
    assert format_text(text) == text
