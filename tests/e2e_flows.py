"""Helpers of the end-to-end tests: write random reactors as ``.flow`` source, build them, run them on the sim.

``reactor_sources`` is a hypothesis strategy that writes a whole module (a
robot interface, two actions, an optional composed reactor and a random
``Main`` reactor) and returns it with the facts the invariant checks need:
each node's dependencies, which steps belong to which ``map``/``switch``, which
steps compose ``Sub`` (and with which ``tag``), and which have an undo.

``run_on_sim`` runs a built reactor on the real ``RobotProxy`` with a
``SimDriver`` that watches its own category limits, with faults, on the
virtual-time loop, and returns the result, the event log (with the robot's
safety changes interleaved as ``safety`` events) and what was left behind.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
from hypothesis import strategies as st
from runtime_fakes import receive_json

from bbflow.build import build_program, write_package
from bbflow.runtime import model
from bbflow.runtime.agent import AgentServer, CallRunner
from bbflow.runtime.bus import Bus, RobotSignals
from bbflow.runtime.clock import run_virtual
from bbflow.runtime.events import Recorder
from bbflow.runtime.executor import RunResult, run_reactor
from bbflow.runtime.faults import Fault, Faults
from bbflow.runtime.loader import load_program
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.signals import SignalCatalog
from bbflow.runtime.sim import SimDriver

ROBOT = """\
robot R {
    states idle, busy
    limit motion 1
    limit tool 2
    command m0(v: int = 0) -> int category motion undo park(v: result)
    command m1(v: int = 0) -> int category motion timeout 150ms
    command t0(v: int = 0) -> int category tool undo back(v: args.v)
    command t1(v: int = 0) -> int category tool
    command p0(v: int = 0) -> int undo back(v: result)
    command p1(v: int = 0) -> int
    command back(v: int = 0) -> int
    command park(v: int = 0) -> int category motion timeout 100ms
    command look(v: int = 0) -> int readonly
}

action bump(v: int) -> int = "e2e:bump"
action calc(v: int) -> int pure = "e2e:calc"
"""

SUB = """
reactor Sub(tag: int, v: int) -> int on R {
    step a = m0(v: v + tag)
    step b = t0(v: a) after a undo back(v: b)
    return b
}
"""

#: effectful commands: name -> (category, has a default undo)
EFFECTFUL = {
    "m0": ("motion", True),
    "m1": ("motion", False),
    "t0": ("tool", True),
    "t1": ("tool", False),
    "p0": (None, True),
    "p1": (None, False),
}
UNDO_COMMANDS = ("back", "park")
FAULTABLE = (*EFFECTFUL, *UNDO_COMMANDS, "look")
ACTIONS = ("bump", "calc")


@attrs.define
class StepInfo:
    name: str
    owner: str  # the top-level node it belongs to (itself for a top-level step)
    deps: set[str]  # names of nodes of its own body
    undo: bool  # has an undo (own or inherited)
    compose_tag: int | None = None  # a step calling Sub(tag: ...)
    mode: str = "none"  # own, inherit, irreversible or none (what its modifiers say about undo)


@attrs.define
class Generated:
    source: str
    nodes: dict[str, set[str]]  # top-level node -> top-level nodes it depends on
    steps: dict[str, StepInfo]  # every step, body steps included
    inputs: dict[str, int]
    faults: tuple[Fault, ...]
    action_faults: dict[str, int]  # action -> failing call number


class _Writer:
    """State while one reactor is drawn."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.nodes: dict[str, set[str]] = {}
        self.steps: dict[str, StepInfo] = {}
        self.optional: set[str] = set()  # int? values (guarded steps)
        self.lists: set[str] = set()  # list[int] values (maps)
        self.strings: set[str] = set()  # str values (wait_state steps): never referenced
        self.motion_users: list[str] = []  # top-level nodes using a limit-1 category
        self.ancestors: dict[str, set[str]] = {}
        self.tags = itertools.count(1)
        self.lines: list[str] = []

    def value(self, name: str) -> str:
        if name in self.lists:
            return f"len({name})"
        if name in self.optional:
            return f"({name} ?? 0)"
        return name

    def int_expr(self, candidates: list[str]) -> tuple[str, set[str]]:
        """An int expression over some earlier values (data dependencies) and the input."""
        d = self.draw
        used = sorted(d(st.sets(st.sampled_from(candidates), max_size=2))) if candidates else []
        parts = [self.value(u) for u in used] or [d(st.sampled_from(["n", "1", "n * 2"]))]
        return " + ".join(parts) + d(st.sampled_from(["", " + 1", " - 1"])), set(used)


