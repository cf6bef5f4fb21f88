"""Recovery: what ``bbflow run`` does, before it takes a new signal, with the runs a crash left unfinished.

A run is unfinished when the journal has its start and not its end. Its
*effects* are the steps (of the run and of the reactors it composed) whose
command completed, or whose intent was committed without a result: *in
doubt*, the command may have reached the driver and moved. Recovery never
runs a step again; it undoes the effects newest intent first, with the undo
recorded at the time (arguments and results from the journal), skipping the
undos already done and running again an undo cut off by the crash. Each undo
gets the usual three attempts and is journaled like any other.

A run is *held* instead, listed for the operator (``bbflow runs``, ``bbflow
runs recover ID``), when ``[journal] recovery = "hold"``, when an in-doubt
step's undo needs the step's own result (it cannot be undone blindly), or
when its robot is not open in this session. Recovery moves robots, so it
waits until each robot is armed.

Events: ``recover.start`` (``runs``), ``recover.run`` (per run: ``action``
``rolled back`` or ``held``, ``in_doubt`` steps, ``reason``), the undos'
``undo.*``, and ``recover.done`` (``rolled_back``, ``held``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

from bbflow.runtime import model
from bbflow.runtime.actions import invoke, resolve_action
from bbflow.runtime.events import jsonable, notify
from bbflow.runtime.journal import owners
from bbflow.runtime.journal.calls import Journaled, journaled_call
from bbflow.runtime.journal.journal import Journal
from bbflow.runtime.journal.store import loads
from bbflow.runtime.ports import ActionResolver, Observer, RobotPort, RuntimeFailure

#: as for any rollback (``bbflow.runtime.rollback``)
UNDO_ATTEMPTS = 3
UNDO_TIMEOUT = 30.0

RECOVERED = "recovered"


@attrs.frozen
class Effect:
    """A step of an unfinished run that may have moved the world, and how to undo it."""

    seq: int
    run: str
    step: str
    index: tuple[int, ...]
    in_doubt: bool
    undo: dict[str, Any] | None
    hold: str | None


@attrs.frozen
class Recovered:
    """What recovery did with one unfinished run."""

    run: str
    reactor: str
    robot: str | None
    action: str  # "rolled back", "held" or "finished"
    in_doubt: tuple[str, ...] = ()
    reason: str | None = None
    undo_errors: tuple[dict[str, Any], ...] = ()
    origin: dict[str, Any] | None = None  # the agent's `run` statement that started it
    value: Any = None  # the result of a run found finished

    @property
    def error(self) -> dict[str, Any]:
        """The error the starting agent's ``else`` sees."""
        if self.action == "held":
            message = f"{self.reactor} was cut off by a crash and is held for an operator: {self.reason}"
        else:
            message = f"{self.reactor} was cut off by a crash and rolled back at recovery"
        return {"message": message, "code": RECOVERED}


def unfinished(journal: Journal, only: str | None = None) -> list[dict[str, Any]]:
    """The root runs to recover: unfinished ones (and the held run ``only``, when given), oldest first.

    All of the journal's: ``Recovery`` keeps those of its own robots and agents.
    """
    conn = journal.read
    conn.row_factory = _rows
    try:
        if only is not None:
            return conn.execute("SELECT * FROM runs WHERE id = ? AND parent IS NULL AND status IN "
                                "('running', 'held')", (only,)).fetchall()
        return conn.execute("SELECT * FROM runs WHERE status = 'running' AND +parent IS NULL "  # (``+``: by status,
                            "ORDER BY started").fetchall()  # not every run by start: few are unfinished)
    finally:
        conn.row_factory = None


_TREES = """WITH RECURSIVE tree(id, root) AS (
    SELECT id, id FROM runs WHERE +parent IS NULL AND status IN ('running', 'held')
    UNION ALL SELECT runs.id, tree.root FROM runs JOIN tree ON runs.parent = tree.id)"""


