"""``bbflow drill``: the runtime proof of what the compensation check (BBF401) proves statically.

On simulated robots and a virtual clock, a drill runs the reactor once as it
is (the baseline), then once per step the executor completed in the
baseline that it can fail, with that step failing on every attempt:

- a step that sends a robot command (the simulated robot refuses it);
- a step that calls an action (the action raises);
- a step that composes a reactor, as a unit: the last step the composed
  reactor completed fails (recursively), so it rolls itself back and the
  composing step fails;
- each iteration of a step in a ``map`` body, separately.

Waits (``wait_state``, ``wait_event``, ``wait_signal``) have no effect and
are not failed. Then, with the last of those steps failing, one case per
completed undoable step before it (composed reactors' steps included) in
which that step's undo fails on its first attempt (its retries must absorb
it).

After each failed case it checks, run by run (a composed reactor's run is
a run of its own), from the event log and from the calls the simulated robot
and the actions received, that every completed step with an undo was undone
exactly once, in reverse order of completion, its undo's command or action
reaching the robot or the action, with the robot still armed. A completed
effectful step without an undo must be ``irreversible`` (its effect is listed
as acknowledged); anything else is a failure naming the step.

Faults are aimed at step and undo attempts, not at command numbers: the
drill's observer notes which task runs which attempt (a step is named by its
path: the composing steps above it and the ``map`` iteration it is in), and
the robot proxy (through a ``Faults`` stand-in) and the action resolver look
the calling task up when a call is made.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

import attrs
from rich.console import Console
from rich.table import Table

from bbflow.project import Project
from bbflow.runtime import model
from bbflow.runtime.actions import resolve_action
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.drivers import open_robot
from bbflow.runtime.events import Recorder, fanout
from bbflow.runtime.executor import RunResult, run_reactor
from bbflow.runtime.faults import Fault, Faults
from bbflow.runtime.ports import Observer, RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.run_plan import RunOptions, RunPlan, parse_inputs, plan_run

__all__ = ["Case", "DrillReport", "Key", "StepFaults", "check_case", "drill", "plan_drill", "render_report"]

DRILL_ERROR = "drill: injected failure"

#: A step as the drill names it: (step, map iteration) from the drilled reactor down through composing steps.
Key = tuple[tuple[str, tuple[int, ...]], ...]
#: A call the robot or an action received: (kind "step" | "undo", run, key, attempt, command or action target).
Call = tuple[str, str, Key, int, str]

_UNDO_MARK = ("(undo)", ())  # a composed reactor run by an undo: its steps are not the composing step's


def show(key: Key) -> str:
    """``approach``, ``m.x[2]`` style: composing steps joined by ``/``, a map iteration in brackets."""
    return "/".join(step + (f"[{','.join(map(str, index))}]" if index else "") for step, index in key)



def _at(event: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """The step an event is about, within its run: (step, map iteration)."""
    return event["step"], tuple(event.get("index", ()))


def _key(event: dict[str, Any], paths: dict[str, Key]) -> Key:
    """The key of the step an event is about: its run's key prefix (``paths``), then the step."""
    return (*paths.get(event["run"], ()), _at(event))

