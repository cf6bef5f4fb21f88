"""``bbflow.testing``: a pytest plugin for testing flows on the simulated robot and a virtual clock.

Installed with bbflow (entry point ``pytest11``), it gives every test the
``flow`` fixture::

    def test_a_jammed_gripper_is_rolled_back(flow):
        cell = flow.project("examples/pick_and_place")
        run = cell.run_reactor("PickAndPlace", pick=POSE, place=POSE,
                               faults=[{"command": "close_gripper", "error": "jammed"}])
        assert run.failed
        run.events.assert_undone("approach")

    def test_the_picker_answers(flow):
        cell = flow.source(CELL_FLOW)                   # one .flow module, a simulated robot per interface
        run = cell.run_agents({"type": "pick.requested", "data": {...}})
        assert run.events.emitted("pick.completed") == [{"at": PLACE}]

Everything runs in-process on a virtual clock (delays, timeouts and the
simulated robot's durations take no real time) through the same session as
``bbflow run``: robots armed, agents supervised, signals checked at the door,
robots disarmed at the end. Faults are the ``[[fault]]`` entries of a faults
file, given as dicts. See docs/testing.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from bbflow.project import Project, load_project
from bbflow.runtime import model
from bbflow.runtime.app import Outcome, Session, Status
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.door import loads_strict
from bbflow.runtime.events import Recorder
from bbflow.runtime.faults import Faults, parse_faults
from bbflow.runtime.run_plan import RunOptions, RunPlan, plan_run

__all__ = ["Events", "Flow", "FlowError", "FlowProject", "FlowRun", "flow"]


class FlowError(AssertionError):
    """A program that does not compile, or a run that cannot start as asked."""


class Events(list[dict[str, Any]]):
    """The events of a run, in order, with helpers to look at them and to assert on them."""

    def named(self, *names: str) -> list[dict[str, Any]]:
        """The events whose name is one of ``names``."""
        return [e for e in self if e["event"] in names]

    def steps(self, event: str, reactor: str | None = None) -> list[str]:
        """The steps of the ``event`` events (``"step.ok"``, ``"undo.ok"`` ...), in order."""
        return [e["step"] for e in self if e["event"] == event and (reactor is None or e["reactor"] == reactor)]

    def emitted(self, signal_type: str) -> list[Any]:
        """The data of every ``signal_type`` the agents emitted."""
        return [e.get("data") for e in self if e["event"] == "signal.emit" and e["type"] == signal_type]

    def dropped(self) -> list[tuple[str, str]]:
        """(type, reason) of every signal dropped."""
        return [(e["type"], e.get("reason", "")) for e in self if e["event"] == "signal.dropped"]

    def assert_completed(self, *steps: str) -> None:
        """These steps completed, in this order (others may have too)."""
        _assert_in_order("completed", self.steps("step.ok"), steps)

    def assert_undone(self, *steps: str) -> None:
        """Exactly these steps were undone, each once, in this order."""
        undone = self.steps("undo.ok")
        if undone != list(steps):
            raise AssertionError(f"undone: {undone or 'nothing'}, expected {list(steps) or 'nothing'}")

    def assert_sequence(self, *names: str) -> None:
        """These event names occur in this order (others may come between)."""
        _assert_in_order("events", [e["event"] for e in self], names)


@attrs.frozen
class FlowRun:
    """How a run (of a reactor, or of agents until idle) ended, with its events."""

    status: Status
    summary: str
    result: Any
    events: Events

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def halted(self) -> bool:
        return self.status is Status.HALTED


@attrs.define
class FlowProject:
    """A compiled program with its project configuration, ready to run on simulated robots."""

    program: model.Program
    config: Project

    def run_reactor(self, name: str, inputs: Mapping[str, Any] | None = None, *, robot: str | None = None,
                    faults: Iterable[Mapping[str, Any]] = (), **named_inputs: Any) -> FlowRun:
        """Run reactor ``name`` with ``inputs`` (a dict, or keyword arguments) to its end."""
        twice = sorted(set(inputs or {}) & set(named_inputs))
        if twice:
            raise FlowError(f"inputs: {', '.join(twice)}: given twice (in the dict and as a keyword argument)")
        pairs = tuple(f"{k}={_json(f'inputs: {k}', v)}" for k, v in {**(inputs or {}), **named_inputs}.items())
        return self._run(RunOptions(reactor=name, inputs=pairs, robots=(robot,) if robot else (), driver="sim",
                                    from_python=True), faults, None)

    def run_agents(self, *signals: Mapping[str, Any] | str, agents: Iterable[str] = (), robot: str | None = None,
                   faults: Iterable[Mapping[str, Any]] = ()) -> FlowRun:
        """Start the agents (default: ``[run] agents``, else every agent), feed them ``signals``
        (CloudEvents dicts with at least ``type``, or JSON lines), and run until idle."""
        names = tuple(agents) or self.config.run_agents or tuple(a.qualname for a in self.program.agents.values())
        lines = [_signal_line(n, s) for n, s in enumerate(signals, 1)]
        options = RunOptions(agents=names, robots=(robot,) if robot else (), driver="sim", until_idle=True,
                             from_python=True)
        return self._run(options, faults, lines)

    def _run(self, options: RunOptions, faults: Iterable[Mapping[str, Any]], lines: list[str] | None) -> FlowRun:
        try:
            plan = _with_faults(plan_run(self.program, self.config, options), faults)
        except Exception as exc:  # a usage error: say it as a test failure, not a crash
            raise FlowError(str(exc)) from None
        recorder = Recorder()
        notes: list[str] = []
        session = Session(plan, observer=recorder, lines=_feed(lines) if lines is not None else None,
                          note=notes.append)
        outcome: Outcome = run_virtual(session.run())
        return FlowRun(outcome.status, outcome.summary, outcome.result, Events(recorder.events))


@attrs.define
class Flow:
    """The ``flow`` fixture: load projects or source text for a test (compiled in ``tmp_path`` when needed)."""

    tmp_path: Path

    def project(self, path: str | Path) -> FlowProject:
        """The project at ``path`` (a folder at or below its bbflow.toml)."""
        from bbflow.build import compile_project

        config = load_project(path)
        diagnostics, program = compile_project(config.root)
        if program is None:
            raise FlowError("the project does not compile:\n" + "\n".join(
                f"{d.span.file}:{d.span.line}:{d.span.column}: {d.code} {d.message}" for d in diagnostics.sorted()))
        return FlowProject(program, config)

    def source(self, text: str, toml: str | None = None, module: str = "cell") -> FlowProject:
        """A project of one module ``module`` holding ``text``; without ``toml``, one simulated robot
        per robot interface (named after it in lower case) and no ``[run] agents``."""
        root = self.tmp_path / f"bbflow-{module}"
        (root / "flows").mkdir(parents=True, exist_ok=True)
        (root / "flows" / f"{module}.flow").write_text(text, encoding="utf-8")
        if toml is None:
            from bbflow.compiler import ast
            from bbflow.compiler.syntax import parse_text

            parsed, _ = parse_text(text)
            robots = [d.name.name for d in parsed.decls if isinstance(d, ast.RobotDecl)]
            toml = f'[project]\nname = "{module}"\nsource = "flows"\n' + "".join(
                f'\n[robot.{r.lower()}]\ninterface = "{module}.{r}"\n' for r in robots)
        (root / "bbflow.toml").write_text(toml, encoding="utf-8")
        return self.project(root)


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    """Load a bbflow project or source text and run it on simulated robots and a virtual clock."""
    return Flow(tmp_path)


def _json(what: str, value: Any) -> str:
    """``value`` (``what``: an input or a signal) as JSON text, as ``bbflow run`` reads it; ``FlowError`` for a
    value no flow takes."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise FlowError(f"{what}: NaN and infinity are not values a flow takes") from None
    except TypeError as exc:  # "Object of type datetime is not JSON serializable", wherever it is inside
        raise FlowError(f"{what}: not a value a flow takes ({exc}): give dicts, lists, strings, numbers, "
                        "booleans and None") from None


