"""Loading a generated package: the manifest, the ABI check, clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bbflow.runtime import model
from bbflow.runtime.loader import IncompatibleModule, LoadError, load_program, require_abi
from codegen_helpers import build_and_load

FLOW = {"cell/arm.flow": "robot Arm {\n    command beep() -> bool\n}\nsignal cell.alarm\n"}


def test_load_program_registers_every_declaration(tmp_path: Path) -> None:
    program = build_and_load(tmp_path, FLOW)
    assert "cell.arm.Arm" in program.robots
    assert "cell.alarm" in program.signals and "robot.safety.changed" in program.signals  # std.prelude too


def test_a_module_for_another_abi_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    build_and_load(tmp_path, FLOW)
    file = tmp_path / "out" / "cell" / "arm.py"
    file.write_text(file.read_text().replace(f"ABI = {model.ABI}\n", f"ABI = {model.ABI + 1}\n"))
    with pytest.raises(IncompatibleModule) as info:
        load_program(tmp_path / "out")
    message = str(info.value)
    assert "cell.arm" in message and f"ABI {model.ABI + 1}" in message and f"implements ABI {model.ABI}" in message
    assert "bbflow 0.1.0" in message and "bbflow build" in message
    # importing it directly refuses the same way
    code = "import cell.arm"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path / "out", capture_output=True, text=True)
    assert run.returncode != 0 and "IncompatibleModule" in run.stderr


def test_require_abi_accepts_the_current_one() -> None:
    require_abi("cell", model.ABI, "0.1.0")


def test_a_missing_or_malformed_manifest_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="cannot read the build manifest"):
        load_program(tmp_path)
    (tmp_path / "bbflow_build.json").write_text(json.dumps({"modules": {"x": {"path": "../evil.py"}}}))
    with pytest.raises(LoadError, match="bad path for module x"):
        load_program(tmp_path)
    (tmp_path / "bbflow_build.json").write_text("[]")
    with pytest.raises(LoadError, match="no `modules` table"):
        load_program(tmp_path)


def test_a_file_that_is_not_a_generated_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.py").write_text("VALUE = 1\n")
    (tmp_path / "bbflow_build.json").write_text(json.dumps({"modules": {"x": {"path": "x.py"}}}))
    with pytest.raises(LoadError, match="not a bbflow generated module"):
        load_program(tmp_path)
