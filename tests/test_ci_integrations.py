"""CI integrations: the pre-commit hooks on changed files only, generated code under ruff, py.typed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bbflow.cli import main

ROOT = Path(__file__).resolve().parent.parent
HOOKS = (ROOT / ".pre-commit-hooks.yaml").read_text()


def _hook(hook_id: str) -> dict[str, str]:
    """One hook's scalar keys (the file is a flat list of mappings; no YAML library needed)."""
    block = HOOKS.split(f"- id: {hook_id}\n")[1].split("\n- id:")[0]
    return dict(re.findall(r"^  (\w+): (.*)$", block, re.M))


def _run_hook(hook_id: str, changed: list[Path]) -> tuple[int, str]:
    """What pre-commit does: the entry, plus the changed files its `files` pattern selects."""
    hook = _hook(hook_id)
    argv = hook["entry"].split()[1:]
    files = [str(p) for p in changed if re.search(hook["files"], p.as_posix())]
    result = CliRunner().invoke(main, [*argv, *files])
    return result.exit_code, result.output


def test_the_hooks() -> None:
    assert _hook("bbflow-check")["entry"] == "bbflow check"
    assert _hook("bbflow-fmt")["entry"] == "bbflow fmt"
    assert _hook("bbflow-check")["language"] == _hook("bbflow-fmt")["language"] == "python"


def test_check_hook_on_a_changed_file_checks_it_within_its_project(tmp_path: Path) -> None:
    assert CliRunner().invoke(main, ["init", str(tmp_path)]).exit_code == 0
    flows = tmp_path / "flows"
    (flows / "extra.flow").write_text("from cell import Pose\n\nsignal seen: {at: Pose}\n")
    (flows / "broken.flow").write_text("reactor {\n")  # not changed: the hook must not report it
    code, out = _run_hook("bbflow-check", [flows / "extra.flow", tmp_path / "README.md"])
    assert code == 0, out  # `cell` resolved through the project's source root; broken.flow not shown
    (flows / "extra.flow").write_text("from cell import Pos\n")
    code, out = _run_hook("bbflow-check", [flows / "extra.flow"])
    assert code == 1 and "BBF101" in out and "broken.flow" not in out
    toml = tmp_path / "bbflow.toml"
    toml.write_text(toml.read_text().replace('interface = "cell.Arm"', 'interface = "cell.Armm"'))
    (flows / "broken.flow").unlink()
    code, out = _run_hook("bbflow-check", [toml])
    assert code == 1 and "BBF701" in out


def test_fmt_hook_rewrites_only_the_changed_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.flow", tmp_path / "b.flow"
    a.write_text("signal  a\n")
    b.write_text("signal  b\n")
    code, _ = _run_hook("bbflow-fmt", [a])
    assert code == 0 and a.read_text() == "signal a\n" and b.read_text() == "signal  b\n"


def _ruff() -> list[str] | None:
    found = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    return [found] if found else None


@pytest.mark.skipif(_ruff() is None, reason="ruff is not installed")
def test_generated_code_passes_ruff_with_its_default_rules(tmp_path: Path) -> None:
    odd = tmp_path / "odd"  # file names that are not Python module names
    odd.mkdir()
    for i, name in enumerate(("001_cell", "pick-and-place", "class", "_001_cell")):
        (odd / f"{name}.flow").write_text(f"signal s{i}\n")
    projects = (ROOT / "examples" / "pick_and_place", ROOT / "examples" / "two_arm_cell",
                ROOT / "bbflow" / "scaffold" / "project", odd)
    for i, project in enumerate(projects):
        result = CliRunner().invoke(main, ["build", "--no-cache", str(project), "-o", str(tmp_path / f"out{i}")])
        assert result.exit_code == 0, result.output
    ruff = _ruff()
    assert ruff is not None
    built = sorted(p.name for p in (tmp_path / "out3").glob("*.py"))
    assert built == ["_001_cell.py", "_001_cell_.py", "__init__.py", "_class.py", "_pick_and_place.py"]
    done = subprocess.run([*ruff, "check", "--isolated", "--no-cache", "--extend-select", "RUF100",
                           str(tmp_path / "out0"), str(tmp_path / "out1"), str(tmp_path / "out2"),
                           str(tmp_path / "out3")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_is_typed() -> None:
    assert (ROOT / "bbflow" / "py.typed").is_file()
    assert "py.typed" in (ROOT / "pyproject.toml").read_text()
