"""``bbflow schema``: the JSON Schemas of the event log and of ``check --format json``, and the outputs follow them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from bbflow.cli import main
from bbflow.schemas import schema

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pick_and_place"


def bbflow(*argv: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(argv), input=stdin)


@pytest.mark.parametrize("name", ["events", "diagnostics"])
def test_the_schemas_are_draft_2020_12(name: str) -> None:
    result = bbflow("schema", name)
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed == schema(name) and printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(printed)
    assert bbflow("schema", "nope").exit_code == 2


def test_check_json_follows_its_schema(tmp_path: Path) -> None:
    (tmp_path / "bad.flow").write_text("signal a\nreactor R() { step s = nope() }\n")
    result = bbflow("check", "--format", "json", "--no-cache", str(tmp_path))
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["version"] == 1 and out["diagnostics"]
    Draft202012Validator(schema("diagnostics")).validate(out)


def _log(result_stdout: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in result_stdout.splitlines() if line.startswith('{"event"')]


def test_the_event_log_of_agents_and_a_rollback_follows_its_schema(tmp_path: Path) -> None:
    validator = Draft202012Validator(schema("events"))
    agents = bbflow("run", str(EXAMPLE), "--until-idle", "--events", "-",
                    stdin=(EXAMPLE / "signals.jsonl").read_text() + '{"type": "pick.requested", "data": {}}\n')
    jammed = bbflow("run", str(EXAMPLE), "--reactor", "PickAndPlace", "--input", 'pick={"x": 0, "y": 0, "z": 0}',
                    "--input", 'place={"x": 1, "y": 0, "z": 0}', "--faults", str(EXAMPLE / "jammed.toml"),
                    "--virtual-time", "--events", "-")
    assert agents.exit_code == 0 and jammed.exit_code == 1
    events = _log(agents.stdout) + _log(jammed.stdout)
    for event in events:
        validator.validate(event)
    seen = {e["event"] for e in events}
    assert {"robot.safety", "signal.in", "signal.routed", "signal.emit", "signal.dropped", "run.ok", "run.failed",
            "undo.start", "undo.ok", "step.error"} <= seen
    safety = [(e["robot"], e["from"], e["to"]) for e in events if e["event"] == "robot.safety"]
    assert safety[:1] == [("arm", "disarmed", "armed")] and safety[-1] == ("arm", "disarming", "disarmed")
    assert all(e["attempt"] >= 1 for e in events if e["event"].startswith("undo."))
    assert all(e["version"] == 1 for e in events)


def test_robot_state_changes_are_in_the_event_log(tmp_path: Path) -> None:
    project = tmp_path / "cell"
    assert bbflow("init", str(project)).exit_code == 0
    toml = project / "bbflow.toml"
    toml.write_text(toml.read_text().replace('duration = "20ms"', 'duration = "20ms"\nbusy_state = "busy"', 1))
    result = bbflow("run", str(project), "--reactor", "Fetch", "--input", 'at={"x": 0, "y": 0, "z": 0}',
                    "--virtual-time", "--events", "-")
    assert result.exit_code == 0, result.output
    states = [(e["from"], e["to"]) for e in _log(result.stdout) if e["event"] == "robot.state"]
    assert states[:2] == [("idle", "busy"), ("busy", "idle")]


def test_the_schema_catches_what_the_contract_requires() -> None:
    validator = Draft202012Validator(schema("events"))
    base = {"version": 1, "reactor": "R", "step": "a", "run": "1", "time": 0.0}
    assert not list(validator.iter_errors({**base, "event": "undo.ok", "attempt": 1}))
    assert list(validator.iter_errors({**base, "event": "undo.ok"}))  # no attempt
    assert list(validator.iter_errors({**base, "event": "run.failed", "error": {"message": "x", "code": "c"}}))
    assert list(validator.iter_errors({**base, "event": "robot.safety", "robot": "arm", "from": "armed"}))
    assert list(validator.iter_errors({**base, "event": "step.ok", "result": 1, "version": 2}))
    assert not list(validator.iter_errors({**base, "event": "run.queued", "position": 1}))  # a newer event
