"""``bbflow init``, ``bbflow explain`` without a code, ``run --virtual-time`` and ``run --events -``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bbflow.cli import main
from bbflow.compiler.diagnostics.codes import CODES
from bbflow.scaffold import project_files


def bbflow(*argv: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(argv), input=stdin)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("new") / "my cell"
    result = bbflow("init", str(folder))
    assert result.exit_code == 0, result.output
    return folder


def test_init_writes_a_project_that_checks_clean(made: Path) -> None:
    assert sorted(str(p.relative_to(made)) for p in made.rglob("*") if p.is_file()) == [
        ".gitignore", "README.md", "bbflow.toml", "faults.toml", "flows/cell.flow", "signals.jsonl"]
    assert ".bbflow/" in (made / ".gitignore").read_text().splitlines()
    assert 'name = "my-cell"' in (made / "bbflow.toml").read_text()
    result = bbflow("check", "--strict", str(made))
    assert result.exit_code == 0, result.output
    assert "no problems" in result.stderr


def test_init_project_runs_its_signals_on_the_sim(made: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = bbflow("run", str(made), "--until-idle", "--events", str(events),
                    stdin=(made / "signals.jsonl").read_text())
    assert result.exit_code == 0, result.output
    assert "1 runs (1 ok, 0 failed" in result.stderr
    emitted = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["type"] for e in emitted if e["event"] == "signal.emit"] == ["fetch.completed"]


def test_init_project_drill_in_its_readme_rolls_back(made: Path) -> None:
    result = bbflow("run", str(made), "--reactor", "Fetch", "--input", 'at={"x": 0.2, "y": 0, "z": 0.1}',
                    "--faults", str(made / "faults.toml"), "--virtual-time")
    assert result.exit_code == 1, result.output
    assert "Fetch failed: close_gripper failed: jammed; rolled back, no undo errors" in result.stderr


def test_init_says_what_to_type_next_with_the_folder_quoted_for_the_shell(tmp_path: Path) -> None:
    """A folder with a space (or any character the shell reads): the `next:` line can be pasted as it is."""
    folder = tmp_path / "my cell's"
    result = bbflow("init", str(folder))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == \
        f"next: cd {shlex.quote(str(folder))} && bbflow check && bbflow run --until-idle < signals.jsonl"
    assert shlex.split(result.stderr.splitlines()[-1])[2] == str(folder)


def test_init_refuses_to_overwrite(made: Path) -> None:
    before = (made / "bbflow.toml").read_text()
    (made / "flows" / "cell.flow").unlink()
    result = bbflow("init", str(made))
    assert result.exit_code == 2
    assert "would overwrite .gitignore, README.md, bbflow.toml" in result.stderr
    assert not (made / "flows" / "cell.flow").exists()  # nothing written, not even the missing file
    assert (made / "bbflow.toml").read_text() == before
    (made / "flows" / "cell.flow").write_text(project_files("x")["flows/cell.flow"])


def test_init_into_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = bbflow("init", str(tmp_path))
    assert result.exit_code == 0 and (tmp_path / "bbflow.toml").is_file()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_explain_without_a_code_lists_every_code_with_its_title() -> None:
    result = bbflow("explain")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(CODES)
    assert "BBF401  error    effectful step can be followed by a failure" in result.stdout
    assert "\x1b[" not in result.stdout  # piped: plain


def test_explain_piped_is_the_plain_page() -> None:
    result = bbflow("explain", "401")
    assert result.exit_code == 0 and result.stdout.startswith("# BBF401: ")
    assert bbflow("explain", "BBF999").exit_code == 2


def test_virtual_time_takes_the_delays_without_waiting(made: Path, tmp_path: Path) -> None:
    slow = tmp_path / "slow.toml"
    slow.write_text('[[fault]]\ncommand = "move_to"\ncall = 1\ndelay = "1h"\n')
    result = bbflow("run", str(made), "--reactor", "Fetch", "--input", 'at={"x": 0.2, "y": 0, "z": 0.1}',
                    "--faults", str(slow), "--virtual-time", "--events", "-")
    # move_to's 10 s timeout fires (on the virtual clock), the retries succeed
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()[:-1]]
    assert json.loads(result.stdout.splitlines()[-1]) == {"x": 0.0, "y": 0.0, "z": 0.0}  # the result, last
    retry = next(e for e in events if e["event"] == "step.retry")
    assert retry["step"] == "reached" and retry["time"] >= 10.0


def test_virtual_time_refuses_a_real_driver(made: Path, tmp_path: Path) -> None:
    project = tmp_path / "real"
    bbflow("init", str(project))
    toml = project / "bbflow.toml"
    toml.write_text(toml.read_text().replace('driver = "sim"', 'driver = "cell_driver:Arm"'))
    result = bbflow("run", str(project), "--until-idle", "--virtual-time", stdin="")
    assert result.exit_code == 2
    assert "--virtual-time runs simulated robots only, and robot arm has driver 'cell_driver:Arm'" in result.stderr
