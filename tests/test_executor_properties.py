"""Properties of the executor over random reactors: random DAGs, latencies, failures, undo failures, halts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bbflow.runtime import model
from bbflow.runtime.rollback import UNDO_ATTEMPTS
from runtime_fakes import ops, ops_spec, program, run

FATES = ["ok", "ok", "ok", "ok", "fail", "flaky", "disarm"]
UNDO_FATES = ["ok", "ok", "ok", "fail", "flaky", "hang"]


@st.composite
def reactors(draw):
    n = draw(st.integers(1, 8))
    steps = []
    for i in range(n):
        steps.append({
            "name": f"s{i}",
            "deps": sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [],
            "latency": draw(st.integers(0, 4)) * 0.01,
            "fate": draw(st.sampled_from(FATES)),
            "retry": draw(st.integers(0, 2)),
            "fallback": draw(st.integers(0, 4)) == 0,
            "guard": draw(st.integers(0, 5)) != 0,
            "undo": draw(st.integers(0, 3)) != 0,
            "undo_fate": draw(st.sampled_from(UNDO_FATES)),
        })
    return steps, draw(st.integers(1, 4))


def build(steps, concurrency):
    robot = ops()
    nodes = []
    for spec in steps:
        name = spec["name"]
        command = f"do_{name}"
        latency = spec["latency"]
        if spec["fate"] == "fail":
            robot.cue(command, delay=latency, error=f"fail-{name}")
        elif spec["fate"] == "flaky":
            robot.cue(command, call=1, delay=latency, error=f"flaky-{name}")
        elif spec["fate"] == "disarm":
            robot.cue(command, delay=max(latency, 0.02), disarm=True)
        robot.cue(command, delay=latency)
        undo_command = f"undo_{name}"
        if spec["undo_fate"] == "fail":
            robot.cue(undo_command, error="stuck")
        elif spec["undo_fate"] == "flaky":
            robot.cue(undo_command, call=1, error="slip")
        elif spec["undo_fate"] == "hang":
            robot.cue(undo_command, hang=True)
        nodes.append(model.Step(
            name,
            model.CommandCall(command, lambda s, name=name: {"tag": name}),
            deps=tuple(f"s{d}" for d in spec["deps"]),
            when=None if spec["guard"] else (lambda s: False),
            retry=model.Retry(spec["retry"], 0.01) if spec["retry"] else None,
            undo=model.Undo(model.CommandCall(undo_command, lambda s, name=name: {"tag": name})) if spec["undo"]
            else None,
            fallback=(lambda s: "fallback") if spec["fallback"] else None,
        ))
    r = model.Reactor("P", "t.P", (), None, "t.Ops", model.Body(tuple(nodes), None), concurrency=concurrency)
    return r, robot


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reactors())
def test_saga_invariants(case):
    steps, concurrency = case
    r, robot = build(steps, concurrency)
    by_name = {s["name"]: s for s in steps}
    result, rec = run(r, robot, prog=program(r, robot=ops_spec()))  # checks: no task, no listener left

    events = rec.events
    # every run ends, with exactly one final event, last
    assert result.status in ("ok", "failed", "halted")
    assert events[-1]["event"] == f"run.{result.status}"
    assert sum(e["event"].startswith("run.") and e["event"] != "run.start" for e in events) == 1

    # no step starts before its dependencies completed or were skipped
    settled: set[str] = set()
    for e in events:
        if e["event"] in ("step.ok", "step.skip"):
            settled.add(e["step"])
        elif e["event"] == "step.start":
            deps = {f"s{d}" for d in by_name[e["step"]]["deps"]}
            assert deps <= settled, (e["step"], deps - settled)

    # at most `concurrency` commands in flight
    assert max((robot.max_in_flight(f"do_{s['name']}") for s in steps), default=0) <= 1
    assert _max_concurrent_steps(events) <= concurrency

    completed = [e["step"] for e in events if e["event"] == "step.ok"]
    assert list(result.completed) == completed

    if result.status == "ok":
        assert not any(e["event"].startswith("undo.") for e in events)
        assert set(completed) | {e["step"] for e in events if e["event"] == "step.skip"} == set(by_name)
        return

    if result.status == "halted":
        # nothing is undone after a halt
        (halt_time, _, _) = robot.safety_changes[0]
        assert all(c.start < halt_time for c in robot.calls if c.command.startswith("undo_"))
        assert not [e for e in events if e["event"] == "undo.start" and e["time"] > halt_time]
        return

    # failed: after the failure no new step starts
    failure_at = _failure_index(events, result.error)
    assert not [e for e in events[failure_at + 1:] if e["event"] == "step.start"]
    # every completed step with an undo, and every one cut off in flight (its command cancelled at the
    # driver: it may have moved), is undone exactly once (3 attempts at most), newest first
    fallbacks = {e["step"] for e in events if e["event"] == "step.ok" and e.get("fallback")}
    cut_off = {e["step"] for e in events if e["event"] == "step.error" and e["error"]["code"] == "cancelled"}
    ended = [e["step"] for e in events if e["event"] == "step.ok" or e["step"] in cut_off and e["event"] == "step.error"
             and e["error"]["code"] == "cancelled"]
    expected = [n for n in reversed(ended) if by_name[n]["undo"] and n not in fallbacks]
    first_attempts = [e["step"] for e in events if e["event"] == "undo.start" and e["attempt"] == 1]
    assert first_attempts == expected
    assert {e["step"] for e in events if e["event"] == "undo.start" and e.get("in_doubt")} == cut_off & set(expected)
    for name in expected:
        attempts = [e for e in events if e["step"] == name and e["event"] in ("undo.ok", "undo.error")]
        oks = [e for e in attempts if e["event"] == "undo.ok"]
        assert len(oks) <= 1 and len(attempts) <= UNDO_ATTEMPTS
        assert oks or len(attempts) == UNDO_ATTEMPTS
    assert sorted(u.step for u in result.undo_errors) == sorted(
        n for n in expected if by_name[n]["undo_fate"] in ("fail", "hang"))
    # the rollback starts only after everything in flight has ended
    if first_attempts:
        first_undo = next(i for i, e in enumerate(events) if e["event"] == "undo.start")
        assert not [e for e in events[first_undo:] if e["event"] in ("step.ok", "step.error", "step.start")]


def _failure_index(events, error):
    """Index of the step.error that failed the run (its last attempt)."""
    for i, e in enumerate(events):
        if e["event"] == "step.error" and e["error"]["message"] == error.message:
            nxt = [x for x in events[i + 1:] if x["step"] == e["step"] and x["event"] == "step.retry"]
            if not nxt:
                return i
    raise AssertionError(f"no step.error for {error.message}")


def _max_concurrent_steps(events):
    running = best = 0
    for e in events:
        if e["event"] == "step.start":
            running += 1
            best = max(best, running)
        elif e["event"] in ("step.ok", "step.error"):
            running -= 1
    return best