def calls_of_unfinished(journal: Journal) -> dict[str, list[tuple[Any, ...]]]:
    """Every call of the unfinished (and held) runs and the runs they composed, by root run, in intent order.

    One scan of the calls (they have no index by run, to keep each intent's commit cheap), from where the
    first of those runs' calls begin (``calls_from``), not through the whole history before them.
    """
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in journal.read.execute(
            f"{_TREES} SELECT tree.root, seq, run, kind, step, idx, outcome, undo, hold, result FROM calls "
            f"JOIN tree ON calls.run = tree.id "
            f"WHERE calls.seq >= (SELECT min(runs.calls_from) FROM runs JOIN tree ON runs.id = tree.id) ORDER BY seq"):
        out.setdefault(row[0], []).append(row[1:])
    return out


def effects(journal: Journal, root: str, calls: list[tuple[Any, ...]] | None = None) -> list[Effect]:
    """The effects of run ``root`` and its composed runs still to undo, newest intent first."""
    if calls is None:
        calls = calls_of_unfinished(journal).get(root, [])
    latest: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    undone: set[tuple[str, str, str]] = set()
    for row in calls:
        seq, run, kind, step, idx, outcome, undo, hold = row[:8]
        key = (run, step, idx)
        if kind == "step":
            latest[key] = row
        elif outcome == "ok":
            undone.add(key)
    out = []
    for key, (seq, run, _, step, idx, outcome, undo, hold, *_) in latest.items():
        if outcome == "error" or key in undone or (undo is None and hold is None):
            continue
        out.append(Effect(seq, run, step, tuple(loads(idx)), outcome != "ok", loads(undo), hold))  # None, cut
    out.sort(key=lambda e: e.seq, reverse=True)
    return out


