"""``bbflow graph AGENT`` and ``bbflow graph --project``: how signals flow, as Mermaid or Graphviz dot.

An agent's graph: each route (``on PATTERN [when ...]``) as a node inside the
agent's box; the declared signals its pattern matches flow into it; from it
go what it runs (reactors, commands, actions) and what it emits or schedules,
labelled ``then``/``else`` when that happens in the run's outcome.

The project's graph draws instances, as ``bbflow run`` starts them: every
robot instance of ``bbflow.toml``, one instance of an agent per robot
instance it is bound to, and each coordinator once (without a project, the
robot interfaces agents are on, one instance each). A signal flows from the
agent instance that emits it to the agent instances with a route for it; one
emitted ``to`` a literal robot instance is a node of its own, reaching only
that robot's agents and the coordinators. A robot's standard signals
(``robot.safety.changed``, ``robot.event.NAME`` ...) flow from each robot to
its own agents, and an agent's runs go to its robot.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from bbflow.compiler import ast
from bbflow.compiler.analysis.graphviz import FORMATS, GraphError, dot_text, mermaid_text
from bbflow.compiler.semantic.facts import CallKind, Facts
from bbflow.compiler.semantic.modules import is_std
from bbflow.compiler.semantic.patterns import Pattern, compile_pattern
from bbflow.project import Project
from bbflow.runtime.router import STAR

__all__ = ["render_agent_graph", "render_project_graph"]

_ROBOT_SIGNALS = "robot."


@attrs.frozen
class _Action:
    kind: str  # "run", "emit", "schedule"
    target: str  # a reactor's, command's or action's name, or a signal type
    branch: str  # "", "then", "else"
    subject: str | None = None  # an emit's or schedule's `to`, when it is a literal robot instance


def agents(facts: Facts) -> dict[str, ast.AgentDecl]:
    """The program's own agents (not the standard library's) by qualified name."""
    return {q: d for q, d in facts.decls.items()
            if isinstance(d, ast.AgentDecl) and not is_std(q.rsplit(".", 1)[0])}


def find_agent(facts: Facts, name: str) -> str | None:
    """The qualified name of agent ``name`` (qualified or short), None when there is none."""
    found = [q for q in agents(facts) if q == name or q.rsplit(".", 1)[-1] == name]
    if len(found) > 1 and name not in found:
        raise GraphError(f"{name!r} is ambiguous: {', '.join(sorted(found))}")
    return name if name in found else (found[0] if found else None)


def render_agent_graph(facts: Facts, name: str, fmt: str = "mermaid") -> str:
    qualname = find_agent(facts, name)
    if qualname is None:
        raise GraphError(f"no agent named {name!r}")
    agent = agents(facts)[qualname]
    drawing = _Drawing(fmt)
    box = drawing.box(f"agent {agent.name.name}" + _on(facts, agent))
    for route in agent.routes:
        rid = drawing.node(_route_label(route), "route", box)
        for signal in _matched(facts, route.pattern.text, facts.robots_of.get(agent)):
            drawing.edge(drawing.node(signal, "signal"), rid)
        for action in _actions(facts, route.body, ""):
            shape = "signal" if action.kind != "run" else "call"
            label = action.kind if not action.branch else f"{action.branch}: {action.kind}"
            drawing.edge(rid, drawing.node(action.target, shape), label)
    return drawing.render()


def render_project_graph(facts: Facts, fmt: str = "mermaid", project: Project | None = None) -> str:
    own = agents(facts)
    if not own:
        raise GraphError("the program has no agents")
    placed = _placed(facts, own.values(), project)
    flow = _flow(facts, placed)
    from_robot = _robot_signals(facts)
    drawing = _Drawing(fmt)
    robot_ids = {robot: drawing.node(label, "robot") for robot, label in _robot_labels(placed, project).items()}
    ids = [drawing.node(p.label, "agent") for p in placed]
    for i, reactor in flow.runs:
        robot = placed[i].robot
        if robot is not None:
            drawing.edge(ids[i], robot_ids[robot], f"run {reactor}", dedupe=True)
    # a signal's node: one per literal `to` it is emitted with, and a plain one when it is also emitted without
    # one (or with a computed one), or comes only from outside
    sent_as: dict[str, list[tuple[str, str | None]]] = {}
    for key in flow.sent:
        sent_as.setdefault(key[0], []).append(key)
    for i, p in enumerate(placed):
        for signal in dict.fromkeys(flow.handled.get(i, ())):
            if signal in from_robot or signal.startswith("robot.event."):
                if p.robot is not None:
                    drawing.edge(robot_ids[p.robot], ids[i], signal, dedupe=True)
                continue
            for key in sent_as.get(signal) or [(signal, None)]:
                subject = key[1]
                if subject is None or p.instance is None or p.instance == subject:
                    drawing.edge(drawing.node(_signal_label(*key), "signal"), ids[i], dedupe=True)
    for key, emitters in flow.sent.items():
        for i, how in emitters.items():
            drawing.edge(ids[i], drawing.node(_signal_label(*key), "signal"), how, dedupe=True)
    return drawing.render()


@attrs.frozen
class _Flow:
    """Who runs, sends and handles what among the placed agents (each by its index in the list placed)."""

    runs: list[tuple[int, str]]  # (agent, reactor it runs), in program order
    sent: dict[tuple[str, str | None], dict[int, str]]  # (signal, literal subject) -> emitter -> how
    handled: dict[int, list[str]]  # agent -> the signals its routes match


def _flow(facts: Facts, placed: list[_Placed]) -> _Flow:
    flow = _Flow([], {}, {})
    for i, p in enumerate(placed):
        for route in p.agent.routes:
            flow.handled.setdefault(i, []).extend(_matched(facts, route.pattern.text, p.interface))
            for action in _actions(facts, route.body, ""):
                if action.kind == "run":
                    flow.runs.append((i, action.target))
                else:
                    flow.sent.setdefault((action.target, action.subject), {}).setdefault(i, action.kind)
    return flow


def _signal_label(signal: str, subject: str | None) -> str:
    """A signal's node: its type, and the robot instance it is addressed to when that is a literal."""
    return signal if subject is None else f"{signal} to {subject}"


