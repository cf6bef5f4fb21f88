"""End to end: random reactors written as .flow source, built by the real compiler, run on the real
RobotProxy + simulated driver with random faults, on the virtual-time loop; the saga invariants
are checked from the event log alone (docs/runtime.md)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, assume, given, settings

from bbflow.runtime.rollback import UNDO_ATTEMPTS
from e2e_flows import Generated, Outcome, Rejected, build, reactor_sources, run_on_sim

ENDS = ("run.ok", "run.failed", "run.halted")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(reactor_sources())
def test_generated_reactors_keep_the_saga_invariants(gen: Generated) -> None:
    try:
        program = build(gen.source)
    except Rejected:
        assume(False)
    out = run_on_sim(program, gen)
    check_invariants(gen, out)


def check_invariants(gen: Generated, out: Outcome) -> None:
    events = out.events
    runs = _runs(events)
    # every run ends with exactly one of run.ok/run.failed/run.halted, the root's last of all
    for run_id, run in runs.items():
        assert len(run["ends"]) == 1, (run_id, run["ends"])
    root_end = [e for e in events if e["event"] in ENDS and e["run"] == "root"]
    assert events.index(root_end[0]) == max(i for i, e in enumerate(events) if e["event"] != "robot.safety")
    assert root_end[0]["event"] == "run." + out.result.status

    halt_at = next((i for i, e in enumerate(events) if e["event"] == "robot.safety" and e["to"] != "armed"), None)
    if halt_at is not None:
        # the robot left armed: the run halts, nothing starts and nothing is undone afterwards
        assert out.result.status == "halted", out.result
        late = [e for e in events[halt_at:] if e["event"] in ("step.start", "undo.start", "step.retry")]
        assert not late, late
    else:
        assert out.result.status != "halted"

    _check_dependencies(gen, events, runs)
    for run_id in runs:
        _check_stop_after_failure(events, run_id)
        if runs[run_id]["ends"][0]["event"] == "run.failed" and halt_at is None:
            _check_rollback(gen, events, runs, run_id)
        if runs[run_id]["ends"][0]["event"] == "run.ok":
            assert not [e for e in events if e["event"] == "undo.start" and e["run"] == run_id
                        and events.index(e) < events.index(runs[run_id]["ends"][0])]
    if out.result.status == "ok":
        assert not [e for e in events if e["event"] == "undo.start" and e["run"] in _ok_tree(runs, "root")]
    if out.result.status == "failed":
        failed_groups = [g for g in _undo_groups(events, set(runs)) if g[1][-1]["event"] == "undo.error"]
        assert len(out.result.undo_errors) == len(failed_groups)

    # the sim never had two motions at once, nor more than two tool commands
    assert out.driver.peak["motion"] <= 1
    assert out.driver.peak["tool"] <= 2
    # nothing left behind
    assert out.inflight_left == 0
    assert out.tasks_left == 0


def _runs(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    runs: dict[str, dict[str, Any]] = defaultdict(lambda: {"ends": [], "parent": None, "start": None})
    for e in events:
        if e["event"] == "robot.safety":
            continue
        run = runs[e["run"]]
        if e["event"] == "run.start":
            run["start"] = e
            run["parent"] = e.get("parent")
        elif e["event"] in ENDS:
            run["ends"].append(e)
    return dict(runs)


def _children(runs: dict[str, dict[str, Any]], run_id: str) -> list[str]:
    return [r for r, run in runs.items() if run["parent"] == run_id]


def _ok_tree(runs: dict[str, dict[str, Any]], run_id: str) -> set[str]:
    """``run_id`` and its descendants that completed (their steps are undone by an ancestor)."""
    found = {run_id}
    for child in _children(runs, run_id):
        if runs[child]["ends"][0]["event"] == "run.ok":
            found |= _ok_tree(runs, child)
    return found


def _owner_events(gen: Generated, events: list[dict[str, Any]], runs: dict[str, dict[str, Any]],
                  node: str) -> list[int]:
    """Positions of every step event of a top-level node of Main (its body steps and composed runs included)."""
    names = {s.name for s in gen.steps.values() if s.owner == node}
    tags = {gen.steps[n].compose_tag for n in names if gen.steps[n].compose_tag is not None}
    child_runs = {r for r, run in runs.items() if run["start"] is not None and run["parent"] == "root"
                  and run["start"]["inputs"].get("tag") in tags}
    return [i for i, e in enumerate(events) if e["event"].startswith("step.")
            and ((e["run"] == "root" and e["step"] in names) or e["run"] in child_runs)]


def _check_dependencies(gen: Generated, events: list[dict[str, Any]], runs: dict[str, dict[str, Any]]) -> None:
    """No step starts before everything it depends on has finished."""
    for info in gen.steps.values():
        starts = [i for i, e in enumerate(events)
                  if e["event"] == "step.start" and e["run"] == "root" and e["step"] == info.name]
        if not starts:
            continue
        # the top-level nodes it waits for (a body step waits for what its map or switch waits for)
        for dep in gen.nodes[info.owner] if info.owner != info.name else info.deps:
            before = _owner_events(gen, events, runs, dep)
            assert not before or max(before) < starts[0], (info.name, "started before", dep)
        # inside a body, per iteration
        if info.owner != info.name:
            for dep in info.deps:
                for i in starts:
                    index = events[i].get("index")
                    dep_events = [k for k, e in enumerate(events) if e["event"].startswith("step.")
                                  and e["run"] == "root" and e["step"] == dep and e.get("index") == index]
                    if events[i]["attempt"] == 1:
                        assert not dep_events or max(dep_events) < i, (info.name, index, "started before", dep)


def _check_stop_after_failure(events: list[dict[str, Any]], run_id: str) -> None:
    """After a run's first unrecovered step.error, no step of that run starts."""
    mine = [(i, e) for i, e in enumerate(events) if e.get("run") == run_id and e["event"].startswith("step.")]
    for pos, (i, e) in enumerate(mine):
        if e["event"] != "step.error":
            continue
        later = mine[pos + 1:]
        same = [x for _, x in later if x["step"] == e["step"] and x.get("index") == e.get("index")]
        if same and same[0]["event"] in ("step.retry", "step.ok"):
            continue  # retried, or recovered by its fallback
        started = [x for _, x in later if x["event"] == "step.start"]
        assert not started, (e, started)
        return


