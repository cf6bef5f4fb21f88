"""What ``bbflow run`` will do, decided and checked before anything moves.

``plan_run`` turns a loaded ``Program``, the project's ``bbflow.toml`` and the
command-line options into a ``RunPlan``: which reactor (with its inputs
conformed to the parameter types) or which agents run, which robot instance
each is bound to, which driver each robot gets, whether it is armed before
work starts, and which faults each robot is given. Every mistake is a
``UsageError`` (exit status 2) whose message says what to change; nothing
here starts a driver.

Binding rules: a reactor or agent ``on Arm`` is bound to the project's robot
instance whose ``interface`` is ``Arm``. With several such instances an agent
names its own in ``[agent.NAME] robot``, or runs once per robot instance listed
in ``[agent.NAME] robots``; otherwise ``--robot NAME`` picks one (for the
reactor, and for agents that name none).

Process topology (docs/fleet.md): ``--robot NAME`` (repeatable) limits the
process to those robot instances and the agents bound to them; the agents of
other robots are left to other processes and their robots are not opened,
and agents bound to no robot (coordinators) run only when named with
``--agent``. ``bus`` is the bus this process joins (``[bus]`` with
``--bus-listen``/``--bus-connect`` over it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from bbflow.project import SIM_DRIVER, Project, RobotConfig, SupervisionConfig
from bbflow.runtime import model
from bbflow.runtime.defaults import DEFAULT_QUEUE
from bbflow.runtime.door import loads_strict
from bbflow.runtime.executor import conform_inputs
from bbflow.runtime.faults import Faults, FaultsError, load_faults
from bbflow.runtime.fleet.settings import BusSettings, BusSettingsError, bus_settings
from bbflow.runtime.ports import RuntimeFailure


class UsageError(Exception):
    """A run that cannot start as asked (exit status 2); nothing has moved."""


@attrs.frozen
class RunOptions:
    """The options of ``bbflow run`` as given (``arm``: None unless --arm or --no-arm)."""

    reactor: str | None = None
    inputs: tuple[str, ...] = ()  # "name=JSON"
    agents: tuple[str, ...] = ()
    robots: tuple[str, ...] = ()  # --robot, repeatable
    driver: str | None = None
    faults: str | None = None
    events: str | None = None
    until_idle: bool = False
    arm: bool | None = None
    virtual_time: bool = False  # simulated robots only
    bus_listen: tuple[str, ...] = ()
    bus_connect: tuple[str, ...] = ()
    journal: bool = True  # --no-journal: False
    #: given from Python (``bbflow.testing``): messages name its keyword arguments (``robot="left"``, inputs),
    #: not the flags of ``bbflow run``
    from_python: bool = False


@attrs.frozen
class RobotPlan:
    """One robot instance to open: its interface, configuration, driver and faults."""

    instance: str
    spec: model.Robot
    table: Mapping[str, Any]  # the [robot.INSTANCE] table, as the driver's options
    driver: str
    arm: bool  # arm before work starts
    faults: Faults | None = None
    queue: int = DEFAULT_QUEUE  # runs that may wait for the robot ([robot.NAME] queue)

    @property
    def simulated(self) -> bool:
        return self.driver == SIM_DRIVER


@attrs.frozen
class AgentPlan:
    spec: model.Agent
    robot: str | None  # the instance it is bound to


@attrs.frozen
class RunPlan:
    """Either ``reactor`` (with ``inputs`` and ``reactor_robot``) or ``agents`` is set."""

    program: model.Program
    robots: tuple[RobotPlan, ...]
    reactor: model.Reactor | None = None
    inputs: Mapping[str, Any] = attrs.Factory(dict)
    reactor_robot: str | None = None
    agents: tuple[AgentPlan, ...] = ()
    until_idle: bool = False
    supervision: SupervisionConfig = attrs.Factory(SupervisionConfig)
    bus: BusSettings = attrs.Factory(BusSettings)
    #: every robot instance of the project (None: not known): a run cut off on another one is held at start
    project_robots: frozenset[str] | None = None

    @property
    def reads_signals(self) -> bool:
        """Whether signals are read from the input: agents run, or the reactor waits for one."""
        return bool(self.agents) or (self.reactor is not None and waits_for_signals(self.program, self.reactor))


def plan_run(program: model.Program, project: Project, options: RunOptions) -> RunPlan:
    """Decide and check everything ``bbflow run`` will do; raises ``UsageError``."""
    _check_interfaces(program, project)
    for name in options.robots:
        if name not in project.robots:
            known = ", ".join(sorted(project.robots)) or "none configured"
            raise UsageError(f"{_robot_option(options.from_python, name)}: no robot instance {name!r} (robots: {known})")
    if options.reactor is not None:
        if options.agents:
            raise UsageError("give --reactor or --agent, not both (with --reactor only that reactor runs)")
        reactor = _find(program, "reactors", options.reactor, "reactor")
        inputs = _inputs(reactor, options.inputs, "inputs" if options.from_python else "--input")
        instance = _bind(project, reactor.robot, f"reactor {reactor.name}", options.robots, None, options.from_python)
        robots = _robots(program, project, options, [instance] if instance else [])
        return RunPlan(program, robots, reactor=reactor, inputs=inputs, reactor_robot=instance,
                       bus=_bus(project, options), project_robots=frozenset(project.robots))
    if options.inputs:
        raise UsageError("--input needs --reactor NAME (the reactor whose parameters they are)")
    names = options.agents or project.run_agents
    if not names:
        raise UsageError(
            "nothing to run: give --reactor NAME or --agent NAME, or list agents in [run] agents of "
            f"{project.file}"
        )
    specs = {spec.qualname: spec for spec in (_find(program, "agents", name, "agent") for name in names)}
    agents = []
    for spec in specs.values():
        configured = project.agents.get(spec.name)
        if configured is not None and configured.robots:
            if spec.robot is None:
                raise UsageError(f"agent {spec.name} commands no robot: [agent.{spec.name}] robots does not apply "
                                 f"(a coordinator runs once)")
            for instance in configured.robots:  # one agent instance per robot instance (of this process's)
                if not options.robots or instance in options.robots:
                    agents.append(AgentPlan(spec, _bind(project, spec.robot, f"agent {spec.name}", (), instance,
                                                        options.from_python)))
            continue
        own = configured.robot if configured is not None else None
        if options.robots and not _for_robots(project, spec, own, options):
            continue
        agents.append(AgentPlan(spec, _bind(project, spec.robot, f"agent {spec.name}", options.robots, own,
                                            options.from_python)))
    if not agents:
        raise UsageError(f"no agent of {', '.join(names)} runs on robot {', '.join(options.robots)}: "
                         "name the agents of this process with --agent")
    if len({(a.spec.name, a.robot) for a in agents}) != len(agents):
        raise UsageError(f"two agents share a name: {', '.join(a.spec.qualname for a in agents)}")
    used = [a.robot for a in agents if a.robot is not None]
    robots = _robots(program, project, options, list(dict.fromkeys(used)))
    return RunPlan(program, robots, agents=tuple(agents), until_idle=options.until_idle,
                   supervision=project.supervision, bus=_bus(project, options), project_robots=frozenset(project.robots))


def _bus(project: Project, options: RunOptions) -> BusSettings:
    """The bus this process joins: the agents' way to the others, and where a process claims its robots (a reactor
    run too: it claims its robot, and is refused one another process on the bus runs)."""
    try:
        bus = bus_settings(project, listen=options.bus_listen, connect=options.bus_connect,
                           claims_only=options.reactor is not None)
    except BusSettingsError as exc:
        raise UsageError(str(exc)) from None
    if bus.networked and options.virtual_time:
        if options.reactor is None:
            raise UsageError("--virtual-time runs on a clock of its own, which other processes on the bus do not "
                             'share: use it with kind = "local"')
        if options.bus_listen or options.bus_connect:
            raise UsageError("--bus-listen and --bus-connect: a reactor run with --virtual-time moves simulated "
                             "robots only, and joins no bus")
        return BusSettings()  # simulated robots on a clock of their own: no robot of the fleet moves
    return bus


def waits_for_signals(program: model.Program, reactor: model.Reactor) -> bool:
    """Whether ``reactor`` (or a reactor it composes) has a ``wait_signal`` step."""
    seen: set[str] = set()

    def body(b: model.Body) -> bool:
        for node in b.nodes:
            if isinstance(node, model.Step):
                if isinstance(node.call, model.WaitSignal):
                    return True
                if isinstance(node.call, model.ReactorCall) and node.call.reactor not in seen:
                    seen.add(node.call.reactor)
                    if body(program.find("reactors", node.call.reactor).body):
                        return True
            elif isinstance(node, model.Switch):
                if any(body(c.body) for c in node.cases) or (node.default is not None and body(node.default)):
                    return True
            elif isinstance(node, model.Map) and body(node.body):
                return True
        return False

    return body(reactor.body)


def parse_inputs(pairs: Sequence[str]) -> dict[str, Any]:
    """``["pick={...}", "n=3"]`` as a dict of JSON values; raises ``UsageError``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--input {pair!r}: expected NAME=JSON, e.g. --input 'pick={{\"x\": 0.2}}'")
        if name in out:
            raise UsageError(f"--input {name}: given twice")
        try:
            out[name] = loads_strict(text)
        except ValueError as exc:
            hint = f' (a string is written in quotes: {name}=\'"{text}"\')' if text and text[0] not in '{["-0123456789tfn' else ""
            raise UsageError(f"--input {name}: {exc}{hint}") from None
    return out


