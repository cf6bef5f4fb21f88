"""`bbflow build` and compile_project."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bbflow.cli import main
from bbflow.build import compile_project
from codegen_helpers import write_flows

ARM = "robot Arm {\n    command beep() -> bool\n}\n"
TASK = "from cell.arm import Arm\nreactor Beep() -> bool on Arm {\n    step b = beep()\n    return b\n}\n"


def test_build_writes_one_module_per_flow_file(tmp_path: Path) -> None:
    write_flows(tmp_path, {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    out = tmp_path / "gen"
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    for rel in ("__init__.py", "cell/__init__.py", "cell/arm.py", "cell/task.py", "std/prelude.py"):
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "bbflow_build.json").read_text())
    assert manifest["modules"]["cell.task"]["path"] == "cell/task.py"
    assert manifest["modules"]["cell.task"]["source"] == "cell/task.flow"


def test_build_refuses_when_the_check_reports_errors(tmp_path: Path) -> None:
    write_flows(tmp_path, {"cell.flow": "reactor R() -> int {\n    return nope\n}\n"})
    out = tmp_path / "gen"
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(out)])
    assert result.exit_code == 1
    assert "BBF101" in result.output and not out.exists()


def test_build_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(tmp_path / "nope")])
    assert result.exit_code == 2


def test_compile_project_loads_a_program_from_the_cache_folder(tmp_path: Path) -> None:
    (tmp_path / "bbflow.toml").write_text('[project]\nname = "cell"\nsource = "flows"\n')
    write_flows(tmp_path / "flows", {"cell/arm.flow": ARM, "cell/task.flow": TASK})
    diags, program = compile_project(tmp_path)
    assert program is not None and not diags.has_errors()
    assert "cell.task.Beep" in program.reactors
    assert (tmp_path / ".bbflow" / "cache" / "build" / "cell" / "task.py").is_file()
    # a second time, unchanged: same program from the cache
    diags, again = compile_project(tmp_path)
    assert again is not None and set(again.reactors) == set(program.reactors)
    write_flows(tmp_path / "flows", {"cell/task.flow": "reactor R() -> int {\n    return nope\n}\n"})
    diags, broken = compile_project(tmp_path)
    assert broken is None and [d.code for d in diags.errors] == ["BBF101"]


def test_a_rebuild_removes_the_modules_of_flow_files_gone_since_and_keeps_other_files(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "gen"
    write_flows(src, {"cell/arm.flow": ARM, "cell/task.flow": TASK, "extra.flow": "signal ping\n"})
    assert CliRunner().invoke(main, ["build", str(src), "-o", str(out)]).exit_code == 0
    (out / "notes.py").write_text("# the user's own file\n")
    (src / "extra.flow").unlink()
    (src / "cell" / "task.flow").unlink()
    result = CliRunner().invoke(main, ["build", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "extra.py").exists() and not (out / "cell" / "task.py").exists()
    assert (out / "cell" / "arm.py").is_file() and (out / "notes.py").is_file()


def test_a_manifest_naming_files_outside_the_output_folder_removes_nothing_there(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "gen"
    write_flows(src, {"cell/arm.flow": ARM})
    out.mkdir()
    outside = tmp_path / "keep.py"
    outside.write_text("# not the build's\n")
    (out / "bbflow_build.json").write_text(json.dumps({"modules": {"x": {"path": "../keep.py"}, "y": "bad"}}))
    assert CliRunner().invoke(main, ["build", str(src), "-o", str(out)]).exit_code == 0
    assert outside.is_file()