@attrs.define
class StepFaults:
    """Faults aimed at step attempts and undo attempts (a stand-in for ``Faults`` in the robot proxy).

    ``fail_step``: the step failing on every attempt; ``fail_undo``: the step
    whose undo fails on its first attempt. ``base``: a faults file's faults,
    applied as well. ``calls`` records every call the proxy admitted and
    every action called; ``paths`` the key prefix of every run (its composing
    step's key; () for the drilled reactor's run).
    """

    fail_step: Key | None = None
    fail_undo: Key | None = None
    base: Faults | None = None
    source: str = "drill"
    calls: list[Call] = attrs.Factory(list)
    paths: dict[str, Key] = attrs.Factory(dict)
    _callers: dict[asyncio.Task[Any], tuple[str, str, Key, int]] = attrs.Factory(dict)
    #: runs of a reactor called as an undo (and runs they compose): the undone step's key, the undo's attempt
    _undo_runs: dict[str, tuple[Key, int]] = attrs.Factory(dict)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self.base.faults if self.base is not None else ()

    def observe(self, event: dict[str, Any]) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        name, run = event["event"], event["run"]
        if name == "run.start":
            caller = self._callers.get(task) if "parent" in event else None
            if caller is None:
                self.paths[run] = ()
            elif caller[0] == "step":
                self.paths[run] = caller[2]
                if caller[1] in self._undo_runs:
                    self._undo_runs[run] = self._undo_runs[caller[1]]
            else:
                self.paths[run] = (*caller[2], _UNDO_MARK)
                self._undo_runs[run] = (caller[2], caller[3])
        kind = {"step.start": "step", "undo.start": "undo"}.get(name)
        if kind is not None:
            key = _key(event, self.paths)
            self._callers[task] = (kind, run, key, event.get("attempt", 1))

    def validate(self, robot: model.Robot) -> None:
        if self.base is not None:
            self.base.validate(robot)

    def _aimed(self, what: str) -> bool:
        """Record the call the current task makes; whether the case fails it."""
        task = asyncio.current_task()
        caller = self._callers.get(task) if task is not None else None
        if caller is None:
            return False
        kind, run, key, attempt = caller
        self.calls.append((kind, run, key, attempt, what))
        if kind == "step" and run in self._undo_runs:  # inside a reactor called as an undo
            kind, (key, attempt) = "undo", self._undo_runs[run]
        return (kind == "step" and key == self.fail_step) or (kind == "undo" and key == self.fail_undo
                                                               and attempt == 1)

    def for_call(self, command: str, call: int) -> Fault | None:
        if self._aimed(command):
            return Fault(0, command, None, error=DRILL_ERROR)
        return self.base.for_call(command, call) if self.base is not None else None

    def resolve(self, target: str) -> Callable[..., Any]:
        """The action resolver of a case: the action itself, or one that raises where the case says."""
        if self._aimed(target):
            return _raise
        return resolve_action(target)


async def _raise(**_: Any) -> Any:
    raise RuntimeFailure(DRILL_ERROR, "action")


@attrs.frozen
class Case:
    """One run of a drill and what it showed."""

    name: str  # "baseline", "fail lift", "fail release, undo of lift fails once"
    status: str  # the run's status: ok, failed, halted
    undone: tuple[str, ...] = ()  # steps undone, in order
    acknowledged: tuple[str, ...] = ()  # completed irreversible steps
    problems: tuple[str, ...] = ()  # empty: the case passed
    at_fault: tuple[str, ...] = ()  # the steps left un-undone, undone twice or out of order, or whose undo failed

    @property
    def passed(self) -> bool:
        return not self.problems


@attrs.frozen
class DrillReport:
    reactor: str
    cases: tuple[Case, ...]
    skipped: tuple[str, ...] = ()  # steps the drill does not fail, with why
    irreversible: tuple[tuple[str, str], ...] = ()  # (step, why): effects acknowledged, never undone

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


def drill(plan: RunPlan, base: Faults | None = None) -> DrillReport:
    """Run every case of the drill of ``plan.reactor`` on a virtual clock."""
    reactor = plan.reactor
    assert reactor is not None
    reactors = _reactors(plan.program, reactor)
    first = _case(plan, StepFaults(base=base), "baseline", False)
    cases = [first.case]
    irreversible = tuple(dict.fromkeys(
        (show(k), s.irreversible) for k, s in _completed_steps(first, reactors) if s.irreversible is not None))
    if first.result.status != "ok":
        return DrillReport(reactor.name, tuple(cases), irreversible=irreversible)
    completed = list(_completed_steps(first, reactors))
    steps = dict(completed)
    targets: list[tuple[Key, Key]] = []  # (the step failed, the step whose call fails: itself or, composed, inside)
    skipped = []
    for key, step in completed:
        if len(key) != 1:
            continue  # a composed reactor's steps are failed as a unit, through their composing step
        aim = _aim(key, completed)
        if aim is None:
            skipped.append(f"{show(key)} ({_kind(step.call)})")
        else:
            targets.append((key, aim))
    for key, aim in targets:
        name = f"fail {show(key)}" + (f" (as a unit: {show(aim)} fails)" if aim != key else "")
        cases.append(_case(plan, StepFaults(aim, base=base), name, _absorbed(steps, aim)).case)
    if targets:
        last, aim = targets[-1]
        before = [k for k, _ in completed][:[k for k, _ in completed].index(aim)]
        for key in before:
            if _undo_of(plan.program, steps[key]) is not None:
                cases.append(_case(plan, StepFaults(aim, key, base=base),
                                   f"fail {show(last)}, undo of {show(key)} fails once", _absorbed(steps, aim)).case)
    return DrillReport(reactor.name, tuple(cases), tuple(skipped), irreversible)