# --- helpers ------------------------------------------------------------------------


def _inputs(reactor: model.Reactor, pairs: Sequence[str], given: str) -> dict[str, Any]:
    """The reactor's inputs from ``pairs``; ``given``: how the user gave them (``--input``), for messages."""
    try:
        return conform_inputs(reactor, parse_inputs(pairs))
    except RuntimeFailure as failure:
        declared = ", ".join(f"{p.name}: {p.type}" for p in reactor.params) or "none"
        raise UsageError(f"{given}: {failure.message} (parameters: {declared})") from None


def _robot_option(from_python: bool, name: str) -> str:
    """How robot instance ``name`` was chosen for this process: ``--robot NAME``, or ``robot="NAME"``."""
    return f"robot={name!r}" if from_python else f"--robot {name}"


def _find(program: model.Program, table: str, name: str, what: str) -> Any:
    try:
        return program.find(table, name)
    except KeyError as exc:
        known = ", ".join(sorted(v.name for v in getattr(program, table).values())) or "none"
        raise UsageError(f"{exc.args[0]} ({what}s in the project: {known})") from None


def _check_interfaces(program: model.Program, project: Project) -> None:
    for instance, config in project.robots.items():
        if config.interface not in program.robots:
            known = ", ".join(sorted(program.robots)) or "none"
            raise UsageError(
                f"{project.file}: robot.{instance}.interface: no robot interface {config.interface!r} "
                f"in the program (interfaces: {known})"
            )


