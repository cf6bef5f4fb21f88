"""The dependency graph of a reactor and the checks made on it (BBF301, BBF303, BBF304).

A reactor body is a ``Body``: its nodes (steps, lets, switches, maps and a
final ``fail``) and the edges between them, ``(dependency, dependent)``. A
switch or map node holds the bodies of its cases or of its iteration; a
reference from inside such a body to a node of an enclosing body is an edge
to the switch/map node at that level, so every graph stays within one body.
A body's ``fail`` runs when everything else in the body is done, so it gets
an edge from every other node.

These structures are built from the AST and the checker's facts by
``bbflow.compiler.analysis.analyses``; the algorithms here and in
``bbflow.compiler.analysis.compensation`` only look at them, so they are tested on
hand-built graphs as well as on compiled source.
"""

from __future__ import annotations

import enum
import graphlib
import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import attrs

from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.source import Span

if TYPE_CHECKING:
    import networkx as nx

#: a limited command category: (qualname of the robot interface, category name)
Category = tuple[str, str]


class NodeKind(str, enum.Enum):
    STEP = "step"
    LET = "let"
    SWITCH = "switch"
    MAP = "map"
    FAIL = "fail"


class Effect(str, enum.Enum):
    """What a step does to the world, as far as its own call tells."""

    NONE = "none"  # readonly command, pure action, wait_state / wait_event
    LEAF = "leaf"  # a command that is not readonly, an action that is not pure
    COMPOSED = "composed"  # another reactor: its summary decides
    UNKNOWN = "unknown"  # the call did not resolve: no verdict (no cascades)


@attrs.frozen(slots=True)
class UndoRef:
    """A value named in a step's own ``undo`` call, and the node that produces it."""

    name: str
    span: Span
    target: Node


@attrs.define(eq=False)
class Node:
    """One statement of a reactor body that takes part in the graph."""

    name: str
    kind: NodeKind
    span: Span
    #: position in the whole reactor's source (for "first" and "later")
    order: int = 0
    #: the called thing as written (``move_to``), for messages
    call: str = ""
    effect: Effect = Effect.NONE
    #: qualified name of the composed reactor, for Effect.COMPOSED
    reactor: str | None = None
    #: a readonly command or a pure action (BBF303 applies)
    pure_read: bool = False
    #: referenced anywhere in the reactor, or named in an ``after``
    used: bool = True
    undo: bool = False  # its own `undo`
    default_undo: bool = False  # its command's `undo`
    #: what the undo that applies calls, as written (its own, else its command's): ``home``, for drawings
    undo_call: str = ""
    #: qualified name of the reactor its own undo composes, and where that undo is written
    undo_reactor: str | None = None
    undo_span: Span | None = None
    irreversible: bool = False
    fallback: bool = False
    #: the limited (limit 1) category of the command it calls
    category: Category | None = None
    undo_refs: tuple[UndoRef, ...] = ()
    #: switch: one body per case and the default; map: the iteration's body
    bodies: tuple[Body, ...] = ()
    #: switch: each body's case values as written ("1, 2"), "default" for the default, for drawings
    cases: tuple[str, ...] = ()
    concurrency: int = 1  # map only
    #: the reactor's parameters it uses (in its call, `when`, `fallback` or `where`), for drawings
    inputs: tuple[str, ...] = ()
    #: set by the Body that holds the node
    body: Body | None = attrs.field(default=None, repr=False)
    index: int = attrs.field(default=-1, repr=False)

    @property
    def can_fail(self) -> bool:
        """Anything but a ``let`` can fail; a step with ``fallback`` continues with its value instead."""
        if self.kind is NodeKind.LET:
            return False
        return not (self.kind is NodeKind.STEP and self.fallback)

    @property
    def label(self) -> str:
        return f"`{self.name}`" if self.kind is NodeKind.STEP else f"{self.kind.value} `{self.name}`"

    def steps(self) -> Iterator[Node]:
        """The steps this node is or contains, in source order."""
        if self.kind is NodeKind.STEP:
            yield self
        for body in self.bodies:
            for node in body.nodes:
                yield from node.steps()


@attrs.define(eq=False)
class Reachability:
    """Ancestors and descendants of every node of an acyclic body, as bit sets over node indices."""

    ancestors: list[int]
    descendants: list[int]

    def is_ancestor(self, a: Node, b: Node) -> bool:
        """Must ``a`` be done before ``b`` starts?"""
        return bool(self.ancestors[b.index] >> a.index & 1)

    def ordered(self, a: Node, b: Node) -> bool:
        return self.is_ancestor(a, b) or self.is_ancestor(b, a)


