"""docs/language.md's tutorial (sections B and C), run as written: its files, its commands, its output."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def section(title: str) -> str:
    text = (ROOT / "docs" / "language.md").read_text()
    return text.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def block(text: str, info: str) -> str:
    """The first fenced block of ``text`` whose info string is ``info``."""
    found = [body for kind, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S) if kind == info]
    assert found, f"no ```{info} block"
    return found[0]


def test_the_tutorial_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    agent = section("B. An agent that reacts to signals")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "cell.flow").write_text(block(agent, "flow"))
    (tmp_path / "bbflow.toml").write_text(block(agent, "toml"))
    run = section("C. Run it on the simulated robot")
    commands = block(run, "sh").replace("\\\n", "").splitlines()
    bbflow = f"{shlex.quote(sys.executable)} -m bbflow"
    results = [subprocess.run(re.sub(r"\bbbflow\b", bbflow, line.split("  #")[0]), shell=True, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120) for line in commands]
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    check, agent_run, reactor_run = results
    assert "no problems in 1 file" in check.stderr
    summary = block(run, "").strip()
    assert summary == agent_run.stderr.strip().splitlines()[-1]
    assert "signal.dropped" in agent_run.stderr and "visit.done: no agent routes it" in agent_run.stderr
    assert json.loads(reactor_run.stdout) == {"x": 0.3, "y": 0.1, "z": 0.2}