def _for_robots(project: Project, spec: model.Agent, own: str | None, options: RunOptions) -> bool:
    """Whether an agent belongs in a process limited to ``--robot`` instances."""
    if spec.robot is None:  # a coordinator: only where it is asked for
        return bool(options.agents)
    if own is not None:
        return own in options.robots
    return any(project.robots[r].interface == spec.robot for r in options.robots)


def _bind(project: Project, interface: str | None, who: str, robots: Sequence[str], own: str | None,
          from_python: bool) -> str | None:
    """The robot instance ``who`` (running on ``interface``) is bound to."""
    if interface is None:
        return None
    candidates = sorted(i for i, c in project.robots.items() if c.interface == interface)
    short = interface.rsplit(".", 1)[-1]
    picked = [r for r in robots if r in candidates]
    chosen = picked[0] if len(picked) == 1 else (robots[0] if len(robots) == 1 else None)
    if len(picked) > 1 and own is None:
        raise UsageError(f"{who} runs on {short}, and --robot names several of them ({', '.join(picked)}): "
                         "one instance of an agent per process")
    for name, how in ((own, f"[agent] robot = {own!r}"), (chosen, _robot_option(from_python, str(chosen)))):
        if name is None:
            continue
        if name not in project.robots:
            known = ", ".join(sorted(project.robots)) or "none configured"
            raise UsageError(f"{who}: {how}: no robot instance {name!r} (robots: {known})")
        if name not in candidates:
            raise UsageError(
                f"{who} runs on {short}, but robot {name!r} is a {project.robots[name].interface}"
                f" ({how}; {short} robots: {', '.join(candidates) or 'none'})"
            )
        return name
    if not candidates:
        raise UsageError(
            f"{who} runs on {short}, and no robot in {project.file} implements it: add "
            f'[robot.NAME] with interface = "{interface}"'
        )
    if len(candidates) > 1:
        raise UsageError(
            f"{who} runs on {short}, and several robots implement it ({', '.join(candidates)}): "
            f"choose one with {'robot=NAME' if from_python else '--robot NAME'}"
            + (" or [agent.NAME] robot = ..." if who.startswith("agent") else "")
        )
    return candidates[0]