@attrs.frozen
class _Outcome:
    case: Case
    result: RunResult
    events: list[dict[str, Any]]
    paths: dict[str, Key]


def _case(plan: RunPlan, faults: StepFaults, name: str, absorbed: bool) -> _Outcome:
    async def main() -> tuple[RunResult, Recorder, str | None]:
        recorder = Recorder()
        robots = [open_robot(rp.instance, rp.spec, rp.table, driver="sim", faults=cast(Faults, faults))
                  for rp in plan.robots]
        started: list[RobotProxy] = []
        try:
            for proxy in robots:
                await proxy.start()
                started.append(proxy)
                await proxy.call("arm", {})
            robot = next((p for p in robots if p.instance == plan.reactor_robot), None)
            observer: Observer | None = fanout(faults.observe, recorder)
            assert plan.reactor is not None
            result = await run_reactor(plan.program, plan.reactor, plan.inputs, robot=robot, observer=observer,
                                       actions=faults.resolve)
            safety = robot.safety if robot is not None else None
        finally:
            for proxy in reversed(started):
                await proxy.close()
        return result, recorder, safety

    result, recorder, safety = run_virtual(main())
    assert plan.reactor is not None
    case = check_case(plan.program, plan.reactor, name, result, recorder.events, faults.calls, safety,
                      faults.paths, absorbed=absorbed, undo_fails=faults.fail_undo)
    return _Outcome(case, result, recorder.events, faults.paths)


def _absorbed(steps: dict[Key, model.Step], aim: Key) -> bool:
    """Whether failing ``aim`` ends in a ``fallback`` (its own, or a composing step's) rather than a rollback."""
    return any(steps[aim[:i]].fallback is not None for i in range(1, len(aim) + 1))


def _completed_steps(outcome: _Outcome, reactors: dict[str, model.Reactor]) -> Iterator[tuple[Key, model.Step]]:
    """The steps the run completed, in completion order, each with its key (composed reactors' steps too)."""
    for e in outcome.events:
        if e["event"] == "step.ok" and _UNDO_MARK not in outcome.paths.get(e["run"], ()):
            reactor = reactors.get(e["reactor"])
            step = _steps(reactor).get(e["step"]) if reactor is not None else None
            if step is not None:
                yield _key(e, outcome.paths), step


def _aim(key: Key, completed: list[tuple[Key, model.Step]]) -> Key | None:
    """Where to fail ``key``: the step itself if it calls a command or an action; for a composed reactor,
    the last step of it (recursively) that can be failed; None for a wait."""
    step = dict(completed)[key]
    if isinstance(step.call, model.CommandCall | model.ActionCall):
        return key
    if isinstance(step.call, model.ReactorCall):
        inside = [k for k, _ in completed if len(k) == len(key) + 1 and k[:len(key)] == key]
        for inner in reversed(inside):
            aim = _aim(inner, completed)
            if aim is not None:
                return aim
    return None