@attrs.frozen
class _Placed:
    """One agent instance: on a robot instance (from bbflow.toml), on an interface (no project), or a coordinator."""

    agent: ast.AgentDecl
    label: str
    interface: str | None  # the robot interface's qualified name
    instance: str | None  # the robot instance (with a project)
    robot: str | None  # the key of its robot's node: the instance, else the interface


def _placed(facts: Facts, own: Iterable[ast.AgentDecl], project: Project | None) -> list[_Placed]:
    """Every agent instance: one per robot instance the agent is bound to, a coordinator once.

    With a project, an agent on interface I runs on the instances its
    ``[agent.NAME]`` table lists (``robots``, or ``robot``), else on every
    instance of I; without one, once, on the interface itself.
    """
    out = []
    for agent in own:
        name = agent.name.name
        interface = facts.robots_of.get(agent)
        if interface is None:
            out.append(_Placed(agent, name, None, None, None))
        elif project is None:
            out.append(_Placed(agent, f"{name} on {_short(interface)}", interface, None, interface))
        else:
            config = project.agents.get(name)
            listed: tuple[str, ...] = ()
            if config is not None:
                listed = config.robots or ((config.robot,) if config.robot is not None else ())
            instances = listed or tuple(sorted(i for i, c in project.robots.items() if c.interface == interface))
            out.extend(_Placed(agent, f"{name} on {i}", interface, i, i) for i in instances)
    return out


def _robot_labels(placed: list[_Placed], project: Project | None) -> dict[str, str]:
    """The robots' nodes: every instance of the project (agents or not), else the interfaces agents are on."""
    if project is not None:
        return {i: f"robot {i}: {_short(c.interface)}" for i, c in project.robots.items()}
    return {p.interface: f"robot {_short(p.interface)}" for p in placed if p.interface is not None}


def _robot_signals(facts: Facts) -> set[str]:
    """The signals that come from a robot: the standard library's ``robot.*`` (``robot.event.NAME`` aside)."""
    return {d.type.text for name, module in facts.modules.items() if is_std(name)
            for d in module.decls if isinstance(d, ast.SignalDecl) and d.type.text.startswith(_ROBOT_SIGNALS)}


def _on(facts: Facts, agent: ast.AgentDecl) -> str:
    robot = facts.robots_of.get(agent)
    return f" on {_short(robot)}" if robot else ""


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


def _route_label(route: ast.RouteDecl) -> str:
    label = f"on {route.pattern.text}"
    if route.when is not None:
        label += " when ..."
    if route.priority:
        label += f" priority {route.priority}"
    return label


def _matched(facts: Facts, pattern_text: str, robot: str | None) -> list[str]:
    """The signals a route pattern matches: declared ones (a program's own `robot.task.done` too), and for an
    agent on a robot its robot's standard signals and events (the pattern itself when it matches none)."""
    pattern = compile_pattern(pattern_text)
    if not isinstance(pattern, Pattern) or STAR not in pattern_text:  # (a literal matches itself, or nothing)
        return [pattern_text]
    from_robot = _robot_signals(facts) if robot is None else set()
    candidates = [s for s in facts.signals if s not in from_robot]
    decl = facts.decls.get(robot) if robot is not None else None
    if isinstance(decl, ast.RobotDecl):
        candidates += [f"robot.event.{e.name.name}" for e in decl.events]
    found = sorted({s for s in candidates if pattern.matches(s)})
    return found or [pattern_text]


