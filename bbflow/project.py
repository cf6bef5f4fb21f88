"""A bbflow project: the model of ``bbflow.toml``.

    [project]            name, source (default ".")
    [robot.NAME]         interface, driver (default "sim"), arm (default false),
                         [robot.NAME.sim] (the simulated driver's settings),
                         [robot.NAME.options] (free-form settings of a Python driver)
    [agent.SHORTNAME]    robot (the instance an agent is bound to, when there are several)
    [run]                agents (what ``bbflow run`` starts by default)

Used by both the compiler and the runtime, so this module imports neither
(nor lark nor networkx). A bad file raises ``ProjectError`` whose message
names the file and the key; unknown keys are errors too, so that a typo such as
``interfce`` is caught rather than silently ignored.
"""

from __future__ import annotations

import contextlib
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

PROJECT_FILE = "bbflow.toml"
SIM_DRIVER = "sim"


class ProjectError(Exception):
    """A ``bbflow.toml`` that cannot be read or does not describe a project."""


@attrs.frozen(slots=True)
class RobotConfig:
    interface: str  # dotted: "cell.arm.Arm"
    driver: str = SIM_DRIVER  # "sim" or "package.module:Class"
    arm: bool = False  # arm a real robot before work starts
    sim: dict[str, Any] = attrs.Factory(dict)  # options of the simulated driver, as written
    options: dict[str, Any] = attrs.Factory(dict)  # a Python driver's own settings, as written

    @property
    def is_sim(self) -> bool:
        return self.driver == SIM_DRIVER


@attrs.frozen(slots=True)
class AgentConfig:
    robot: str | None = None  # the robot instance this agent commands


@attrs.frozen(slots=True)
class Project:
    name: str
    root: Path  # the folder holding bbflow.toml
    source_dir: Path  # where the .flow files are
    robots: dict[str, RobotConfig] = attrs.Factory(dict)  # by instance name
    agents: dict[str, AgentConfig] = attrs.Factory(dict)  # by agent short name ("Picker")
    run_agents: tuple[str, ...] = ()  # dotted agent names ("cell.picker.Picker")

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE


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
    """Read the project at ``path``: a project folder or its bbflow.toml."""
    path = Path(path)
    file = path if path.name == PROJECT_FILE and not path.is_dir() else path / PROJECT_FILE
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProjectError(f"{file}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ProjectError(f"{file}: not UTF-8 text: {e.reason}") from e
    except tomllib.TOMLDecodeError as e:
        raise ProjectError(f"{file}: invalid TOML: {e}") from e
    return _Reader(file).project(data)


@attrs.define
class _Reader:
    """Validates the parsed TOML table by table; every error names file and key."""

    file: Path

    def fail(self, key: str, problem: str) -> ProjectError:
        return ProjectError(f"{self.file}: {key}: {problem}")

    def table(self, value: Any, key: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, found {_kind(value)}")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(f"{key}.{k}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return value

    def string(self, table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if value is None:
            raise self.fail(f"{where}.{key}", "missing (required)")
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", f"expected a non-empty string, found {_kind(value)}")
        return value

    def project(self, data: dict[str, Any]) -> Project:
        self.table(data, "bbflow.toml", {"project", "robot", "agent", "run"})
        root = self.file.parent.resolve()
        proj = self.table(data.get("project", {}), "project", {"name", "source"})
        name = self.string(proj, "name", "project", default=root.name)
        source = self.string(proj, "source", "project", default=".")
        source_dir = (root / source).resolve()
        if not source_dir.is_dir():
            raise self.fail("project.source", f"folder {source!r} does not exist")
        robots = {
            inst: self.robot(cfg, f"robot.{inst}")
            for inst, cfg in self.table(data.get("robot", {}), "robot").items()
        }
        agents = {
            short: self.agent(cfg, f"agent.{short}", robots)
            for short, cfg in self.table(data.get("agent", {}), "agent").items()
        }
        run = self.table(data.get("run", {}), "run", {"agents"})
        run_agents = run.get("agents", [])
        if not isinstance(run_agents, list) or not all(isinstance(a, str) and a for a in run_agents):
            raise self.fail("run.agents", "expected a list of agent names (strings)")
        return Project(name, root, source_dir, robots, agents, tuple(run_agents))

    def robot(self, value: Any, key: str) -> RobotConfig:
        cfg = self.table(value, key, {"interface", "driver", "arm", "sim", "options"})
        arm = cfg.get("arm", False)
        if not isinstance(arm, bool):
            raise self.fail(f"{key}.arm", f"expected true or false, found {_kind(arm)}")
        driver = self.string(cfg, "driver", key, default=SIM_DRIVER)
        if driver != SIM_DRIVER and (driver.count(":") != 1 or not all(driver.split(":"))):
            raise self.fail(f"{key}.driver", f'expected "sim" or "package.module:Class", found {driver!r}')
        sim = self.table(cfg.get("sim", {}), f"{key}.sim")
        options = self.table(cfg.get("options", {}), f"{key}.options")
        return RobotConfig(self.string(cfg, "interface", key), driver, arm, sim, options)

    def agent(self, value: Any, key: str, robots: dict[str, RobotConfig]) -> AgentConfig:
        cfg = self.table(value, key, {"robot"})
        if "robot" not in cfg:
            return AgentConfig()
        robot = self.string(cfg, "robot", key)
        if robot not in robots:
            known = ", ".join(sorted(robots)) or "none configured"
            raise self.fail(f"{key}.robot", f"no robot instance {robot!r} (robots: {known})")
        return AgentConfig(robot)


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


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