def _modifiers(w: _Writer, name: str, candidates: list[str], *, effectful: bool, inherited: bool,
               may_guard: bool = True, may_fallback: bool = True) -> tuple[str, bool]:
    """Modifiers of one step; returns the text and whether the step has an undo."""
    d = w.draw
    mods = []
    guarded = may_guard and d(st.integers(0, 5)) == 0
    if guarded:
        if candidates and d(st.booleans()):
            expr, used = w.int_expr(candidates)
            w.nodes.setdefault(name, set()).update(used)
            w.steps[name].deps |= used
            mods.append(f"when {expr} > {d(st.integers(0, 4))}")
        else:
            mods.append(f"when n > {d(st.integers(0, 4))}")
    if d(st.integers(0, 3)) == 0:
        mods.append(f"timeout {d(st.sampled_from([50, 120, 400]))}ms")
    if d(st.integers(0, 2)) == 0:
        retry = f"retry {d(st.integers(1, 2))}"
        if d(st.booleans()):
            retry += f" backoff {d(st.sampled_from([10, 40]))}ms"
            if d(st.booleans()):
                retry += " max 50ms"
        mods.append(retry)
    if may_fallback and d(st.integers(0, 5)) == 0:
        mods.append(f"fallback {d(st.integers(0, 9))}")
    has_undo = False
    choice = "none"
    if effectful:
        choice = d(st.sampled_from(["own", "own", "own", "inherit", "inherit", "irreversible", "irreversible", "none"]))
        if choice == "inherit" and not inherited:
            choice = "own"
        if choice == "own":
            own = f"({name} ?? 0)" if guarded else name
            mods.append(f"undo {d(st.sampled_from(UNDO_COMMANDS))}(v: {own})")
            has_undo = True
        elif choice == "inherit":
            has_undo = True
        elif choice == "irreversible":
            mods.append('irreversible "it is done"')
        else:
            has_undo = inherited  # a command's default undo applies unless the step says otherwise
    if guarded:
        w.optional.add(name)
    w.steps[name].mode = choice
    return " ".join(mods), has_undo


def _call(w: _Writer, name: str, candidates: list[str], *, allow_compose: bool,
          allow_motion: bool = True, allow_wait: bool = True) -> tuple[str, bool, bool, str | None, int | None]:
    """A call for a step: (text, effectful, inherited undo, category, compose tag)."""
    d = w.draw
    kinds = ["cmd", "cmd", "cmd", "look", "action"] + (["wait"] if allow_wait else []) + (
        ["compose"] if allow_compose else [])
    kind = d(st.sampled_from(kinds))
    expr, used = w.int_expr(candidates)
    w.steps[name].deps |= used
    if kind == "look":
        return f"look(v: {expr})", False, False, None, None
    if kind == "wait":
        w.steps[name].deps -= used
        w.strings.add(name)
        return "wait_state(idle)", False, False, None, None
    if kind == "action":
        action = d(st.sampled_from(ACTIONS))
        return f"{action}(v: {expr})", action == "bump", False, None, None
    if kind == "compose":
        tag = next(w.tags)
        return f"Sub(tag: {tag}, v: {expr})", True, False, "motion-ish", tag
    names = [c for c in EFFECTFUL if allow_motion or EFFECTFUL[c][0] != "motion"]
    command = d(st.sampled_from(names))
    category, inherited = EFFECTFUL[command]
    return f"{command}(v: {expr})", True, inherited, category, None


