"""A bbflow project: the model of ``bbflow.toml``.

    [project]            name, source (default ".")
    [robot.NAME]         interface, driver (default "sim"), arm (default false), queue, connect_timeout,
                         [robot.NAME.sim] (the simulated driver's settings),
                         [robot.NAME.options] (free-form settings of a Python driver)
    [agent.SHORTNAME]    robot or robots (the instances an agent is bound to, when there are several)
    [run]                agents (what ``bbflow run`` starts by default)
    [journal] [bus] [serve] [supervision]

Every key and its type is in ``bbflow.project_schema.SCHEMA``. ``read_project``
reads the file and keeps every problem with where it is (``bbflow check``
reports them as BBF701); ``load_project`` refuses a file with any problem
(``ProjectError``, naming file and key). Used by both the compiler and the
runtime, so this module imports neither (nor lark nor networkx).
"""

from __future__ import annotations

import contextlib
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from bbflow.project_schema import SIM_DRIVER, KeyPath, Problem, key_lines, locate, suggest, toml_lines, validate
from bbflow.runtime.defaults import DEFAULT_CONNECT_TIMEOUT, DEFAULT_QUEUE
from bbflow.runtime.durations import parse_duration

PROJECT_FILE = "bbflow.toml"


class ProjectError(Exception):
    """A ``bbflow.toml`` that cannot be read or does not describe a project."""


@attrs.frozen(slots=True)
class RobotConfig:
    interface: str  # dotted: "cell.arm.Arm"
    driver: str = SIM_DRIVER  # "sim", "package.module:Class" or an installed driver's name
    arm: bool = False  # arm a real robot before work starts
    sim: dict[str, Any] = attrs.Factory(dict)  # options of the simulated driver, as written
    options: dict[str, Any] = attrs.Factory(dict)  # a Python driver's own settings, as written
    queue: int = DEFAULT_QUEUE  # runs that may wait while another holds the robot
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds the driver's connect may take

    @property
    def is_sim(self) -> bool:
        return self.driver == SIM_DRIVER


@attrs.frozen(slots=True)
class AgentConfig:
    robot: str | None = None  # the robot instance this agent commands
    robots: tuple[str, ...] = ()  # or: one agent instance per robot instance listed


@attrs.frozen(slots=True)
class ServeConfig:
    """``[serve]``: where the control plane listens (``bbflow run --serve`` overrides it)."""

    listen: str | None = None  # "[HOST:]PORT"
    token_env: str | None = None  # the environment variable holding the bearer token


@attrs.frozen(slots=True)
class SupervisionConfig:
    """``[supervision]``: how often a child (an agent, a robot connection) may be restarted."""

    strategy: str = "one_for_one"  # one of project_schema.STRATEGIES
    max_restarts: int = 3
    within: float = 5.0  # seconds


@attrs.frozen(slots=True)
class BusConfig:
    """The ``[bus]`` table: which bus joins this project's processes (docs/fleet.md)."""

    kind: str = "local"  # "local" (in-process only) or "zenoh"
    prefix: str | None = None  # key prefix; None: "bbflow/<project name>"
    connect: tuple[str, ...] | None = None  # Zenoh endpoints to reach; None: as the Zenoh config says
    listen: tuple[str, ...] | None = None  # Zenoh endpoints to listen on; None: as the Zenoh config says
    mode: str | None = None  # "peer" or "client"; None: as the Zenoh config says (peer by default)
    config: Path | None = None  # a Zenoh JSON5 configuration file (TLS, access control, routers)
    catch_up: str = "0s"  # how far back a starting process asks for what it missed


@attrs.frozen(slots=True)
class Project:
    name: str
    root: Path  # the folder holding bbflow.toml
    source_dir: Path  # where the .flow files are
    robots: dict[str, RobotConfig] = attrs.Factory(dict)  # by instance name
    agents: dict[str, AgentConfig] = attrs.Factory(dict)  # by agent short name ("Picker")
    run_agents: tuple[str, ...] = ()  # dotted agent names ("cell.picker.Picker")
    #: the file as parsed (validated against the schema): tables the model above does not hold yet
    data: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    serve: ServeConfig = ServeConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    bus: BusConfig = BusConfig()

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE


