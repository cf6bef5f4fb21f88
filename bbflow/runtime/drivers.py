"""Finding drivers: ``"sim"``, ``"package.module:Class"``, or a name in the ``bbflow.drivers`` entry points.

A package makes its driver available by name with, in its ``pyproject.toml``::

    [project.entry-points."bbflow.drivers"]
    ur5 = "acme_robots.ur5:UR5Driver"

and a project then says ``driver = "ur5"``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Mapping
from typing import Any

from bbflow.project_schema import DRIVER_ENTRY_POINTS, SIM_DRIVER
from bbflow.runtime import model
from bbflow.runtime.defaults import DEFAULT_CONNECT_TIMEOUT
from bbflow.runtime.driver import DriverError, DriverFactory
from bbflow.runtime.durations import parse_duration
from bbflow.runtime.faults import Faults
from bbflow.runtime.proxy import RobotProxy
from bbflow.runtime.sim import SimDriver

ENTRY_POINT_GROUP = DRIVER_ENTRY_POINTS
SIM = SIM_DRIVER


def load_driver(name: str) -> DriverFactory:
    """The driver class (or factory) that ``name`` designates. Raises ``DriverError``."""
    if name == SIM:
        return SimDriver
    if ":" in name:
        found = _import(name)
    else:
        found = _entry_point(name)
    if not callable(found):
        raise DriverError(f"driver {name!r} is not a class: {found!r}")
    return found


def open_robot(
    instance: str,
    spec: model.Robot,
    table: Mapping[str, Any],
    *,
    driver: str | None = None,
    faults: Faults | None = None,
) -> RobotProxy:
    """A not yet started proxy for robot ``instance`` configured by its ``[robot.INSTANCE]`` table.

    ``driver`` overrides the table's ``driver`` (``--driver sim``). The driver
    receives the whole table as its options. ``connect_timeout`` (seconds, or a
    duration such as ``"30s"``) bounds the driver's ``connect`` hook.
    """
    name = driver if driver is not None else table.get("driver", SIM)
    if not isinstance(name, str) or not name:
        raise DriverError(f"robot.{instance}.driver: expected a driver name, got {name!r}")
    return RobotProxy(spec, instance, load_driver(name), options=dict(table), faults=faults,
                      connect_timeout=_seconds(table.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                                               f"robot.{instance}.connect_timeout"))


def _seconds(value: Any, key: str) -> float:
    """A duration of a robot's table, as TOML gives it (``"30s"``) or as seconds; ``DriverError`` otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise DriverError(f"{key}: {exc}") from None
    if seconds <= 0:
        raise DriverError(f"{key}: expected a duration above 0, got {value!r}")
    return seconds


def _import(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise DriverError(f"driver {ref!r}: expected \"package.module:Class\"")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverError(f"driver {ref!r}: cannot import {module_name}: {exc}") from exc
    except Exception as exc:  # a syntax error in it, a vendor library that raises as it is imported
        raise DriverError(f"driver {ref!r}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    found: Any = module
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise DriverError(f"driver {ref!r}: {module_name} has no {attr}") from None
    return found


def _entry_point(name: str) -> Any:
    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for point in points:
        if point.name == name:
            try:
                return point.load()
            except Exception as exc:
                raise DriverError(f"driver {name!r} ({point.value}) cannot be loaded: {exc}") from exc
    known = sorted({SIM, *(p.name for p in points)})
    raise DriverError(
        f"no driver named {name!r} (installed: {', '.join(known)}; "
        f'or write "package.module:Class")'
    )