def _signal_line(number: int, signal: Mapping[str, Any] | str) -> str:
    """Signal ``number`` (1-based) as a line of input; a string that is not JSON is a ``FlowError`` (``bbflow
    run`` would skip that line with a note: a test would then see nothing happen, and not why)."""
    if not isinstance(signal, str):
        return _json(f"signals: signal {number}", signal)
    try:
        loads_strict(signal)
    except ValueError as exc:
        raise FlowError(f"signals: signal {number}: {exc} (give a dict, or one line of JSON)") from None
    return signal


async def _feed(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def _with_faults(plan: RunPlan, entries: Iterable[Mapping[str, Any]]) -> RunPlan:
    faults = parse_faults({"fault": [dict(e) for e in entries]}, "faults")
    if not faults.faults:
        return plan
    robots = []
    for rp in plan.robots:
        mine = tuple(f for f in faults.faults if f.command in rp.spec.commands)
        robots.append(attrs.evolve(rp, faults=Faults("faults", mine) if mine else None))
    unknown = [f.command for f in faults.faults if not any(f.command in rp.spec.commands for rp in plan.robots)]
    if unknown:
        raise FlowError(f"faults: no robot of this run has a command {', '.join(map(repr, unknown))}")
    return attrs.evolve(plan, robots=tuple(robots))


def _assert_in_order(what: str, got: list[str], wanted: Iterable[str]) -> None:
    it = iter(got)
    for name in wanted:
        if not any(name == g for g in it):
            raise AssertionError(f"{what}: {got}, expected {list(wanted)} in this order")