def check_case(program: model.Program, reactor: model.Reactor, name: str, result: RunResult,
               events: list[dict[str, Any]], calls: list[Call], safety: str | None,
               paths: dict[str, Key] | None = None, *, absorbed: bool = False,
               undo_fails: Key | None = None) -> Case:
    """Judge one run, run by run: every completed step with an undo undone exactly once, in reverse
    completion order, when its run had to be rolled back; nothing undone when it did not.

    ``paths``: the key prefix of each run (the drilled reactor's: ()); ``absorbed``: the failed step has a
    ``fallback``, so the run is expected to succeed; ``undo_fails``: the step whose undo the case fails
    once (when that undo ran, its first attempt must have failed, or the case proved nothing).
    """
    paths = paths if paths is not None else {result.run_id: ()}
    verdict = _Verdict()
    if name == "baseline":
        if result.status != "ok":
            verdict.problems.append(f"the run does not succeed without faults: {_error(result)}")
        return Case(name, result.status, problems=tuple(verdict.problems))
    expected_status = "ok" if absorbed else "failed"
    if result.status != expected_status:
        verdict.problems.append(f"expected the run to {'succeed' if absorbed else 'fail and roll back'}, it "
                                f"{result.status}" + (f": {_error(result)}" if result.error else ""))
    runs = _runs(events, paths)
    if result.run_id in runs:
        runs[result.run_id].status = result.status
    undone_all = [show(_key(e, paths))
                  for e in events if e["event"] == "undo.ok" and e.get("run") in paths]
    acknowledged = _check_runs(verdict, program, _reactors(program, reactor), runs, calls)
    if undo_fails is not None:
        _check_injected_undo(verdict, events, paths, undo_fails)
    _check_undo_errors(verdict, result, paths)
    _check_safety(verdict, result, safety)
    return Case(name, result.status, tuple(undone_all), tuple(acknowledged), tuple(verdict.problems),
                tuple(verdict.at_fault))


@attrs.define
class _Verdict:
    """What a case found wrong, and the steps at fault (each once, in the order found)."""

    problems: list[str] = attrs.Factory(list)
    at_fault: list[str] = attrs.Factory(list)

    def fault(self, step: str, problem: str) -> None:
        self.problems.append(problem)
        if step not in self.at_fault:
            self.at_fault.append(step)


def _check_runs(verdict: _Verdict, program: model.Program, reactors: dict[str, model.Reactor],
                runs: dict[str, _Run], calls: list[Call]) -> list[str]:
    """Each run's undos: none when it was not rolled back; else every completed step with an effect undone
    exactly once, in reverse completion order, its undo sent to the robot. The irreversible steps acknowledged."""
    acknowledged: list[str] = []
    for run in runs.values():
        prefix = run.prefix
        steps = _steps(reactors[run.reactor]) if run.reactor in reactors else {}
        completed = [(s, i) for s, i in run.completed if s in steps]
        if not _rolled_back(run, runs, reactors):
            for u in dict.fromkeys(run.undone):
                verdict.fault(show((*prefix, u)), f"step {show((*prefix, u))} was undone, but its run was not rolled back")
            continue
        acknowledged += [show((*prefix, c)) for c in completed if steps[c[0]].irreversible is not None]
        expected = [c for c in reversed(completed) if _undo_of(program, steps[c[0]]) is not None]
        for c in completed:
            step = steps[c[0]]
            if c not in expected and step.irreversible is None and not isinstance(step.call, model.ReactorCall) \
                    and _effectful(program, step):
                what = show((*prefix, c))
                verdict.fault(what, f"step {what} completed, has an effect and no undo, and was left un-undone")
        for c in expected:
            count = run.undone.count(c)
            if count != 1:
                verdict.fault(show((*prefix, c)), f"step {show((*prefix, c))} was undone {count} times, expected once")
        order = [u for u in run.undone if u in expected]
        if order != [c for c in expected if c in run.undone]:
            verdict.fault(show((*prefix, order[0])),
                          f"undone in the order {', '.join(show((*prefix, u)) for u in order)}, expected "
                          f"{', '.join(show((*prefix, c)) for c in expected)} (reverse order of completion)")
        sent = {(key, what) for kind, r, key, _, what in calls if kind == "undo" and r == run.id}
        for c in expected:
            undo = _undo_of(program, steps[c[0]])
            callee = _callee(program, undo)
            key = (*prefix, c)
            if callee is not None and c in run.undone and (key, callee) not in sent:
                verdict.fault(show(key), f"step {show(key)}: its undo {callee} never reached the robot")
    return acknowledged