@attrs.frozen(slots=True)
class ProjectFile:
    """``bbflow.toml`` as read: the project (what of it could be read) and every problem, with where it is."""

    file: Path
    text: str
    project: Project
    problems: tuple[Problem, ...]
    lines: dict[KeyPath, tuple[int, int]] = attrs.field(eq=False, repr=False)

    def where(self, path: KeyPath) -> tuple[int, int]:
        """The line and column of a key (or of the nearest enclosing key written)."""
        return locate(path, self.lines)

    def message(self, problem: Problem) -> str:
        return f"{self.file}: {problem.key + ': ' if problem.path else ''}{problem.message}"


def find_project(path: Path | str) -> Path | None:
    """The nearest folder at or above ``path`` (a file or folder) holding a bbflow.toml."""
    here = Path(path).resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return None


def load_project(path: Path | str) -> Project:
    """Read the project at ``path`` (a project folder or its bbflow.toml); ``ProjectError`` on any problem."""
    read = read_project(path)
    if read.problems:
        raise ProjectError(read.message(read.problems[0]))
    return read.project


def read_project(path: Path | str) -> ProjectFile:
    """Read the project at ``path``, keeping every problem; ``ProjectError`` only if it cannot be read."""
    path = Path(path)
    file = path if path.name == PROJECT_FILE and not path.is_dir() else path / PROJECT_FILE
    try:
        text = file.read_text(encoding="utf-8-sig")  # a byte order mark (some editors write one) is not TOML
    except OSError as e:
        raise ProjectError(f"{file}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ProjectError(f"{file}: not UTF-8 text: {e.reason}") from e
    root = file.parent.resolve()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        at = re.search(r"line (\d+), column (\d+)", str(e))
        lines: dict[KeyPath, tuple[int, int]] = {(): (int(at[1]), int(at[2]))} if at else {}
        problem = Problem((), f"invalid TOML: {e}")
        return ProjectFile(file, text, _project_table_alone(root, text), (problem,), lines)
    except RecursionError:  # tomllib reads a nested array or inline table by recursion
        problem = Problem((), "arrays or inline tables nested too deeply to be read")
        return ProjectFile(file, text, Project(root.name, root, root), (problem,), {(): (_most_nested(text), 1)})
    problems = validate(data)
    project = _build(root, data, problems)
    lines = key_lines(text)
    ordered = sorted(problems, key=lambda p: locate(p.path, lines))
    return ProjectFile(file, text, project, tuple(ordered), lines)


def _project_table_alone(root: Path, text: str) -> Project:
    """The name and source folder of a file that is not TOML, from the lines of its ``[project]`` table
    that are TOML alone: the program is then checked with its modules named as they are, not with a
    BBF103 at every import for the one mistake in the file."""
    lines = toml_lines(text)
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"\s*\[\s*project\s*\]\s*(#.*)?", line)), None)
    table: dict[str, Any] = {}
    for line in lines[start + 1:] if start is not None else []:
        if line.lstrip().startswith("["):  # the next table
            break
        with contextlib.suppress(tomllib.TOMLDecodeError, RecursionError):
            table.update(tomllib.loads(line))
    data = {"project": table}
    return _build(root, data, validate(data))  # its problems wait: the file is to be made TOML first


def _most_nested(text: str) -> int:
    """The line with the most opening brackets: where a file too deeply nested to be read most likely is."""
    counts = [line.count("[") + line.count("{") for line in toml_lines(text)]
    return counts.index(max(counts)) + 1


