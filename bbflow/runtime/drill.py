"""``bbflow drill``: the runtime proof of what the compensation check (BBF401) proves statically.

On simulated robots and a virtual clock, a drill runs the reactor once as it
is (the baseline), then once per step that sends a robot command with that
step failing on every attempt, then once per undo with the last failable step
failing and that undo failing once (its retries must absorb it). After each
failed case it checks, from the event log and from the commands the
simulated robot carried out, that every completed step with an undo was
undone exactly once, in reverse order of completion, with the robot still
armed; a completed effectful step without an undo must be ``irreversible``
(its effect is listed as acknowledged), anything else is a failure.

Faults are aimed at steps, not at command numbers: the drill's observer
notes which task starts which step (or undo) attempt, and its faults object
looks the calling task up when the robot proxy asks whether a call should
fail. So a command used by several steps and their undos is failed only where
the case says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import IO, Any, cast

import attrs
from rich.console import Console
from rich.table import Table

from bbflow.project import Project
from bbflow.runtime import model
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.drivers import open_robot
from bbflow.runtime.events import Recorder, fanout
from bbflow.runtime.executor import RunResult, run_reactor
from bbflow.runtime.faults import Fault, Faults
from bbflow.runtime.ports import Observer, RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.run_plan import RunOptions, RunPlan, parse_inputs, plan_run

__all__ = ["Case", "DrillReport", "StepFaults", "check_case", "drill", "plan_drill", "render_report"]

DRILL_ERROR = "drill: injected failure"


@attrs.define
class StepFaults:
    """Faults aimed at step attempts and undo attempts (a drop-in for ``Faults`` in the robot proxy).

    ``fail_step``: (reactor, step) failing on every attempt; ``fail_undo``:
    (reactor, step) whose undo fails on its first attempt. ``base``: a faults
    file's faults, applied as well. ``commands`` records every call the proxy
    admitted: (kind, reactor, step, attempt, command).
    """

    fail_step: tuple[str, str] | None = None
    fail_undo: tuple[str, str] | None = None
    base: Faults | None = None
    source: str = "drill"
    commands: list[tuple[str, str, str, int, str]] = attrs.Factory(list)
    _callers: dict[asyncio.Task[Any], tuple[str, str, str, int]] = attrs.Factory(dict)

    @property
    def faults(self) -> tuple[Fault, ...]:
        return self.base.faults if self.base is not None else ()

    def observe(self, event: dict[str, Any]) -> None:
        kind = {"step.start": "step", "undo.start": "undo"}.get(event["event"])
        task = asyncio.current_task()
        if kind is not None and task is not None:
            self._callers[task] = (kind, event["reactor"], event["step"], event.get("attempt", 1))

    def validate(self, robot: model.Robot) -> None:
        if self.base is not None:
            self.base.validate(robot)

    def for_call(self, command: str, call: int) -> Fault | None:
        task = asyncio.current_task()
        caller = self._callers.get(task) if task is not None else None
        if caller is not None:
            kind, reactor, step, attempt = caller
            self.commands.append((kind, reactor, step, attempt, command))
            if kind == "step" and (reactor, step) == self.fail_step:
                return Fault(0, command, None, error=DRILL_ERROR)
            if kind == "undo" and (reactor, step) == self.fail_undo and attempt == 1:
                return Fault(0, command, None, error=DRILL_ERROR)
        return self.base.for_call(command, call) if self.base is not None else None


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
    skipped: tuple[str, ...] = ()  # steps that cannot be failed by a command fault, with why
    irreversible: tuple[tuple[str, str], ...] = ()  # (step, why): effects acknowledged, never undone

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


def drill(plan: RunPlan, base: Faults | None = None) -> DrillReport:
    """Run every case of the drill of ``plan.reactor`` on a virtual clock."""
    reactor = plan.reactor
    assert reactor is not None
    steps = dict(_steps(plan.program, reactor))
    irreversible = tuple((s.name, s.irreversible) for s in steps.values() if s.irreversible is not None)
    first = _case(plan, StepFaults(base=base), "baseline")
    cases = [first.case]
    if first.result.status != "ok":
        return DrillReport(reactor.name, tuple(cases), irreversible=irreversible)
    order = list(first.result.completed)
    failable = [s for s in order if isinstance(steps[s].call, model.CommandCall)]
    skipped = tuple(f"{s} ({_kind(steps[s].call)}: no robot command to fail)" for s in order if s not in failable)
    for name in failable:
        cases.append(_case(plan, StepFaults((reactor.name, name), base=base), f"fail {name}").case)
    last = failable[-1] if failable else None
    for name in order:
        step = steps[name]
        if last is None or name == last or order.index(name) > order.index(last) or _undo_of(plan.program, step) is None:
            continue
        faults = StepFaults((reactor.name, last), (reactor.name, name), base=base)
        cases.append(_case(plan, faults, f"fail {last}, undo of {name} fails once").case)
    return DrillReport(reactor.name, tuple(cases), skipped, irreversible)


@attrs.frozen
class _Outcome:
    case: Case
    result: RunResult


def _case(plan: RunPlan, faults: StepFaults, name: str) -> _Outcome:
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
            result = await run_reactor(plan.program, plan.reactor, plan.inputs, robot=robot, observer=observer)
            safety = robot.safety if robot is not None else None
        finally:
            for proxy in reversed(started):
                await proxy.close()
        return result, recorder, safety

    result, recorder, safety = run_virtual(main())
    assert plan.reactor is not None
    return _Outcome(check_case(plan.program, plan.reactor, name, result, recorder.events, faults.commands, safety),
                    result)


def check_case(program: model.Program, reactor: model.Reactor, name: str, result: RunResult,
               events: list[dict[str, Any]], commands: list[tuple[str, str, str, int, str]],
               safety: str | None) -> Case:
    """Judge one run: every completed step with an undo undone exactly once, in reverse completion order."""
    steps = dict(_steps(program, reactor))
    mine = [e for e in events if e.get("run") == result.run_id]
    completed = [e["step"] for e in mine if e["event"] == "step.ok"]
    undone = [e["step"] for e in mine if e["event"] == "undo.ok"]
    problems: list[str] = []
    at_fault: list[str] = []

    def fault(step: str, problem: str) -> None:
        problems.append(problem)
        if step not in at_fault:
            at_fault.append(step)

    if name == "baseline":
        if result.status != "ok":
            problems.append(f"the run does not succeed without faults: {_error(result)}")
        return Case(name, result.status, problems=tuple(problems))
    if result.status != "failed":
        problems.append(f"expected the run to fail and roll back, it {result.status}"
                        + (f": {_error(result)}" if result.error else ""))
    acknowledged = [s for s in completed if steps[s].irreversible is not None]
    expected = [s for s in reversed(completed) if _undo_of(program, steps[s]) is not None]
    for s in completed:
        if s not in expected and s not in acknowledged and _effectful(program, steps[s]):
            fault(s, f"step {s} completed, has an effect and no undo, and was left un-undone")
    for s in expected:
        count = undone.count(s)
        if count != 1:
            fault(s, f"step {s} was undone {count} times, expected once")
    for failure in result.undo_errors:
        fault(failure.step, f"the undo of step {failure.step} failed: {failure.message}")
    if [s for s in undone if s in expected] != [s for s in expected if s in undone]:
        fault(undone[0], f"undone in the order {', '.join(undone)}, expected {', '.join(expected)} "
                        "(reverse order of completion)")
    sent = [(step, command) for kind, r, step, _, command in commands if kind == "undo" and r == reactor.name]
    for s in expected:
        undo = _undo_of(program, steps[s])
        if isinstance(undo, model.CommandCall) and (s, undo.command) not in sent:
            fault(s, f"step {s}: its undo {undo.command} never reached the robot")
    if safety is not None and safety != "armed" and result.status != "halted":
        problems.append(f"the robot is {safety} after the rollback, expected armed")
    return Case(name, result.status, tuple(undone), tuple(acknowledged), tuple(problems), tuple(at_fault))


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


def _steps(program: model.Program, reactor: model.Reactor) -> Iterator[tuple[str, model.Step]]:
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

    yield from walk(reactor.body)


def _undo_of(program: model.Program, step: model.Step) -> model.Call | None:
    """The step's own undo, else its command's default undo (none for an irreversible step)."""
    if step.undo is not None:
        return step.undo.call
    if isinstance(step.call, model.CommandCall) and step.irreversible is None:
        command = _command(program, step.call.command)
        return command.undo if command is not None else None
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
    return isinstance(call, model.ReactorCall)


def _kind(call: model.Call) -> str:
    return {model.WaitState: "wait_state", model.WaitEvent: "wait_event", model.ActionCall: "an action",
            model.ReactorCall: "a composed reactor"}.get(type(call), "a call")


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