class Recovery:
    """Recovers the unfinished runs of one journal, on the robots of this session."""

    def __init__(self, journal: Journal, program: model.Program, robots: Mapping[str, RobotPort], *,
                 observer: Observer | None = None, actions: ActionResolver = resolve_action,
                 note: Callable[[str], None] | None = None, agents: Collection[str] | None = None,
                 known: Collection[str] | None = None) -> None:
        self.journal = journal
        self.program = program
        self.robots = robots
        #: the agent instances of this process (None: any); with ``robots``, which runs are this process's
        self.agents = agents
        #: every robot instance of the project (None: not known); a run on another one is no process's
        self.known = known
        self.observer = observer
        self.actions = actions
        self.note = note or (lambda text: None)

    async def run(self, *, hold: bool = False, only: str | None = None) -> list[Recovered]:
        """Recover every unfinished run (or the held run ``only``); ``hold`` leaves them for an operator."""
        folder = self.journal.config.owners
        candidates = []
        for row in unfinished(self.journal, only):
            if only is None and not self.mine(row):
                continue
            owner = row["owner"]
            if row["status"] == "running" and owners.alive(folder, owner):
                self.note(f"run {row['id']} ({row['reactor']}) is running in process "
                          f"{owners.pid_of(folder, owner) or '?'}: not recovered here")
                continue
            candidates.append(row)
        taken = await self.journal.claim([(row["id"], row["owner"]) for row in candidates])
        runs = [row for row in candidates if row["id"] in taken]  # the others, another process recovers
        if not runs:
            return []
        self.emit("recover.start", None, None, runs=len(runs))
        calls = calls_of_unfinished(self.journal)
        done = []
        for row in runs:
            done.append(await self.recover(row, hold, calls.get(row["id"], [])))
        await self.journal.writer.flush()
        self.emit("recover.done", None, None, rolled_back=sum(r.action == "rolled back" for r in done),
                  held=sum(r.action == "held" for r in done), finished=sum(r.action == "finished" for r in done))
        return done

    def mine(self, row: Mapping[str, Any]) -> bool:
        """Whether an unfinished run is this process's to recover (if its own process is gone, ``owners``).

        Several processes of one project (a fleet, each with its own robots)
        share its journal: a run on a robot this process does not open, or of
        an agent it does not run, is another process's to recover.
        """
        if row["robot"] is not None:  # a robot the project no longer has: any process holds it (``claim``)
            return row["robot"] in self.robots or (self.known is not None and row["robot"] not in self.known)
        return row["agent"] is None or self.agents is None or row["agent"] in self.agents

    async def recover(self, row: Mapping[str, Any], hold: bool, calls: list[tuple[Any, ...]]) -> Recovered:
        run, reactor, instance = row["id"], row["reactor"], row["robot"]
        origin = loads(row["origin"])
        complete, value = finished(self.program, row, calls)
        if complete:  # every step completed: the run is done, nothing moves
            self.journal.run_ended(run, "ok", result=jsonable(value), note="finished at recovery")
            self.emit("recover.run", reactor, run, action="finished", in_doubt=[], result=jsonable(value))
            return Recovered(run, reactor, instance, "finished", origin=origin, value=value)
        todo = effects(self.journal, run, calls)
        in_doubt = tuple(e.step for e in todo if e.in_doubt)
        reason = next((e.hold for e in todo if e.in_doubt and e.undo is None and e.hold), None)
        robot = self.robots.get(instance) if instance else None
        if reason is None and instance is not None and robot is None and any(_moves(e) for e in todo):
            reason = f"its robot {instance} is not open in this run"
            if self.known is not None and instance not in self.known:
                reason = (f"its robot {instance} is no longer in bbflow.toml (renamed or removed): put the cell "
                          "right by hand, then close it with `bbflow runs recover ID --resolved`")
        if reason is None and hold:
            reason = "[journal] recovery = \"hold\""
        if reason is not None:
            self.journal.run_ended(run, "held", error={"message": f"held for an operator: {reason}",
                                                      "code": RECOVERED}, note=reason)
            self.emit("recover.run", reactor, run, action="held", in_doubt=list(in_doubt), reason=reason)
            return Recovered(run, reactor, instance, "held", in_doubt, reason, (), origin)
        if robot is not None and robot.safety != "armed" and any(_moves(e) for e in todo):
            self.note(f"recovery waits for robot {instance} to be armed")
            await _armed(robot)
        errors = []
        for effect in todo:
            failure = await self.undo(effect, reactor, robot)
            if failure is not None:
                errors.append(failure)
        error = {"message": f"{reactor} was cut off by a crash and rolled back at recovery", "code": RECOVERED}
        self.journal.run_ended(run, "failed", error=error, undo_errors=errors, note="recovered")
        self._end_children(run, error)
        self.emit("recover.run", reactor, run, action="rolled back", in_doubt=list(in_doubt),
                  undone=len(todo), undo_errors=errors)
        return Recovered(run, reactor, instance, "rolled back", in_doubt, None, tuple(errors), origin)

    def _end_children(self, root: str, error: dict[str, Any]) -> None:
        frontier = [root]
        while frontier:
            marks = ",".join("?" * len(frontier))
            frontier = [r[0] for r in self.journal.read.execute(
                f"SELECT id FROM runs WHERE parent IN ({marks}) AND status = 'running'", frontier)]
            for child in frontier:
                self.journal.run_ended(child, "failed", error=error, note="recovered")

    async def undo(self, effect: Effect, reactor: str, robot: RobotPort | None) -> dict[str, Any] | None:
        """Undo one effect with up to three attempts; the last error (as JSON) if all fail."""
        plan = effect.undo
        assert plan is not None
        error: RuntimeFailure | None = None
        for attempt in range(1, UNDO_ATTEMPTS + 1):
            self.emit("undo.start", reactor, effect.run, step=effect.step, attempt=attempt,
                      in_doubt=effect.in_doubt, **({"index": list(effect.index)} if effect.index else {}))
            try:
                await self.perform(effect, plan, attempt, robot)
            except RuntimeFailure as exc:
                error = exc
            except Exception as exc:  # an action's bug: this undo fails, recovery goes on
                error = RuntimeFailure(f"undo of {effect.step}: {str(exc) or type(exc).__name__}", "action")
            else:
                self.emit("undo.ok", reactor, effect.run, step=effect.step, attempt=attempt)
                return None
            self.emit("undo.error", reactor, effect.run, step=effect.step, attempt=attempt, error=error.to_json())
        assert error is not None
        return {**error.to_json(), "step": effect.step, "reactor": reactor, "run": effect.run,
                "attempts": UNDO_ATTEMPTS}

    async def perform(self, effect: Effect, plan: dict[str, Any], attempt: int, robot: RobotPort | None) -> None:
        journaled = Journaled(self.journal, effect.run, "undo", effect.step, effect.index, attempt)
        args = plan.get("args") or {}
        if "command" in plan:
            if robot is None:
                raise RuntimeFailure(f"undo of {effect.step}: no robot to run {plan['command']}", "state")
            command = robot.spec.commands.get(plan["command"])
            timeout = command.timeout if command is not None and command.timeout is not None else UNDO_TIMEOUT
            await journaled_call(robot, plan["command"], dict(args), timeout, journaled)
            return
        target = str(plan.get("action") or plan.get("reactor"))
        await journaled.before(f"{'action' if 'action' in plan else 'reactor'}:{target}", args)
        try:
            if "action" in plan:
                action = self.program.actions.get(target) or self.program.find("actions", target)
                await invoke(self.actions(action.target), dict(args))
            else:
                from bbflow.runtime.executor import run_reactor

                result = await run_reactor(self.program, target, dict(args), robot=robot, observer=self.observer,
                                           actions=self.actions)
                if not result.ok:
                    raise result.error or RuntimeFailure(f"{target} failed", "fail")
        except RuntimeFailure as failure:
            journaled.failed(failure)
            raise
        except Exception as exc:
            journaled.failed(RuntimeFailure(str(exc) or type(exc).__name__, "action"))
            raise
        journaled.succeeded(None)

    def emit(self, event: str, reactor: str | None, run: str | None, *, step: str | None = None,
             **fields: Any) -> None:
        if self.observer is not None:
            notify(self.observer, {"event": event, "reactor": reactor, "step": step, "run": run,
                                   "time": asyncio.get_running_loop().time(), **fields})