def _check_injected_undo(verdict: _Verdict, events: list[dict[str, Any]], paths: dict[str, Key],
                         undo_fails: Key) -> None:
    """The undo the case fails once: if it ran, its first attempt failed (or the case proved nothing)."""
    keyed = [(_key(e, paths), e["event"], e.get("attempt"))
             for e in events if e["event"] in ("undo.ok", "undo.error") and e.get("run") in paths]
    if any(k == undo_fails and ev == "undo.ok" for k, ev, _ in keyed) and (undo_fails, "undo.error", 1) not in keyed:
        verdict.problems.append(f"the undo of step {show(undo_fails)} ran without the failure the case injects")


def _check_undo_errors(verdict: _Verdict, result: RunResult, paths: dict[str, Key]) -> None:
    """Every undo that failed for good is a fault of its step."""
    for failure in result.undo_errors:
        what = show((*paths.get(failure.run, ()), (failure.step, ())))
        verdict.fault(what, f"the undo of step {what} failed: {failure.message}")


def _check_safety(verdict: _Verdict, result: RunResult, safety: str | None) -> None:
    """After a rollback (not a halt) the robot is armed again."""
    if safety is not None and safety != "armed" and result.status != "halted":
        verdict.problems.append(f"the robot is {safety} after the rollback, expected armed")


@attrs.define
class _Run:
    id: str
    reactor: str
    prefix: Key
    parent: str | None
    status: str | None = None
    completed: list[tuple[str, tuple[int, ...]]] = attrs.Factory(list)
    undone: list[tuple[str, tuple[int, ...]]] = attrs.Factory(list)


def _runs(events: list[dict[str, Any]], paths: dict[str, Key]) -> dict[str, _Run]:
    runs: dict[str, _Run] = {}
    for e in events:
        rid = e.get("run")
        if rid not in paths:
            continue
        run = runs.get(rid)
        if run is None:
            run = runs[rid] = _Run(rid, e["reactor"], paths[rid], e.get("parent"))
        at = _at(e)
        if e["event"] == "step.ok":
            run.completed.append(at)
        elif e["event"] == "undo.ok":
            run.undone.append(at)
        elif e["event"] in ("run.ok", "run.failed", "run.halted"):
            run.status = e["event"].removeprefix("run.")
    return runs


def _rolled_back(run: _Run, runs: dict[str, _Run], reactors: dict[str, model.Reactor]) -> bool:
    """Whether ``run`` had to be rolled back: it failed (or halted), or it succeeded as a composed reactor whose
    composing step (without an undo of its own, not irreversible) completed in a run that had to be."""
    if run.status in ("failed", "halted"):  # a halted run stopped undoing: what it left is named
        return True
    parent = runs.get(run.parent) if run.parent is not None else None
    if run.status != "ok" or parent is None or not run.prefix or run.prefix[-1] == _UNDO_MARK:
        return False
    composing = run.prefix[-1]
    step = _steps(reactors[parent.reactor]).get(composing[0]) if parent.reactor in reactors else None
    return (step is not None and step.undo is None and step.irreversible is None
            and composing in parent.completed and _rolled_back(parent, runs, reactors))


def plan_drill(program: model.Program, project: Project, reactor: str, inputs: tuple[str, ...],
               robot: str | None = None) -> RunPlan:
    """The plan of a drill: ``reactor`` on simulated robots; a parameter without ``--input`` or default
    gets its type's zero value. Raises ``UsageError``."""
    return plan_run(program, project, RunOptions(reactor=reactor, driver="sim", robots=(robot,) if robot else (),
                                                 inputs=_filled(program, reactor, inputs)))


def _filled(program: model.Program, reactor: str, pairs: tuple[str, ...]) -> tuple[str, ...]:
    try:
        spec = program.find("reactors", reactor)
    except KeyError:
        return pairs  # plan_run says what is wrong
    given = parse_inputs(pairs)
    zeros = [f"{p.name}={json.dumps(p.type.zero())}" for p in spec.params if p.name not in given and p.default is None]
    return (*pairs, *zeros)


