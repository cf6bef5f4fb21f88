"""``bbflow run`` under misbehaving code: huge and non-finite results, stuck drivers and actions, interrupts
during rollback, undo errors. Each test reproduces a failure found by an adversarial review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bbflow.cli import main

ACTIONS = '''\
def big():
    return 7 ** 6000

def nan():
    return float("nan")
'''

FLOW = '''\
action big() -> int pure = "acts:big"
action nan() -> float pure = "acts:nan"

reactor Big() -> int {
    step b = big()
    return b
}

reactor Nan() -> float {
    step b = nan()
    return b
}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hardening")
    (root / "bbflow.toml").write_text('[project]\nname = "hard"\n')
    (root / "hard.flow").write_text(FLOW)
    (root / "acts.py").write_text(ACTIONS)
    return root


def run(project: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["run", str(project), *args])


def test_a_result_over_4300_digits_is_written_as_exact_hex(project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run(project, "--reactor", "Big", "--events", str(events))
    assert result.exit_code == 0, result.output
    assert int(json.loads(result.stdout), 16) == 7 ** 6000
    assert result.stderr.splitlines()[-1].startswith('Big ok: "0x')
    ok = [json.loads(line) for line in events.read_text().splitlines()][-1]
    assert ok["event"] == "run.ok" and int(ok["result"], 16) == 7 ** 6000


def test_a_nan_result_is_never_written_as_non_standard_json(project: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    result = run(project, "--reactor", "Nan", "--events", str(events))
    assert result.exit_code == 0, result.output
    strict = {"parse_constant": lambda c: pytest.fail(f"non-standard JSON: {c}")}
    assert json.loads(result.stdout, **strict) == "NaN"
    for line in events.read_text().splitlines():
        json.loads(line, **strict)