def _order_after(w: _Writer, name: str, deps: set[str]) -> set[str]:
    """Extra `after` names so that ``name`` comes after every earlier limit-1 user."""
    closure = set(deps)
    for dep in deps:
        closure |= w.ancestors.get(dep, set())
    extra = {m for m in w.motion_users if m not in closure}
    return extra


@st.composite
def reactor_sources(draw: Any) -> Generated:
    w = _Writer(draw)
    with_sub = draw(st.booleans())
    count = draw(st.integers(1, 7))
    top: list[str] = []  # top-level nodes so far, in order
    values: list[str] = []  # those with an int (or list) value one can reference
    for i in range(count):
        kind = draw(st.sampled_from(["step"] * 6 + ["map", "switch"]))
        name = f"s{i}" if kind == "step" else ("m" if kind == "map" else "w") + str(i)
        w.nodes[name] = set()
        after = set(draw(st.sets(st.sampled_from(top), max_size=2))) if top else set()
        if kind == "step":
            w.steps[name] = StepInfo(name, name, set(), False)
            call, effectful, inherited, category, tag = _call(w, name, values, allow_compose=with_sub)
            w.steps[name].compose_tag = tag
            mods, has_undo = _modifiers(w, name, values, effectful=effectful, inherited=inherited,
                                        may_fallback=name not in w.strings)
            w.steps[name].undo = has_undo
            data = set(w.steps[name].deps)
            motion = category in ("motion", "motion-ish")
            if motion:
                after |= _order_after(w, name, after | data)
            after -= data
            text = f"    step {name} = {call}"
            if after:
                text += f" after {', '.join(sorted(after))}"
            if mods:
                text += " " + mods
            w.lines.append(text)
            w.nodes[name] = data | after
            w.steps[name].deps = data | after
            if motion:
                w.motion_users.append(name)
        elif kind == "map":
            over_expr, used = w.int_expr(values)
            # maps take no `after`: a map that may move is ordered after the earlier motion users
            # through its list expression
            extra = sorted(_order_after(w, name, used))
            first = " + ".join([over_expr, *(w.value(e) for e in extra)])
            items = ", ".join([first] + [str(k) for k in range(1, draw(st.integers(1, 3)))])
            conc = draw(st.integers(1, 3))
            w.nodes[name] = used | set(extra)
            inner_names: list[str] = []
            body = []
            for j in range(draw(st.integers(1, 2))):
                sname = f"{name}_{j}"
                w.steps[sname] = StepInfo(sname, name, set(), False)
                call, effectful, inherited, _category, _tag = _call(
                    w, sname, ["it", *inner_names], allow_compose=False, allow_motion=conc == 1, allow_wait=False)
                mods, has_undo = _modifiers(w, sname, [], effectful=effectful, inherited=inherited)
                w.steps[sname].undo = has_undo
                w.steps[sname].deps &= set(inner_names)  # `it` is no node
                if inner_names:  # one thing at a time inside an iteration
                    mods = f"after {inner_names[-1]} {mods}"
                    w.steps[sname].deps.add(inner_names[-1])
                body.append(f"        step {sname} = {call} {mods}".rstrip())
                inner_names.append(sname)
            last = inner_names[-1]
            body.append(f"        return {w.value(last)}")
            w.lines.append(f"    map {name} over [{items}] as it" + (f" concurrency {conc}" if conc > 1 else "") + " {")
            w.lines.extend(body)
            w.lines.append("    }")
            w.lists.add(name)
            w.motion_users.append(name)
        else:
            subject, used = w.int_expr(values)
            w.nodes[name] = used
            cut = draw(st.integers(0, 4))
            inner = f"{name}_a"
            w.steps[inner] = StepInfo(inner, name, set(), False)
            call, effectful, inherited, _category, _tag = _call(w, inner, [], allow_compose=False,
                                                                allow_motion=False, allow_wait=False)
            w.steps[inner].deps = set()
            mods, has_undo = _modifiers(w, inner, [], effectful=effectful, inherited=inherited)
            w.steps[inner].undo = has_undo
            ret = f"({inner} ?? 0)" if inner in w.optional else inner
            other = draw(st.sampled_from(['fail "no way"', "return 0"]))
            w.lines.append(f"    switch {name} on {subject} > {cut} {{")
            w.lines.append(f"        case true {{ step {inner} = {call} {mods} return {ret} }}")
            w.lines.append(f"        case false {{ {other} }}")
            w.lines.append("    }")
        w.ancestors[name] = set(w.nodes[name])
        for dep in w.nodes[name]:
            w.ancestors[name] |= w.ancestors.get(dep, set())
        top.append(name)
        if name not in w.strings:
            values.append(name)
    conc = draw(st.integers(1, 4))
    header = ["reactor Main(n: int) -> int on R {", f"    concurrency {conc}"]
    if draw(st.integers(0, 5)) == 0:
        header.append("    timeout 300ms")
    source = ROBOT + (SUB if with_sub else "") + "\n" + "\n".join(header + w.lines + ["    return n", "}"]) + "\n"
    flows = source[len(ROBOT):]
    flows += " park(" if "m0(" in flows else ""  # default undos
    flows += " back(" if "t0(" in flows or "p0(" in flows else ""
    used = [c for c in FAULTABLE if f"{c}(" in flows] or list(FAULTABLE)
    faults = draw(st.lists(_faults(used), max_size=4))
    action_faults = draw(st.dictionaries(st.sampled_from(ACTIONS), st.integers(1, 3), max_size=2))
    return Generated(source, w.nodes, w.steps, {"n": draw(st.integers(0, 5))},
                     tuple(attrs.evolve(f, index=k) for k, f in enumerate(faults, 1)), action_faults)


