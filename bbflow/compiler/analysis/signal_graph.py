"""``bbflow graph AGENT`` and ``bbflow graph --project``: how signals flow, as Mermaid or Graphviz dot.

An agent's graph: each route (``on PATTERN [when ...]``) as a node inside the
agent's box; the declared signals its pattern matches flow into it; from it
go what it runs (reactors, commands, actions) and what it emits or schedules,
labelled ``then``/``else`` when that happens in the run's outcome.

The project's graph: every agent (coordinators included) and every robot
interface that an agent is bound to; a signal flows from the agent that emits
it to the agents with a route for it, a robot's standard signals
(``robot.safety.changed``, ``robot.event.NAME`` ...) flow from the robot to
its agents, and an agent's runs go to its robot.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from bbflow.compiler import ast
from bbflow.compiler.analysis.graphviz import FORMATS, GraphError, dot_text, mermaid_text
from bbflow.compiler.semantic.facts import CallKind, Facts
from bbflow.compiler.semantic.modules import is_std
from bbflow.compiler.semantic.patterns import Pattern, compile_pattern

__all__ = ["render_agent_graph", "render_project_graph"]

_ROBOT_SIGNALS = "robot."


@attrs.frozen
class _Action:
    kind: str  # "run", "emit", "schedule"
    target: str  # a reactor's, command's or action's name, or a signal type
    branch: str  # "", "then", "else"


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


def render_project_graph(facts: Facts, fmt: str = "mermaid") -> str:
    drawing = _Drawing(fmt)
    own = agents(facts)
    for agent in own.values():
        aid = drawing.node(f"{agent.name.name}{_on(facts, agent)}", "agent")
        robot = facts.robots_of.get(agent)
        rid = drawing.node(f"robot {robot.rsplit('.', 1)[-1]}", "robot") if robot else None
        handled: dict[str, None] = {}
        for route in agent.routes:
            for signal in _matched(facts, route.pattern.text, robot):
                handled.setdefault(signal)
            for action in _actions(facts, route.body, ""):
                if action.kind == "run" and rid is not None:
                    drawing.edge(aid, rid, f"run {action.target}", dedupe=True)
                elif action.kind != "run":
                    drawing.edge(aid, drawing.node(action.target, "signal"), action.kind, dedupe=True)
        for signal in handled:
            if signal.startswith(_ROBOT_SIGNALS) and rid is not None:
                drawing.edge(rid, aid, signal, dedupe=True)
            elif not signal.startswith(_ROBOT_SIGNALS):
                drawing.edge(drawing.node(signal, "signal"), aid, dedupe=True)
    if not own:
        raise GraphError("the program has no agents")
    return drawing.render()


def _on(facts: Facts, agent: ast.AgentDecl) -> str:
    robot = facts.robots_of.get(agent)
    return f" on {robot.rsplit('.', 1)[-1]}" if robot else ""


def _route_label(route: ast.RouteDecl) -> str:
    label = f"on {route.pattern.text}"
    if route.when is not None:
        label += " when ..."
    if route.priority:
        label += f" priority {route.priority}"
    return label


def _matched(facts: Facts, pattern_text: str, robot: str | None) -> list[str]:
    """The signals a route pattern matches: declared ones, and for an agent on a robot its robot's
    standard signals and events (the pattern itself when it matches none)."""
    pattern = compile_pattern(pattern_text)
    if not isinstance(pattern, Pattern):
        return [pattern_text]
    candidates = [s for s in facts.signals if robot is not None or not s.startswith(_ROBOT_SIGNALS)]
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
        elif isinstance(stmt, ast.EmitStmt):
            yield _Action("emit", stmt.type.text, branch)
        elif isinstance(stmt, ast.ScheduleStmt):
            yield _Action("schedule", stmt.type.text, branch)
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
        if not (dedupe and (src, dst, label) in self.edges):
            self.edges.append((src, dst, label))

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
