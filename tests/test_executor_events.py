"""The event stream: required fields, JSON serialisation, fan-out and the JSON-lines writer."""

import io
import json
import math

import pytest

from bbflow.runtime import model
from bbflow.runtime.events import RUN_EVENTS, Fanout, JsonLinesWriter, Recorder, fanout, jsonable
from bbflow.runtime.ports import RuntimeFailure
from runtime_fakes import PICK, PLACE, arm, op, ops, pick_and_place, reactor, run

REQUIRED = {"event", "reactor", "step", "run", "time"}


def test_every_event_has_the_required_fields_and_serialises():
    robot = arm().cue("move_to", call=3, error="collision")
    _, rec = run(pick_and_place(), robot, {"pick": PICK, "place": PLACE})
    for event in rec.events:
        assert REQUIRED <= event.keys()
        assert event["event"] in RUN_EVENTS
        assert event["reactor"] == "PickAndPlace"
        json.dumps(event, allow_nan=False)
    times = [e["time"] for e in rec.events]
    assert times == sorted(times)
    kinds = {e["event"] for e in rec.events}
    assert {"run.start", "step.start", "step.ok", "step.error", "undo.start", "undo.ok", "run.failed"} <= kinds


def test_event_payloads():
    robot = ops().cue("op", match={"tag": "b"}, error="boom").cue("undo", match={"tag": "a"}, error="stuck")
    _, rec = run(reactor(op("a"), op("skip", when=lambda s: False), op("b", "a", retry=model.Retry(1, 0.5))), robot)
    by = {}
    for e in rec.events:
        by.setdefault(e["event"], []).append(e)
    assert by["step.start"][0]["attempt"] == 1
    assert by["step.ok"][0]["result"] == "a"
    assert by["step.skip"][0]["step"] == "skip"
    assert by["step.error"][0]["error"] == {"message": "op: boom", "code": "command", "command": "op"}
    assert (by["step.retry"][0]["attempt"], by["step.retry"][0]["delay"]) == (2, 0.5)
    assert [e["attempt"] for e in by["undo.error"]] == [1, 2, 3]
    failed = by["run.failed"][0]
    assert failed["error"]["message"] == "op: boom"
    assert failed["undo_errors"] == [{"message": "undo: stuck", "code": "command", "command": "undo", "step": "a",
                                      "reactor": "R", "run": failed["run"], "attempts": 3}]
    assert "parent" not in failed


def test_values_that_are_not_json_are_made_json_in_events():
    class Pose:
        def __repr__(self):
            return "Pose()"

    r = reactor(model.Step("a", model.CommandCall("op", lambda s: {"tag": "a"})), end=model.Return(lambda s: (1, Pose())))
    result, rec = run(r, ops(results={"op": {"p": Pose(), 3: (1, 2)}}))
    assert result.value[0] == 1
    assert rec.named("step.ok")[0]["result"] == {"p": "Pose()", "3": [1, 2]}
    assert rec.named("run.ok")[0]["result"] == [1, "Pose()"]


def test_jsonable():
    failure = RuntimeFailure("x", "fail")
    assert jsonable({"a": (1, [failure, None]), "b": True}) == {"a": [1, [{"message": "x", "code": "fail"}, None]],
                                                                "b": True}


def test_an_observer_that_raises_does_not_disturb_the_run(caplog):
    def broken(event):
        raise RuntimeError("observer bug")

    recorder = Recorder()
    result, _ = run(reactor(op("a"), op("b", "a")), ops(), observer=Fanout([broken, recorder]))
    assert result.status == "ok"
    assert recorder.events[-1]["event"] == "run.ok"
    assert "observer bug" in caplog.text


@pytest.mark.free_events  # hand-made events
def test_fanout_combines_and_skips_none():
    a, b = Recorder(), Recorder()
    assert fanout() is None and fanout(None, a) is a
    both = fanout(a, None, b)
    both({"event": "x"})
    assert a.events == b.events == [{"event": "x"}]


@pytest.mark.free_events  # hand-made events
def test_json_lines_writer_to_a_stream_and_to_a_file(tmp_path):
    stream = io.StringIO()
    writer = JsonLinesWriter(stream)
    writer({"event": "step.ok", "result": {"x": 1.0}, "time": 0.5})
    writer({"event": "step.ok", "result": math.inf, "odd": object()})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {"event": "step.ok", "result": {"x": 1.0}, "time": 0.5, "version": 1}
    assert lines[1]["result"] == "Infinity" and lines[1]["odd"].startswith("<object")

    path = tmp_path / "events.jsonl"
    with JsonLinesWriter(path) as to_file:
        run(reactor(op("a")), ops(), observer=to_file)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in written] == ["run.start", "step.start", "step.ok", "run.ok"]