def _undo_groups(events: list[dict[str, Any]], run_ids: set[str]) -> list[tuple[tuple[Any, ...], list[dict[str, Any]]]]:
    """Undo events of ``run_ids`` grouped by (run, step, index), in order; a group is one step's undo."""
    groups: list[tuple[tuple[Any, ...], list[dict[str, Any]]]] = []
    for e in events:
        if e["event"].startswith("undo.") and e["run"] in run_ids:
            key = (e["run"], e["step"], tuple(e.get("index", ())))
            if groups and groups[-1][0] == key and not (e["event"] == "undo.start" and e["attempt"] == 1):
                groups[-1][1].append(e)
            else:
                groups.append((key, [e]))
    return groups


def _expected_undos(gen: Generated, events: list[dict[str, Any]], runs: dict[str, dict[str, Any]],
                    run_id: str, upto: int) -> list[tuple[Any, ...]]:
    """What a rollback of ``run_id`` must undo, in order: its completed steps with an undo, and those cut off
    in flight, newest first, a composed step expanded into its run's own completed steps."""
    out: list[tuple[Any, ...]] = []
    reactor = runs[run_id]["start"]["reactor"]
    done = [e for e in events[:upto] if e["run"] == run_id and (
        e["event"] == "step.ok" or e["event"] == "step.error" and e.get("in_doubt"))]
    for e in reversed(done):
        if e.get("fallback"):
            continue
        if reactor == "Sub":
            undoable = True  # both steps of Sub have an undo (a default one, then its own)
        else:
            info = gen.steps[e["step"]]
            if info.compose_tag is not None and info.mode == "none":  # undone as a unit
                child = next(r for r, run in runs.items() if run["parent"] == run_id
                             and run["start"]["inputs"]["tag"] == info.compose_tag
                             and run["ends"][0]["event"] == "run.ok")
                out += _expected_undos(gen, events, runs, child, upto)
                continue
            undoable = info.undo
        if undoable:
            out.append((run_id, e["step"], tuple(e.get("index", ()))))
    return out


def _check_rollback(gen: Generated, events: list[dict[str, Any]], runs: dict[str, dict[str, Any]],
                    run_id: str) -> None:
    """Every completed step with an undo is undone exactly once, in reverse order of completion."""
    end = events.index(runs[run_id]["ends"][0])
    expected = _expected_undos(gen, events, runs, run_id, end)
    tree = _ok_tree(runs, run_id)
    groups = _undo_groups(events[:end], tree)
    assert [key for key, _ in groups] == expected
    for _, group in groups:
        kinds = [e["event"] for e in group]
        ok = kinds[-1] == "undo.ok" and kinds.count("undo.ok") == 1
        failed = kinds.count("undo.error") == UNDO_ATTEMPTS and "undo.ok" not in kinds
        # cut off in flight, and its undo needs the result it never got: not tried, reported
        unknowable = kinds == ["undo.error"] and group[0]["attempt"] == 0 and group[0]["error"]["code"] == "in_doubt"
        assert ok or failed or unknowable, kinds
        assert [e["attempt"] for e in group if e["event"] == "undo.start"] == list(
            range(1, kinds.count("undo.start") + 1))
