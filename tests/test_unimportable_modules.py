"""A `.flow` file under a folder (or with a name) that is not an identifier, `my-cell/tools.flow`, is the
module `my-cell.tools`, which no import can name. Importing it said "module `my` not found" (the
parser had cut `from my-cell.tools` short, and the checker reported the cut path); the errors now
say why and what to rename."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler.checker import check
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics
from bbflow.compiler.syntax.parser import parse_text

TOOLS = "reactor Noop() {\n    fail \"no\"\n}\n"


def _check(user: str) -> list[Diagnostic]:
    diags = Diagnostics()
    tools, _ = parse_text(TOOLS, "my-cell/tools.flow", "my-cell.tools")
    main_module, parsed = parse_text(user, "user.flow", "user")
    diags.extend(parsed)
    check([tools, main_module], diags)
    return diags.sorted()


def test_a_dash_in_an_import_path_is_one_syntax_error_that_says_why() -> None:
    found = _check("from my-cell.tools import Noop\n")
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("BBF001", 1, 8)]
    assert found[0].help is not None and "a folder or file whose name has a `-` cannot be imported" in found[0].help


def test_the_same_with_import_and_a_deeper_path() -> None:
    found = _check("import cell.my-tools as t\n")
    assert [d.code for d in found] == ["BBF001"]
    assert found[0].help is not None and "cannot be imported" in found[0].help


def test_the_name_with_an_underscore_names_the_file_and_what_to_rename() -> None:
    found = _check("from my_cell.tools import Noop\n")
    assert [d.code for d in found] == ["BBF103"]
    assert found[0].help == "rename the folder `my-cell/` to `my_cell`, and import it as `my_cell.tools`"
    assert any("`my-cell/tools.flow` is the module `my-cell.tools`, which no import can name" in n
               for n in found[0].notes)


def test_the_first_word_of_the_folder_names_it_too() -> None:
    found = _check("import my\n")
    assert [d.code for d in found] == ["BBF103"]
    assert found[0].help is not None and "rename the folder `my-cell/`" in found[0].help


def test_a_missing_module_before_a_syntax_error_in_the_names_is_still_reported() -> None:
    found = _check("from nowhere import y-z\n")
    assert [d.code for d in found] == ["BBF103", "BBF001"]


def test_check_of_a_real_project_with_a_dashed_folder(tmp_path: Path) -> None:
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "p"\nsource = "flows"\n')
    (tmp_path / "flows" / "my-cell").mkdir(parents=True)
    (tmp_path / "flows" / "my-cell" / "tools.flow").write_text(TOOLS)
    (tmp_path / "flows" / "user.flow").write_text("from my-cell.tools import Noop\n")
    result = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "module `my` not found" not in result.output
    assert "a folder or file whose name has a `-` cannot be imported" in result.output
