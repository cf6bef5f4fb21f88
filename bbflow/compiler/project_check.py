"""BBF701: the project file, ``bbflow.toml``, checked with the program it configures.

The schema's problems (``bbflow.project_schema``: unknown keys and tables,
wrong types, a driver that is neither ``sim``, ``package.module:Class`` nor an
installed driver) come from reading the file; what the file names in the
program is checked here, against the declarations of every module (from the
modules' scans, so a cached check sees them too): a robot's ``interface``, an
``[agent.NAME]`` table, a ``[run] agents`` entry, and in a ``sim`` table the
commands, events and ``busy_state`` of the robot's interface. The values of a
``sim`` table are checked against the interface's types as the checker
resolved them (kept with each module's check, cached or not): a command's
``result`` against its result type, an event's ``data`` against its payload,
by the same conversion ``bbflow run`` applies to them. Each problem is
one BBF701 at the offending key's line, with a "did you mean" where one is close.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from bbflow.compiler.cache import RobotSite, RobotTypes, Scan
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostic, Severity
from bbflow.compiler.semantic import types as T
from bbflow.compiler.source import Span
from bbflow.project import ProjectFile
from bbflow.project_schema import KeyPath, Problem, suggest, toml_lines


def project_diagnostics(read: ProjectFile, display: str, scans: Mapping[str, Scan] | None,
                        types: Mapping[str, RobotTypes] | None = None) -> list[Diagnostic]:
    """Every BBF701 of ``read`` (shown as ``display``); names are checked when ``scans`` (the whole
    program's, without syntax errors) are given, and ``sim`` values when ``types`` (robot interface
    qualname -> its types) are too."""
    problems = list(read.problems)
    # with a bad `source` the modules are named from the project's folder (`flows.cell.Arm`): every name
    # the file gives would be reported again, for the one mistake
    if scans is not None and not any(p.path in ((), ("project", "source")) for p in problems):
        problems += _names(read, scans, types or {})
    out = []
    lines = toml_lines(read.text)
    for problem in problems:
        line, column = read.where(problem.path)
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        where = f"{problem.key}: " if problem.path else ""
        out.append(Diagnostic(codes.BBF701.code, Severity.ERROR, f"{where}{problem.message}",
                              Span(display, line, column, line, _key_end(text, column)), help=problem.help))
    return out


def _key_end(text: str, column: int) -> int:
    """Where the key (or ``[table]`` header) written at ``column`` ends: what the diagnostic underlines."""
    rest = text[column - 1:]
    if rest.startswith("["):
        close = rest.find("]")
        return column + (close + 1 + rest.startswith("[[") if close >= 0 else len(rest.rstrip()))
    token = re.match(r"[^=\s]*", rest)
    return column + max(len(token.group()) if token else 0, 1)


def _names(read: ProjectFile, scans: Mapping[str, Scan], types: Mapping[str, RobotTypes]) -> Iterator[Problem]:
    """What the file names that the program does not declare."""
    data = read.project.data
    robots = {f"{module}.{r.name}": r for module, scan in scans.items() for r in scan.robots}
    agents = [f"{module}.{a}" for module, scan in scans.items() for a in scan.agents]
    for instance, table in _tables(data.get("robot")):
        interface = table.get("interface")
        if not isinstance(interface, str) or not interface:
            continue
        where: KeyPath = ("robot", instance, "interface")
        robot = robots.get(interface)
        if robot is None:
            yield Problem(where, f"no robot interface `{interface}` in the program "
                                 f"(interfaces: {', '.join(sorted(robots)) or 'none'})", _closest(interface, robots))
        elif isinstance(table.get("sim"), dict):
            yield from _sim(robot, table["sim"], ("robot", instance, "sim"))
            if interface in types:
                yield from _sim_values(types[interface], table["sim"], ("robot", instance, "sim"))
    shorts = {a.rsplit(".", 1)[-1] for a in agents}
    for short, _ in _tables(data.get("agent")):
        if short not in shorts:
            yield Problem(("agent", short), f"[agent.{short}] names no agent of the program "
                                            f"(agents: {', '.join(sorted(shorts)) or 'none'})", suggest(short, shorts))
    run = data.get("run")
    entries = run.get("agents") if isinstance(run, dict) else None
    for i, name in enumerate(entries if isinstance(entries, list) else []):
        if isinstance(name, str) and name not in agents and [a.rsplit(".", 1)[-1] for a in agents].count(name) != 1:
            yield Problem(("run", "agents", i), f"no agent `{name}` in the program "
                                                f"(agents: {', '.join(sorted(agents)) or 'none'})",
                          _closest(name, agents))


def _sim(robot: RobotSite, sim: dict[str, Any], where: KeyPath) -> Iterator[Problem]:
    """The names of a ``sim`` table: commands, events and states of ``robot``."""
    busy = sim.get("busy_state")
    others = [s for s in robot.states if s != "idle"]
    if isinstance(busy, str) and busy not in others:
        yield Problem((*where, "busy_state"), f"`{busy}` is not one of {robot.name}'s states other than idle "
                                             f"({', '.join(others) or 'it declares none'})", suggest(busy, others))
    for command, _ in _tables(sim.get("commands")):
        if command not in robot.commands:
            yield Problem((*where, "commands", command), f"{robot.name} has no command `{command}`",
                          suggest(command, robot.commands))
    events = sim.get("events")
    for i, entry in enumerate(events if isinstance(events, list) else []):
        if not isinstance(entry, dict):
            continue
        after, event = entry.get("after"), entry.get("event")
        if isinstance(after, str) and after not in robot.commands:
            yield Problem((*where, "events", i, "after"), f"{robot.name} has no command `{after}`",
                          suggest(after, robot.commands))
        if isinstance(event, str) and event not in robot.events:
            yield Problem((*where, "events", i, "event"), f"{robot.name} declares no event `{event}`",
                          suggest(event, robot.events))


def _sim_values(robot: RobotTypes, sim: dict[str, Any], where: KeyPath) -> Iterator[Problem]:
    """A ``sim`` table's command results and event data against the types of ``robot``."""
    results = dict(robot.results)
    for command, entry in _tables(sim.get("commands")):
        if "result" in entry and command in results:
            problem = _misfit(entry["result"], results[command])
            if problem is not None:
                yield Problem((*where, "commands", command, "result"),
                              f"not a {problem[0]} (the result of {robot.name}.{command}): {problem[1]}", problem[2])
    payloads = dict(robot.payloads)
    events = sim.get("events")
    for i, entry in enumerate(events if isinstance(events, list) else []):
        name = entry.get("event") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name not in payloads or "data" not in entry:
            continue
        payload = payloads[name]
        if isinstance(payload, T.NoneT):
            yield Problem((*where, "events", i, "data"), f"event `{name}` of {robot.name} has no payload",
                          "remove `data`")
            continue
        problem = _misfit(entry["data"], payload)
        if problem is not None:
            yield Problem((*where, "events", i, "data"),
                          f"not a payload of event `{name}` ({problem[0]}): {problem[1]}", problem[2])


def _misfit(value: Any, want: T.Type) -> tuple[str, str, str | None] | None:
    """(the runtime type, why ``value`` is not one, a "did you mean" for a misspelt enum member) when
    ``bbflow run`` would refuse it; None when it fits (or the type did not resolve: that error is the program's)."""
    if T.is_lenient(want):
        return None
    from bbflow.compiler.codegen.types import to_rtype  # only here: a project with sim values to check
    from bbflow.runtime.types import TypeMismatch

    rtype = to_rtype(want)
    try:
        rtype.conform(value)
    except TypeMismatch as e:
        return str(rtype), str(e), suggest(e.got, e.choices)
    return None


def _tables(value: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(k, v) for k, v in value.items() if isinstance(v, dict)] if isinstance(value, dict) else []


def _closest(name: str, qualified: Any) -> str | None:
    """A "did you mean" among dotted names: the one whose last part is ``name``'s, else the closest."""
    tail = name.rsplit(".", 1)[-1]
    same = [q for q in qualified if q.rsplit(".", 1)[-1] == tail]
    if len(same) == 1:
        return f"did you mean `{same[0]}`?"
    return suggest(name, qualified) or suggest(tail, {q.rsplit(".", 1)[-1] for q in qualified})
