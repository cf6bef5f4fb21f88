"""What the pipeline reads: one file per module (BBF105), the project's own source folder only, regular
files of a bounded size only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main
from bbflow.compiler import compile_paths
from bbflow.compiler.source import MAX_SOURCE_BYTES, InputError

R = "reactor {name}() -> int {{\n    return {value}\n}}\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("first,second,module", [
    ("cell.flow", "cell/__init__.flow", "cell"),
    ("a/b.flow", "a.b.flow", "a.b"),
])
def test_two_files_that_are_one_module_are_an_error_naming_both(tmp_path: Path, first: str, second: str,
                                                                  module: str) -> None:
    write(tmp_path, {first: R.format(name="A", value=1), second: R.format(name="B", value='"x"')})
    diags = compile_paths([tmp_path]).diagnostics.items
    (twin,) = [d for d in diags if d.code == "BBF105"]
    assert f"are both module `{module}`" in twin.message
    assert {Path(twin.span.file).name, Path(twin.labels[0].span.file).name} == {Path(first).name, Path(second).name}


def test_a_project_module_cannot_replace_the_standard_library(tmp_path: Path) -> None:
    write(tmp_path, {"std/prelude.flow": R.format(name="E", value='"z"'), "ok.flow": R.format(name="A", value=1)})
    (twin,) = [d for d in compile_paths([tmp_path]).diagnostics.items if d.code == "BBF105"]
    assert "module `std.prelude`" in twin.message and "<stdlib>" in twin.message


def project(tmp_path: Path, source: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "bbflow.toml").write_text(f'[project]\nname = "p"\nsource = {source}\n')
    write(tmp_path, {"ok.flow": R.format(name="A", value=1)})
    return tmp_path


@pytest.mark.parametrize("source", ['"/"', '"../.."', '"a\\u0000b"'])
def test_a_source_root_outside_the_project_or_not_a_name_is_refused(tmp_path: Path, source: str) -> None:
    result = CliRunner().invoke(main, ["check", str(project(tmp_path / "p", source))])
    assert result.exit_code == 1, result.output
    assert "BBF701" in result.output and "Traceback" not in result.output
    assert ("outside the project" in result.output) or ("NUL" in result.output)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_or_a_device_named_flow_is_not_read(tmp_path: Path) -> None:
    write(tmp_path, {"ok.flow": R.format(name="A", value=1)})
    os.mkfifo(tmp_path / "pipe.flow")
    (tmp_path / "zero.flow").symlink_to("/dev/zero")
    result = compile_paths([tmp_path])  # a folder: they are skipped
    assert not result.diagnostics.has_errors() and result.files == 1
    for name in ("pipe.flow", "zero.flow"):  # named: refused at once, never read
        with pytest.raises(InputError, match="not a regular file"):
            compile_paths([tmp_path / name])


def test_a_file_over_the_size_bound_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.flow"
    with open(big, "wb") as f:
        f.truncate(MAX_SOURCE_BYTES + 1)
    with pytest.raises(InputError, match="too large"):
        compile_paths([big])


def test_an_unsaved_file_named_alone_is_checked_with_its_project(tmp_path: Path) -> None:
    """A buffer never saved, named on its own, is read as the saved file would be: with the rest of its
    project (its imports resolve, its module is named from the source root), the others as context."""
    write(tmp_path, {"bbflow.toml": '[project]\nsource = "flows"\n',
                     "flows/cell/arm.flow": "robot Arm {\n    command beep() -> bool\n}\n"})
    new = (tmp_path / "flows" / "cell" / "task.flow").resolve()
    text = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"
    result = compile_paths([new], buffers={new: text})
    assert [d.message for d in result.diagnostics.items] == []
    assert {u.module: u.path for u in result.units} == {"cell.arm": new.parent / "arm.flow", "cell.task": new}
    assert result.context == {str(new.parent / "arm.flow")}
    wrong = compile_paths([new], buffers={new: text.replace("beep()", "boop()")}).diagnostics.items
    assert [(d.code, d.span.file) for d in wrong] == [("BBF101", str(new))]


def test_an_unsaved_file_outside_any_project_is_a_module_of_its_stem(tmp_path: Path) -> None:
    new = (tmp_path / "loose.flow").resolve()
    result = compile_paths([new], buffers={new: R.format(name="L", value=1)})
    assert [u.module for u in result.units] == ["loose"] and not result.diagnostics.items
    with pytest.raises(InputError, match="no such file"):
        compile_paths([tmp_path / "other.flow"], buffers={new: ""})
