"""docs/runtime.md's "Running a reactor from Python": its snippet is complete and runs as written."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import attrs
import pytest

from bbflow.runtime import RunResult

ROOT = Path(__file__).resolve().parent.parent


def blocks() -> list[str]:
    page = (ROOT / "docs" / "runtime.md").read_text()
    section = page.split("## Running a reactor from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_snippet_runs_the_example_from_the_repository_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Run on a copy of the example (its cache is written beside it), from a folder laid out as the repository."""
    shutil.copytree(ROOT / "examples" / "pick_and_place", tmp_path / "examples" / "pick_and_place",
                    ignore=shutil.ignore_patterns(".bbflow"))
    monkeypatch.chdir(tmp_path)
    snippet = blocks()[0]
    exec(compile(snippet, "docs/runtime.md", "exec"), {"__name__": "__main__"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "ok {'x': 0.0, 'y': 0.5, 'z': 0.05}"
    events = [ast.literal_eval(line)["event"] for line in lines[:-1]]
    assert events[0] == "run.start" and events[-1] == "run.ok" and "step.ok" in events


def test_the_result_s_attributes_are_those_of_run_result() -> None:
    names = re.findall(r"^result\.(\w+)", blocks()[1], re.M)
    assert names and set(names) <= {f.name for f in attrs.fields(RunResult)}