@attrs.define(eq=False)
class Body:
    """The nodes of one scope and the dependencies between them."""

    nodes: list[Node]
    #: (dependency, dependent) -> why, as written (``uses `pick` `` / ``after ready``)
    edges: dict[tuple[Node, Node], str] = attrs.Factory(dict)
    #: the switch or map whose body this is; None for the reactor's own body
    parent: Node | None = None
    _reach: Reachability | None = attrs.field(default=None, init=False, repr=False)
    _failing: int | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        for i, node in enumerate(self.nodes):
            node.body, node.index = self, i
            for child in node.bodies:
                child.parent = node

    def digraph(self) -> nx.DiGraph:
        import networkx as nx  # late: only a body with a cycle needs it
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    def failing(self) -> int:
        """The bit set of the nodes that can fail."""
        if self._failing is None:
            self._failing = sum(1 << n.index for n in self.nodes if n.can_fail)
        return self._failing

    def order(self) -> list[Node] | None:
        """The nodes, each after every node it waits for; None if some wait in a cycle."""
        sorter: graphlib.TopologicalSorter[Node] = graphlib.TopologicalSorter(dict.fromkeys(self.nodes, ()))
        for dependency, dependent in self.edges:
            sorter.add(dependent, dependency)
        try:
            return list(sorter.static_order())
        except graphlib.CycleError:
            return None

    def reachability(self) -> Reachability:
        """Ancestor/descendant sets; the body must be acyclic (see ``find_cycles``)."""
        if self._reach is None:
            order = self.order()
            assert order is not None, "reachability of a body with a cycle"
            preds: dict[Node, list[Node]] = {n: [] for n in self.nodes}
            succs: dict[Node, list[Node]] = {n: [] for n in self.nodes}
            for a, b in self.edges:
                succs[a].append(b)
                preds[b].append(a)
            anc = [0] * len(self.nodes)
            desc = [0] * len(self.nodes)
            for node in order:
                for pred in preds[node]:
                    anc[node.index] |= anc[pred.index] | 1 << pred.index
            for node in reversed(order):
                for succ in succs[node]:
                    desc[node.index] |= desc[succ.index] | 1 << succ.index
            self._reach = Reachability(anc, desc)
        return self._reach


@attrs.define(eq=False)
class ReactorGraph:
    """A reactor's body graph, with what the analyses need to name it."""

    qualname: str
    name: str
    span: Span
    body: Body
    robot: str | None = None
    #: the reactor's parameters, ``name: Type`` as written, for drawings
    params: tuple[str, ...] = ()
    #: what the reactor's own `return` uses (parameters by name), for drawings; None without a `return`
    returns: tuple[Node | str, ...] | None = None

    def bodies(self) -> Iterator[Body]:
        stack = [self.body]
        while stack:
            body = stack.pop()
            yield body
            for node in body.nodes:
                stack.extend(node.bodies)

    def nodes(self) -> list[Node]:
        """Every node, in source order."""
        return sorted((n for b in self.bodies() for n in b.nodes), key=lambda n: n.order)

    def steps(self) -> list[Node]:
        return [n for n in self.nodes() if n.kind is NodeKind.STEP]


# --- BBF301 -------------------------------------------------------------------------

#: a cycle (of steps, or a ring of reactors) longer than this is named by its first members and its last,
#: and only those are marked
SHOWN = 8


def find_cycles(body: Body) -> list[list[Node]]:
    """One cycle per strongly connected group of nodes, from its first node in source order.

    Each node of a cycle waits for the next one (and the last for the first).
    """
    if body.order() is not None:
        return []  # the common case, without networkx
    import networkx as nx  # late: only a body with a cycle needs it
    g = body.digraph().reverse(copy=False)
    cycles = []
    for group in nx.strongly_connected_components(g):
        first = min(group, key=lambda n: n.order)
        if len(group) == 1 and not g.has_edge(first, first):
            continue
        sub = g.subgraph(group)
        paths = nx.single_source_shortest_path(sub, first)
        back = min((paths[p] for p in sub.predecessors(first)),
                   key=lambda path: (len(path), [n.order for n in path]))
        cycles.append(back)
    return sorted(cycles, key=lambda c: c[0].order)


def check_cycles(graph: ReactorGraph, diags: Diagnostics) -> bool:
    """BBF301 for every cycle; True when the whole reactor is acyclic."""
    acyclic = True
    for body in graph.bodies():
        for cycle in find_cycles(body):
            acyclic = False
            ring = cycle + [cycle[0]]
            shown = [n.name for n in ring] if len(cycle) <= SHOWN else \
                [*(n.name for n in cycle[: SHOWN - 1]), "...", cycle[-1].name, cycle[0].name]
            names = " -> ".join(shown) + (" (each waits for the next)" if len(cycle) <= SHOWN else
                                          f" ({len(cycle)} steps, each waits for the next)")
            hops = list(itertools.pairwise(ring))
            notes = tuple(f"{a.label} waits for {b.label} ({body.edges[(b, a)]})" for a, b in hops[: SHOWN - 1])
            if len(cycle) > SHOWN:
                notes += (f"and {len(cycle) - SHOWN} more steps wait in turn, the last for {cycle[0].label}",)
            diags.error(codes.BBF301, f"dependency cycle between steps: {names}",
                        cycle[0].span,
                        labels=tuple(Label(n.span, f"{n.label} is part of the cycle") for n in cycle[1:SHOWN]),
                        notes=notes,
                        help="remove one of these dependencies (a data reference or an `after`)")
    return acyclic