def _build(root: Path, data: dict[str, Any], problems: list[Problem]) -> Project:
    """The model of a validated file: what is valid of it (``problems`` says what was not), plus the
    problems only a reading of several keys together finds (a folder or robot that does not exist)."""
    bad = {p.path for p in problems}

    def good(value: Any, path: KeyPath, kind: type, default: Any) -> Any:
        return value if isinstance(value, kind) and path not in bad else default

    proj = good(data.get("project"), ("project",), dict, {})
    name = good(proj.get("name"), ("project", "name"), str, root.name)
    source = good(proj.get("source"), ("project", "source"), str, ".")
    source_dir = _source_dir(root, source, problems)
    robots = {}
    for inst, cfg in good(data.get("robot"), ("robot",), dict, {}).items():
        if not isinstance(cfg, dict):
            continue
        where = ("robot", inst)
        connect_timeout = good(cfg.get("connect_timeout"), (*where, "connect_timeout"), str, None)
        robots[inst] = RobotConfig(
            good(cfg.get("interface"), (*where, "interface"), str, ""), good(cfg.get("driver"), (*where, "driver"), str, SIM_DRIVER),
            good(cfg.get("arm"), (*where, "arm"), bool, False), good(cfg.get("sim"), (*where, "sim"), dict, {}),
            good(cfg.get("options"), (*where, "options"), dict, {}),
            good(cfg.get("queue"), (*where, "queue"), int, DEFAULT_QUEUE),
            DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else parse_duration(connect_timeout))
    agents = {}
    for short, cfg in good(data.get("agent"), ("agent",), dict, {}).items():
        if not isinstance(cfg, dict):
            continue
        robot = good(cfg.get("robot"), ("agent", short, "robot"), str, None)
        named: list[tuple[KeyPath, Any]] = [(("robot",), robot)] if robot is not None else []
        named += [(("robots", i), r) for i, r in enumerate(good(cfg.get("robots"), ("agent", short, "robots"), list, []))]
        for key, instance in named:
            if instance not in robots and isinstance(instance, str):
                known = ", ".join(sorted(robots)) or "none configured"
                problems.append(Problem(("agent", short, *key), f"no robot instance {instance!r} (robots: {known})",
                                        suggest(instance, robots)))
        listed = tuple(r for key, r in named if key[0] == "robots" and r in robots)
        agents[short] = AgentConfig(robot if robot in robots else None, listed)
    run = good(data.get("run"), ("run",), dict, {})
    run_agents = tuple(good(run.get("agents"), ("run", "agents"), list, []))
    serve = good(data.get("serve"), ("serve",), dict, {})
    supervising = good(data.get("supervision"), ("supervision",), dict, {})
    within = parse_duration(good(supervising.get("within"), ("supervision", "within"), str, "5s"))
    if within <= 0:
        problems.append(Problem(("supervision", "within"), "expected a duration longer than 0s"))
        within = 5.0
    return Project(name, root, source_dir, robots, agents, run_agents, data,
                   ServeConfig(good(serve.get("listen"), ("serve", "listen"), str, None),
                               good(serve.get("token_env"), ("serve", "token_env"), str, None)),
                   SupervisionConfig(good(supervising.get("strategy"), ("supervision", "strategy"), str, "one_for_one"),
                                     good(supervising.get("max_restarts"), ("supervision", "max_restarts"), int, 3),
                                     within),
                   _bus(root, good, data, problems))


def _bus(root: Path, good: Any, data: dict[str, Any], problems: list[Problem]) -> BusConfig:
    bus = good(data.get("bus"), ("bus",), dict, {})

    def endpoints(key: str) -> tuple[str, ...] | None:
        value = good(bus.get(key), ("bus", key), list, None)
        return tuple(value) if value is not None else None

    config = good(bus.get("config"), ("bus", "config"), str, None)
    if config is not None and not _is_file(root / config):
        problems.append(Problem(("bus", "config"), f"no file {config!r} beside bbflow.toml"))
    return BusConfig(good(bus.get("kind"), ("bus", "kind"), str, "local"), good(bus.get("prefix"), ("bus", "prefix"), str, None),
                     endpoints("connect"), endpoints("listen"), good(bus.get("mode"), ("bus", "mode"), str, None),
                     root / config if config is not None else None,
                     good(bus.get("catch_up"), ("bus", "catch_up"), str, "0s"))


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the system cannot look up (too long, a loop of links)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _source_dir(root: Path, source: str, problems: list[Problem]) -> Path:
    """The project's source folder; a problem (and the project folder instead) unless it is a folder
    inside the project: a source root elsewhere (``source = "/"``) would have every check walk it."""
    where = ("project", "source")
    try:
        folder = (root / source).resolve()
        found = folder.is_dir()
    except (OSError, RuntimeError) as e:  # a name longer than the system allows; a loop of links (RuntimeError)
        why = "a loop of symbolic links" if isinstance(e, RuntimeError) else e.strerror or str(e)
        problems.append(Problem(where, f"folder {source!r} cannot be read: {why}"))
        return root
    if folder != root and root not in folder.parents:
        problems.append(Problem(where, f"folder {source!r} is outside the project ({folder} is not inside {root})"))
        return root
    if not found:
        problems.append(Problem(where, f"folder {source!r} does not exist"))
    return folder


@contextlib.contextmanager
def importable(root: Path) -> Iterator[None]:
    """Make the project's own Python code (drivers, actions) importable while inside.

    A project keeps ``driver = "mydriver:Arm"`` and ``action ... = "cell.vision:locate"``
    beside its ``bbflow.toml``. ``python -m bbflow`` would find them through the
    current folder, the ``bbflow`` command would not: the project's folder goes
    first on ``sys.path`` for the duration, whatever folder bbflow runs from.
    """
    folder = str(Path(root).resolve())
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
