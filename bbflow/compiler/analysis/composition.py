"""Reactors that compose themselves, directly or through others (BBF305).

A composed reactor runs inside its step, so a reactor that composes itself,
or a ring of reactors that compose each other, would nest runs without end
(or until the Python stack gives out, with no undo of what already moved).
There is no bound to prove it stops, whatever ``when`` or ``switch`` guards
the step, so the ring is an error. One diagnostic per ring, at the composing
step of its first reactor in source order; each other link is a label.
"""

from __future__ import annotations

import graphlib
from collections.abc import Collection, Mapping

from bbflow.compiler.analysis.graph import Effect, Node, ReactorGraph
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label


def _position(graph: ReactorGraph) -> tuple[str, int, int]:
    return graph.span.file, graph.span.line, graph.span.column


def check_composition_cycles(graphs: Mapping[str, ReactorGraph], reported: Collection[str],
                             diags: Diagnostics) -> None:
    """BBF305 once per ring of reactors composing each other, if its first reactor is in ``reported``."""
    # R -> T -> the first step of R (in source order) that composes T
    links: dict[str, dict[str, Node]] = {name: {} for name in graphs}
    for name, graph in graphs.items():
        for step in graph.steps():
            if step.effect is Effect.COMPOSED and step.reactor is not None and step.reactor in graphs:
                links[name].setdefault(step.reactor, step)
    try:
        graphlib.TopologicalSorter(links).prepare()
        return  # no ring: the common case never needs networkx
    except graphlib.CycleError:
        pass
    import networkx as nx  # late: only a program with a ring needs it

    g = nx.DiGraph([(a, b) for a, targets in links.items() for b in targets])
    for group in nx.strongly_connected_components(g):
        first = min(group, key=lambda n: _position(graphs[n]))
        if (len(group) == 1 and not g.has_edge(first, first)) or first not in reported:
            continue
        sub = g.subgraph(group)
        ring = [first] if g.has_edge(first, first) else nx.shortest_path(
            sub, first, min(sub.predecessors(first), key=lambda n: _position(graphs[n])))
        _report(ring, graphs, links, diags)


def _report(ring: list[str], graphs: Mapping[str, ReactorGraph], links: Mapping[str, Mapping[str, Node]],
            diags: Diagnostics) -> None:
    """``ring``: each reactor composes the next, the last composes the first."""
    names = [graphs[r].name for r in ring]
    hops = [(r, ring[(i + 1) % len(ring)]) for i, r in enumerate(ring)]
    steps = [links[a][b] for a, b in hops]
    if len(ring) == 1:
        message = f"reactor `{names[0]}` composes itself"
    else:
        message = ("reactors compose each other in a ring: "
                   + " -> ".join(f"`{n}`" for n in [*names, names[0]]))
    diags.error(codes.BBF305, message, steps[0].span,
                labels=tuple(Label(step.span, f"`{graphs[a].name}` composes `{graphs[b].name}` here")
                             for (a, b), step in zip(hops[1:], steps[1:], strict=True)),
                notes=(*([f"`{names[0]}` composes `{names[1]}` in step `{steps[0].name}`"] if len(ring) > 1 else []),
                       "a composed reactor runs inside its step, so the runs would nest without end"),
                help="take the repeated part out into a reactor that composes none of these, "
                     "and repeat it with `map` over a list, or let an agent run the reactor again")