# --- BBF303 -------------------------------------------------------------------------


def check_unused(graph: ReactorGraph, diags: Diagnostics) -> None:
    """BBF303: a readonly command or pure action whose value nothing uses has no reason to run."""
    for step in graph.steps():
        if step.pure_read and not step.used:
            diags.warning(codes.BBF303, f"the value of step `{step.name}` ({step.call}) is never used",
                          step.span,
                          notes=(f"`{step.call}` has no effect on the world, so running it only makes sense "
                                 "for its value",),
                          help=f"use `{step.name}` in a later step, name it in an `after`, or remove the step")


# --- BBF304 -------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Conflict:
    """Two steps (or one step and itself, in a concurrent map) that may share a limited category at once."""

    first: Node
    later: Node
    category: Category
    map_node: Node | None = None  # set when concurrent iterations of this map are the reason


def find_category_conflicts(graph: ReactorGraph,
                            categories: Callable[[Node], frozenset[Category]]) -> list[Conflict]:
    """Pairs of steps using a common limit-1 category with no path between them.

    ``categories(step)`` gives the limited categories a step uses (for a
    composed step, everything its reactor may use). The body must be acyclic.
    Steps in different cases of one switch never run together; steps of a map
    body with concurrency above 1 may run together in two iterations, even
    the same step. At most one conflict is kept per later step: the one with
    the earliest partner.
    """
    found: dict[Node, Conflict] = {}

    def keep(x: Node, y: Node, shared: frozenset[Category], map_node: Node | None = None) -> None:
        first, later = sorted((x, y), key=lambda n: n.order)
        conflict = Conflict(first, later, min(shared), map_node)
        known = found.get(later)
        if known is None or first.order < known.first.order:
            found[later] = conflict

    def used(node: Node) -> dict[Category, list[Node]]:
        by_category: dict[Category, list[Node]] = {}
        for step in node.steps():
            for cat in categories(step):
                by_category.setdefault(cat, []).append(step)
        return by_category

    for body in graph.bodies():
        reach = body.reachability()
        users = {node: used(node) for node in body.nodes}
        masks: dict[Category, int] = {}
        for node in body.nodes:
            for cat in users[node]:
                masks[cat] = masks.get(cat, 0) | 1 << node.index
        for node in body.nodes:
            for cat in users[node]:
                # earlier nodes (by index) using cat, neither before nor after this one
                free = masks[cat] & ((1 << node.index) - 1) & ~reach.ancestors[node.index] & ~reach.descendants[node.index]
                while free:
                    other = body.nodes[free.bit_length() - 1]
                    free &= ~(1 << other.index)
                    for x in users[other][cat]:
                        for y in users[node][cat]:
                            keep(x, y, frozenset({cat}))
        parent = body.parent
        if parent is not None and parent.kind is NodeKind.MAP and parent.concurrency > 1 and parent.bodies[0] is body:
            inside = [s for n in body.nodes for s in n.steps()]
            for i, x in enumerate(inside):
                for y in inside[i:]:
                    shared = categories(x) & categories(y)
                    if shared:
                        keep(x, y, shared, parent)
    return sorted(found.values(), key=lambda c: c.later.order)


def check_category_conflicts(graph: ReactorGraph, categories: Callable[[Node], frozenset[Category]],
                             diags: Diagnostics) -> None:
    """BBF304 at the later step of each unordered pair."""
    for c in find_category_conflicts(graph, categories):
        _robot, cat = c.category
        if c.map_node is not None:
            m = c.map_node
            who = (f"step `{c.later.name}` uses" if c.first is c.later
                   else f"steps `{c.first.name}` and `{c.later.name}` use")
            diags.error(codes.BBF304,
                        f"{who} category `{cat}` (limit 1) in map `{m.name}`, whose iterations run "
                        f"{m.concurrency} at a time: two iterations could use `{cat}` at once",
                        c.later.span,
                        labels=(Label(m.span, f"map `{m.name}` runs up to {m.concurrency} iterations at once"),),
                        help=f"give map `{m.name}` concurrency 1, or raise the limit of `{cat}` on the robot")
            continue
        diags.error(codes.BBF304,
                    f"steps `{c.first.name}` and `{c.later.name}` both use category `{cat}` (limit 1) "
                    "but are not ordered: the robot could be asked to do both at once",
                    c.later.span,
                    labels=(Label(c.first.span, f"`{c.first.name}` uses `{cat}` here"),),
                    help=f"order them: add `after {c.first.name}` to `{c.later.name}` "
                         "(or make one use the other's value)")