def finished(program: model.Program, row: Mapping[str, Any], calls: list[tuple[Any, ...]]) -> tuple[bool, Any]:
    """Whether every step of an unfinished run completed (per the journal), and then its result.

    Decided for a reactor whose body is steps and ``let``s only, every step a
    command without ``when``: each must have a completed call. Its result is
    computed from the journaled inputs and results, as the run would have.
    Any other reactor is not known to be complete: it is rolled back.
    """
    from bbflow.runtime.executor import conform_inputs  # the executor imports this package

    try:
        reactor = program.find("reactors", row["reactor"])
    except KeyError:
        return False, None
    body = reactor.body
    spec = program.robots.get(reactor.robot) if reactor.robot else None
    if spec is None or isinstance(body.end, model.Fail):
        return False, None
    results: dict[str, tuple[str | None, Any]] = {}
    for _seq, run, kind, step, idx, outcome, _undo, _hold, result in calls:
        if run == row["id"] and kind == "step" and idx == "[]":
            results[step] = (outcome, result)  # the latest attempt's
    steps = [n for n in body.nodes if isinstance(n, model.Step)]
    lets = [n for n in body.nodes if isinstance(n, model.Let)]
    if len(steps) + len(lets) != len(body.nodes) or any(
            s.when is not None or not isinstance(s.call, model.CommandCall) or results.get(s.name, (None,))[0] != "ok"
            for s in steps):
        return False, None
    try:
        scope = conform_inputs(reactor, loads(row["inputs"]) or {})
        for s in steps:
            scope[s.name] = spec.commands[s.call.command].result.conform(loads(results[s.name][1]))  # type: ignore[union-attr]
        waiting = list(lets)
        while waiting:  # each let once the names it uses are known
            ready = [n for n in waiting if all(d in scope for d in n.deps)]
            if not ready:
                return False, None
            for n in ready:
                scope[n.name] = n.expr(scope)
                waiting.remove(n)
        return True, body.end.expr(scope) if body.end is not None else None
    except Exception:  # the program changed since, or a bad record: do not guess
        return False, None


def _moves(effect: Effect) -> bool:
    return effect.undo is not None and "action" not in effect.undo


async def _armed(robot: RobotPort) -> None:
    entered = asyncio.get_running_loop().create_future()

    def changed(_old: str, new: str) -> None:
        if new == "armed" and not entered.done():
            entered.set_result(None)

    unsubscribe = robot.on_safety(changed)
    try:
        if robot.safety != "armed":
            await entered
    finally:
        unsubscribe()


def _rows(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row)}