def _reactors(program: model.Program, top: model.Reactor) -> dict[str, model.Reactor]:
    """``top`` and every reactor it composes (in steps or undos), by the name its runs' events carry."""
    found: dict[str, model.Reactor] = {}
    todo = [top]
    while todo:
        reactor = todo.pop()
        if reactor.name in found:
            continue
        found[reactor.name] = reactor
        for step in _steps(reactor).values():
            for call in (step.call, step.undo.call if step.undo is not None else None):
                if isinstance(call, model.ReactorCall):
                    todo.append(program.find("reactors", call.reactor))
    return found


def _steps(reactor: model.Reactor) -> dict[str, model.Step]:
    def walk(body: model.Body) -> Iterator[tuple[str, model.Step]]:
        for node in body.nodes:
            if isinstance(node, model.Step):
                yield node.name, node
            elif isinstance(node, model.Switch):
                for case in node.cases:
                    yield from walk(case.body)
                if node.default is not None:
                    yield from walk(node.default)
            elif isinstance(node, model.Map):
                yield from walk(node.body)

    return dict(walk(reactor.body))


def _undo_of(program: model.Program, step: model.Step) -> model.Call | None:
    """The step's own undo, else its command's default undo (none for an irreversible step)."""
    if step.irreversible is not None:
        return None
    if step.undo is not None:
        return step.undo.call
    if isinstance(step.call, model.CommandCall):
        command = _command(program, step.call.command)
        return command.undo if command is not None else None
    return None


def _callee(program: model.Program, call: model.Call | None) -> str | None:
    """What an undo call reaches that the drill records: a command's name, an action's target."""
    if isinstance(call, model.CommandCall):
        return call.command
    if isinstance(call, model.ActionCall):
        action = program.actions.get(call.action)
        return action.target if action is not None else None
    return None


def _command(program: model.Program, name: str) -> model.Command | None:
    return next((r.commands[name] for r in program.robots.values() if name in r.commands), None)


def _effectful(program: model.Program, step: model.Step) -> bool:
    call = step.call
    if isinstance(call, model.CommandCall):
        command = _command(program, call.command)
        return command is None or not command.readonly
    if isinstance(call, model.ActionCall):
        action = program.actions.get(call.action)
        return action is None or not action.pure
    return False


def _kind(call: model.Call) -> str:
    if isinstance(call, model.ReactorCall):
        return "a composed reactor whose steps only wait"
    wait = {model.WaitState: "wait_state", model.WaitEvent: "wait_event", model.WaitSignal: "wait_signal"}
    return f"{wait.get(type(call), 'a call')}: a wait has no effect to undo"


def _error(result: RunResult) -> str:
    return result.error.message if isinstance(result.error, RuntimeFailure) else str(result.error)
def render_report(report: DrillReport, out: IO[str]) -> None:
    """The table of cases, then the verdict (naming every step at fault)."""
    header = ("case", "run", "undone (in order)", "acknowledged", "verdict")
    rows = [(c.name, c.status, ", ".join(c.undone) or "-", ", ".join(c.acknowledged) or "-",
             "ok" if c.passed else "FAILED") for c in report.cases]
    console = Console(file=out, highlight=False, soft_wrap=True)
    if out.isatty():
        table = Table(*header, title=f"drill {report.reactor}", title_justify="left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:  # piped or in a CI log: plain columns, one line per case
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
        console.print(f"drill {report.reactor}", markup=False)
        for row in (header, *rows):
            console.print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip(), markup=False)
    for step, why in report.irreversible:
        console.print(f"acknowledged: {step} is irreversible ({why}): its effect stays when a later step fails",
                      markup=False)
    for step in report.skipped:
        console.print(f"not failed: {step}", markup=False)
    failed = [c for c in report.cases if not c.passed]
    for case in failed:
        for problem in case.problems:
            console.print(f"FAILED {case.name}: {problem}", markup=False)
    steps = list(dict.fromkeys(s for c in failed for s in c.at_fault))
    verdict = f"{len(report.cases) - len(failed)} of {len(report.cases)} cases passed"
    if steps:
        verdict += f"; left un-undone or undone wrongly: {', '.join(steps)}"
    elif not failed:
        verdict += f": every completed step of {report.reactor} with an undo was undone once, in reverse order, " \
                   "with the robot armed"
    console.print(verdict, markup=False)