def _robots(program: model.Program, project: Project, options: RunOptions, instances: list[str]) -> tuple[RobotPlan, ...]:
    faults = _load_faults(options.faults)
    plans = []
    for instance in instances:
        config = project.robots[instance]
        spec = program.robots[config.interface]
        driver = options.driver if options.driver is not None else config.driver
        plans.append(RobotPlan(instance, spec, robot_table(config, project), driver, _arms(driver, config, options.arm),
                               _faults_for(faults, spec), config.queue))
    if faults is not None:
        _check_faults_used(faults, plans)
    if options.virtual_time:
        for plan in plans:
            if not plan.simulated:
                raise UsageError(
                    f"--virtual-time runs simulated robots only, and robot {plan.instance} has driver "
                    f"{plan.driver!r} (add --driver sim to simulate it)"
                )
    return tuple(plans)


def robot_table(config: RobotConfig, project: Project) -> dict[str, Any]:
    """What a robot's driver is given as its options: its ``[robot.NAME]`` table, and the project's folder."""
    return {"interface": config.interface, "driver": config.driver, "arm": config.arm, "sim": config.sim,
            "options": config.options, "connect_timeout": config.connect_timeout, "project_root": str(project.root)}


def _arms(driver: str, config: RobotConfig, arm: bool | None) -> bool:
    """A simulated robot is armed unless --no-arm; a real one only with --arm or ``arm = true``."""
    if arm is not None:
        return arm
    return driver == SIM_DRIVER or config.arm


def _load_faults(path: str | None) -> Faults | None:
    if path is None:
        return None
    try:
        return load_faults(path)
    except FaultsError as exc:
        raise UsageError(str(exc)) from None


def _faults_for(faults: Faults | None, spec: model.Robot) -> Faults | None:
    """The faults that concern ``spec``'s commands (a faults file names commands, not robots)."""
    if faults is None:
        return None
    mine = tuple(f for f in faults.faults if f.command in spec.commands)
    return Faults(faults.source, mine) if mine else None


def _check_faults_used(faults: Faults, plans: list[RobotPlan]) -> None:
    """Every fault must name a command of a robot that runs; else say so (a typo, most likely)."""
    if not plans:
        raise UsageError(f"{faults.source}: no robot is used by this run, so no fault can apply")
    for fault in faults.faults:
        if not any(fault.command in p.spec.commands for p in plans):
            # validate against the first robot for its message and "did you mean"
            try:
                Faults(faults.source, (fault,)).validate(plans[0].spec)
            except FaultsError as exc:
                raise UsageError(str(exc)) from None
