"""The README's quick start: exactly two commands, and CI runs the second one as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

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


def test_first_command_targets_a_shipped_example() -> None:
    first = quick_start()[0]
    target = first.rsplit(" ", 1)[1]
    assert (ROOT / target / "bbflow.toml").is_file()


def test_ci_runs_the_second_command_as_written() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert quick_start()[1] in text
