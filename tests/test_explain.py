"""The code registry, the explain pages, `bbflow explain`, and docs/diagnostics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler.diagnostics.codes import CODES, explain, normalize

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("code", list(CODES))
def test_every_code_has_a_page(code: str) -> None:
    page = explain(code)
    assert page.startswith(f"# {code}: ")
    assert f"Severity: {CODES[code].severity.value}" in page
    for section in ("## What it means", "## Example", "## How to fix"):
        assert section in page


def test_pages_are_exactly_the_registry() -> None:
    pages = {p.stem for p in (ROOT / "bbflow" / "explain").glob("*.md")}
    assert pages == set(CODES)


def test_registry_matches_the_docs_table() -> None:
    """docs/diagnostics.md, the users' reference, lists every code with its severity."""
    index = (ROOT / "docs" / "diagnostics.md").read_text()
    rows = re.findall(r"^\| \[(BBF\d{3})\]\(diagnostics/BBF\d{3}\.md\) \| (error|warning) \|", index, re.M)
    assert dict(rows) == {c.code: c.severity.value for c in CODES.values()}
    assert len(rows) == len(CODES)  # each code once


def test_normalize() -> None:
    assert normalize("bbf401") == normalize(" BBF401 ") == normalize("401") == "BBF401"
    assert normalize("1") == "BBF001"
    assert normalize("BBF999") is None
    with pytest.raises(KeyError):
        explain("BBF999")


def test_cli_explain_prints_the_page() -> None:
    result = CliRunner().invoke(main, ["explain", "BBF401"])
    assert result.exit_code == 0
    assert result.output == explain("BBF401")


def test_cli_explain_unknown_code_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["explain", "BBF999"])
    assert result.exit_code == 2
    assert "unknown code 'BBF999'" in result.output


def test_docs_diagnostics_is_the_same_text() -> None:
    link = ROOT / "docs" / "diagnostics"
    assert link.is_symlink()
    assert Path(link.readlink()) == Path("../bbflow/explain")
    assert (link / "BBF401.md").read_text() == explain("BBF401")


def test_docs_index_links_every_code() -> None:
    index = (ROOT / "docs" / "diagnostics.md").read_text()
    for code in CODES:
        assert f"[{code}](diagnostics/{code}.md)" in index


def test_the_compiler_reports_with_the_registry_constants() -> None:
    """Every code is a constant of the registry (``codes.BBF201``), and the compiler reports with it, never with
    the code's text: a misspelt code is a name error, not a new code no page explains."""
    from bbflow.compiler.diagnostics import codes

    assert all(getattr(codes, name) is code for name, code in CODES.items())
    written = re.compile(r"""\.(?:error|warning)\(\s*["']BBF|Diagnostic\(\s*["']BBF""")
    files = [ROOT / "bbflow" / "build.py", *(ROOT / "bbflow" / "compiler").rglob("*.py")]
    assert [f.name for f in files if written.search(f.read_text(encoding="utf-8"))] == []


def _blocks(code: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", explain(code), re.M | re.S)


def test_the_bbf601_page_wrong_driver_has_every_problem_it_marks_and_the_fix_none() -> None:
    from arm_spec import ARM

    from bbflow.runtime.driver_check import check_driver

    wrong, fixed = ({"__name__": "page"} for _ in range(2))
    exec(_blocks("BBF601", "python")[0], wrong)
    exec(_blocks("BBF601", "python")[1], fixed)
    problems = "\n".join(check_driver(wrong["ArmDriver"], ARM))
    for mark in ("cannot be created", "move_to", "close_gripper", "home"):
        assert mark in problems, problems
    assert check_driver(fixed["ArmDriver"], ARM) == []


def test_the_bbf701_page_example_gives_a_bbf701_on_every_line_it_marks(tmp_path: Path) -> None:
    """The page's bbflow.toml, under a [project] table, on the example cell's program."""
    from bbflow.compiler.pipeline import compile_paths

    (example,) = _blocks("BBF701", "toml")
    header = '[project]\nsource = "flows"\n\n'
    (tmp_path / "bbflow.toml").write_text(header + example)
    (tmp_path / "flows").mkdir()
    flows = ROOT / "examples" / "pick_and_place" / "flows" / "cell.flow"
    (tmp_path / "flows" / "cell.flow").write_text(flows.read_text())
    result = compile_paths([tmp_path], use_cache=False)
    offset = header.count("\n")
    marked = {offset + n for n, line in enumerate(example.splitlines(), 1) if "#" in line}
    got = {d.span.line for d in result.diagnostics.items if d.code == "BBF701"}
    assert got == marked, [(d.span.line, d.message) for d in result.diagnostics.items]
