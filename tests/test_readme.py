"""The README's quick start: exactly two commands, and CI runs the second one as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bbflow.compiler.pipeline import compile_paths

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the quick start has one shell block"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_exactly_two_commands() -> None:
    first, second = quick_start()
    assert "bbflow" in first and "pip install -e ." in first
    assert "'.[test]'" in second and second.endswith("python -m pytest")


def test_first_command_runs_the_shipped_example_on_the_simulated_robot() -> None:
    """The demo part of the first command (after the install), run as written from the repository root."""
    first = quick_start()[0]
    demo = first.split(".venv/bin/bbflow ", 1)[1]
    assert demo.startswith("run examples/")
    shell = f"{shlex.quote(sys.executable)} -m bbflow {demo}"
    done = subprocess.run(shell, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pick.completed" in done.stderr


def test_ci_runs_the_second_command_as_written() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert quick_start()[1] in text


def flow_blocks(path: Path) -> list[str]:
    return re.findall(r"```flow\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize(
    ("doc", "index"), [("README.md", 0), ("docs/language.md", 0)], ids=["readme", "language-first-program"])
def test_complete_examples_check_clean(tmp_path: Path, doc: str, index: int) -> None:
    """The examples a reader may paste as a whole are free of errors and warnings."""
    file = tmp_path / "example.flow"
    file.write_text(flow_blocks(ROOT / doc)[index])
    result = compile_paths([file])
    assert [(d.code, d.span.line, d.message) for d in result.diagnostics] == []