@st.composite
def _faults(draw: Any, commands: list[str]) -> Fault:
    command = draw(st.sampled_from(commands))
    call = draw(st.sampled_from([None, 1, 1, 2, 3]))
    effect = draw(st.sampled_from(["error", "error", "error", "delay", "disarm", "disarm"]))
    if effect == "error":
        return Fault(0, command, call, error="jammed")
    if effect == "delay":
        return Fault(0, command, call, delay=draw(st.sampled_from([0.2, 0.6])))
    return Fault(0, command, draw(st.integers(1, 3)), disarm=True)


# --- building -------------------------------------------------------------------------------


class Rejected(Exception):
    """The checker refused the generated program (the test skips such programs)."""


def build(source: str, files: dict[str, str] | None = None) -> model.Program:
    """Build one module ``main.flow`` (plus ``files``) with the real compiler and load it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / "src" / "main.flow").write_text(source, encoding="utf-8")
        for rel, text in (files or {}).items():
            (root / "src" / rel).write_text(text, encoding="utf-8")
        built = build_program([root / "src"], use_cache=False)
        errors = [f"{d.code} line {d.span.line}: {d.message}" for d in built.diagnostics.errors]
        if errors:
            raise Rejected("; ".join(errors))
        write_package(built.modules, root / "out")
        return load_program(root / "out")


# --- running ---------------------------------------------------------------------------------


class WatchedSim(SimDriver):
    """The simulated driver, counting commands at once per category."""

    def __init__(self, handle: Any, options: Any) -> None:
        super().__init__(handle, options)
        self.active: Counter[str | None] = Counter()
        self.peak: Counter[str | None] = Counter()
        self.calls = 0

    async def run_command(self, name: str, kwargs: dict[str, Any]) -> Any:
        category = self.handle.robot.commands[name].category
        self.active[category] += 1
        self.calls += 1
        self.peak[category] = max(self.peak[category], self.active[category])
        try:
            return await super().run_command(name, kwargs)
        finally:
            self.active[category] -= 1


def action_resolver(failing: dict[str, int]) -> Any:
    """Async actions ``e2e:bump`` (effectful) and ``e2e:calc`` (pure); ``failing[a]``: call number that raises."""
    calls: Counter[str] = Counter()

    def resolve(target: str) -> Any:
        name = target.partition(":")[2]

        async def act(v: int) -> int:
            calls[name] += 1
            await asyncio.sleep(0.005)
            if failing.get(name) == calls[name]:
                raise RuntimeError(f"{name} broke")
            return v + 1 if name == "bump" else v * 2

        return act

    return resolve


@attrs.define
class Outcome:
    result: RunResult
    events: list[dict[str, Any]]
    driver: WatchedSim
    inflight_left: int
    tasks_left: int


async def _scenario(program: model.Program, reactor: str, inputs: dict[str, Any], faults: Faults,
                    resolver: Any) -> Outcome:
    rec = Recorder()
    spec = program.find("robots", "R")
    proxy = RobotProxy(spec, "r", WatchedSim, options={"sim": {"duration": "20ms"}}, faults=faults)
    async with proxy:
        await proxy.call("arm", {})
        unsubscribe = proxy.on_safety(lambda old, new: rec({  # as bbflow run's event log reports it
            "event": "robot.safety", "reactor": None, "step": None, "run": None,
            "time": asyncio.get_running_loop().time(), "robot": "r", "from": old, "to": new}))
        result = await run_reactor(program, reactor, inputs, robot=proxy, observer=rec, actions=resolver,
                                   run_id="root")
        unsubscribe()
        inflight = len(proxy._inflight) + sum(proxy.driver.active.values())
    await asyncio.sleep(0)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    return Outcome(result, rec.events, proxy.driver, inflight, len(tasks))


def run_on_sim(program: model.Program, gen: Generated) -> Outcome:
    return run_virtual(_scenario(program, "Main", gen.inputs, Faults("<generated>", gen.faults),
                                 action_resolver(gen.action_faults)))


def failure_of(outcome: Outcome) -> RuntimeFailure | None:
    return outcome.result.error


# --- agents -----------------------------------------------------------------------------------


@attrs.define
class AgentRun:
    servers: dict[str, AgentServer]
    robots: dict[str, RobotProxy]
    events: list[dict[str, Any]]
    tasks_left: int

    def named(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] in names]


async def _serve_agents(program: model.Program, robots: dict[str, tuple[str, dict[str, Any], Faults | None]],
                        agents: dict[str, str | None], signals: list[Any], *, gap: float) -> AgentRun:
    rec = Recorder()
    bus = Bus(SignalCatalog.from_program(program), observer=rec)
    proxies = {name: RobotProxy(program.find("robots", interface), name, SimDriver, options=options, faults=faults)
               for name, (interface, options, faults) in robots.items()}
    servers: dict[str, AgentServer] = {}
    for agent, instance in agents.items():
        robot = proxies[instance] if instance is not None else None
        runner = CallRunner(program, robot=robot, observer=rec)
        servers[agent] = AgentServer(program.find("agents", agent), bus, runner=runner, robot_instance=instance)
    for proxy in proxies.values():
        await proxy.start()
    disconnects = [RobotSignals(bus, proxy).connect() for proxy in proxies.values()]
    try:
        async with asyncio.TaskGroup() as group:
            serving = [group.create_task(server.serve()) for server in servers.values()]
            for proxy in proxies.values():
                await proxy.call("arm", {})
            for signal in signals:
                receive_json(bus, signal)
                await asyncio.sleep(gap)
            await bus.wait_idle()
            for task in serving:
                task.cancel()
    finally:
        for disconnect in disconnects:
            disconnect()
        for proxy in proxies.values():
            await proxy.close()
    await asyncio.sleep(0)
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    return AgentRun(servers, proxies, rec.events, len(tasks))


def serve_agents(program: model.Program, robots: dict[str, tuple[str, dict[str, Any], Faults | None]],
                 agents: dict[str, str | None], signals: list[Any], *, gap: float = 0.0) -> AgentRun:
    """Serve ``agents`` (name -> robot instance) on the real bus with sim ``robots`` (instance -> (interface,
    driver options, faults)); feed ``signals`` (structured JSON), ``gap`` seconds apart; stop when idle."""
    return run_virtual(_serve_agents(program, robots, agents, signals, gap=gap))
