"""The project's static checks: ``ruff check`` and ``mypy`` pass with the configuration in pyproject.toml.

Both tools come with the ``test`` extra. Missing, the test is skipped with a
message saying how to install them (so a run without them says what it did not check).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> list[str]:
    """The tool installed beside this interpreter (the venv's), else on PATH; skip loudly when absent."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[test]' (it is part of the test extra)")
    return [found]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    out = _run([*_tool("ruff"), "check", "bbflow"])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    out = _run([*_tool("mypy")])  # the packages and options are in [tool.mypy]
    assert out.returncode == 0, out.stdout + out.stderr