def _actions(facts: Facts, body: tuple[ast.AgentStmt, ...], branch: str) -> Iterator[_Action]:
    for stmt in body:
        if isinstance(stmt, ast.RunStmt):
            target = facts.call(stmt.call)
            name = target.qualname.rsplit(".", 1)[-1] if target is not None else _callee(stmt.call.callee)
            kind = target.kind.value if target is not None and target.kind is not CallKind.REACTOR else "run"
            yield _Action("run", name if kind == "run" else f"{name} ({kind})", branch)
            yield from _actions(facts, stmt.then or (), "then")
            yield from _actions(facts, stmt.else_ or (), "else")
        elif isinstance(stmt, ast.EmitStmt | ast.ScheduleStmt):
            subject = stmt.to.value if isinstance(stmt.to, ast.StrLit) else None
            yield _Action("emit" if isinstance(stmt, ast.EmitStmt) else "schedule", stmt.type.text, branch, subject)
        elif isinstance(stmt, ast.IfStmt):
            yield from _actions(facts, stmt.then, branch)
            yield from _actions(facts, stmt.else_ or (), branch)
        else:  # set, and statements added later that neither run nor emit
            for inner in ("then", "else_", "body"):
                nested = getattr(stmt, inner, None)
                if isinstance(nested, tuple):
                    yield from _actions(facts, nested, branch)


def _callee(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.ident.name
    if isinstance(expr, ast.Attr):
        return expr.name.name
    return "?"


@attrs.define
class _Drawing:
    """Nodes (one per distinct label and shape), one level of boxes, and edges."""

    fmt: str
    nodes: dict[tuple[str, str], str] = attrs.Factory(dict)  # (label, shape) -> id
    boxes: dict[str, tuple[str, list[str]]] = attrs.Factory(dict)  # id -> (label, node ids)
    edges: list[tuple[str, str, str]] = attrs.Factory(list)
    drawn: set[tuple[str, str, str]] = attrs.Factory(set)  # the edges, to find a repeated one at once

    def __attrs_post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise GraphError(f"unknown format {self.fmt!r} (formats: {', '.join(FORMATS)})")

    def box(self, label: str) -> str:
        bid = f"g{len(self.boxes) + 1}"
        self.boxes[bid] = (label, [])
        return bid

    def node(self, label: str, shape: str, box: str | None = None) -> str:
        key = (label, shape) if box is None else (f"{box}\0{label}\0{len(self.nodes)}", shape)
        if key not in self.nodes:
            self.nodes[key] = f"n{len(self.nodes) + 1}"
            if box is not None:
                self.boxes[box][1].append(self.nodes[key])
        return self.nodes[key]

    def edge(self, src: str, dst: str, label: str = "", dedupe: bool = False) -> None:
        if not (dedupe and (src, dst, label) in self.drawn):
            self.edges.append((src, dst, label))
            self.drawn.add((src, dst, label))

    def render(self) -> str:
        labels = {nid: (key[0].rsplit("\0", 2)[1] if "\0" in key[0] else key[0], key[1])
                  for key, nid in self.nodes.items()}
        boxed = {nid for _, members in self.boxes.values() for nid in members}
        return self._mermaid(labels, boxed) if self.fmt == "mermaid" else self._dot(labels, boxed)

    def _mermaid(self, labels: dict[str, tuple[str, str]], boxed: set[str]) -> str:
        shapes = {"signal": ("([", "])"), "route": ("[", "]"), "call": ("[[", "]]"), "agent": ("[", "]"),
                  "robot": ("{{", "}}")}
        out = ["flowchart LR"]

        def line(nid: str, pad: str) -> str:
            label, shape = labels[nid]
            left, right = shapes[shape]
            return f'{pad}{nid}{left}"{mermaid_text(label)}"{right}'

        for nid in labels:
            if nid not in boxed:
                out.append(line(nid, "    "))
        for bid, (label, members) in self.boxes.items():
            out.append(f'    subgraph {bid}["{mermaid_text(label)}"]')
            out.extend(line(nid, "        ") for nid in members)
            out.append("    end")
        for src, dst, label in self.edges:
            text = f"|{mermaid_text(label)}|" if label else ""
            out.append(f"    {src} -->{text} {dst}")
        return "\n".join(out) + "\n"

    def _dot(self, labels: dict[str, tuple[str, str]], boxed: set[str]) -> str:
        font = 'fontname="Helvetica"'
        shapes = {"signal": "box, style=rounded", "route": "box", "call": "box, peripheries=2", "agent": "box",
                  "robot": "hexagon"}
        out = ["digraph signals {", "    compound=true;", "    rankdir=LR;", f"    graph [{font}];",
               f"    node [shape=box, {font}];", f"    edge [{font}];"]

        def line(nid: str, pad: str) -> str:
            label, shape = labels[nid]
            return f"{pad}{nid} [label={dot_text(label)}, shape={shapes[shape]}];"

        for nid in labels:
            if nid not in boxed:
                out.append(line(nid, "    "))
        for bid, (label, members) in self.boxes.items():
            out.append(f"    subgraph cluster_{bid} {{")
            out.append(f"        label={dot_text(label)};")
            out.extend(line(nid, "        ") for nid in members)
            out.append("    }")
        for src, dst, label in self.edges:
            tail = f" [label={dot_text(label)}]" if label else ""
            out.append(f"    {src} -> {dst}{tail};")
        out.append("}")
        return "\n".join(out) + "\n"
