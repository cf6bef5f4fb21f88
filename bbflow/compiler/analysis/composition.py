"""Reactors that compose themselves, directly or through others (BBF305).

A composed reactor runs inside its step, so a reactor that composes itself,
or a ring of reactors that compose each other, would nest runs without end
(or until the Python stack gives out, with no undo of what already moved).
An undo that composes a reactor is a link of a ring too: it runs inside the
rollback, and if that run fails as well (the fault persists), its own
rollback runs the undo again, one level deeper each time.
There is no bound to prove it stops, whatever ``when`` or ``switch`` guards
the step, so the ring is an error. One diagnostic per ring, at the composing
step of its first reactor in source order; each other link is a label.
"""

from __future__ import annotations

import graphlib
from collections.abc import Collection, Mapping

import attrs

from bbflow.compiler.analysis.graph import SHOWN, Effect, Node, ReactorGraph
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.source import Span


@attrs.frozen(slots=True)
class _Link:
    """Where one reactor composes another: a step's call, or its undo."""

    step: Node
    span: Span
    undo: bool

    def where(self) -> str:
        return f"the undo of step `{self.step.name}`" if self.undo else f"step `{self.step.name}`"


def _position(graph: ReactorGraph) -> tuple[str, int, int]:
    return graph.span.file, graph.span.line, graph.span.column


def check_composition_cycles(graphs: Mapping[str, ReactorGraph], reported: Collection[str],
                             diags: Diagnostics) -> None:
    """BBF305 once per ring of reactors composing each other, if its first reactor is in ``reported``."""
    # R -> T -> the first step of R (in source order) that composes T, in its call or its undo
    links: dict[str, dict[str, _Link]] = {name: {} for name in graphs}
    for name, graph in graphs.items():
        for step in graph.steps():
            if step.effect is Effect.COMPOSED and step.reactor is not None and step.reactor in graphs:
                links[name].setdefault(step.reactor, _Link(step, step.span, False))
            if step.undo_reactor is not None and step.undo_reactor in graphs and step.undo_span is not None:
                links[name].setdefault(step.undo_reactor, _Link(step, step.undo_span, True))
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


def _report(ring: list[str], graphs: Mapping[str, ReactorGraph], links: Mapping[str, Mapping[str, _Link]],
            diags: Diagnostics) -> None:
    """``ring``: each reactor composes the next, the last composes the first."""
    names = [graphs[r].name for r in ring]
    hops = [(r, ring[(i + 1) % len(ring)]) for i, r in enumerate(ring)]
    found = [links[a][b] for a, b in hops]
    if len(ring) == 1:
        message = f"reactor `{names[0]}` composes itself" + (" in an undo" if found[0].undo else "")
    else:
        shown = [*names, names[0]] if len(names) <= SHOWN else [*names[: SHOWN - 1], "...", names[-1], names[0]]
        message = ("reactors compose each other in a ring: " + " -> ".join(n if n == "..." else f"`{n}`" for n in shown)
                   + ("" if len(names) <= SHOWN else f" ({len(names)} reactors)"))
    first = found[0]
    notes = [f"`{names[0]}` composes `{names[1]}` in {first.where()}"] if len(ring) > 1 else []
    if len(found) > SHOWN:
        notes.append(f"the steps of {len(found) - SHOWN} more reactors of the ring are not marked")
    if any(link.undo for link in found):
        notes.append("an undo that composes a reactor runs it inside the rollback; if that run fails too, "
                     "its own rollback starts the next, and so on while the fault lasts")
    else:
        notes.append("a composed reactor runs inside its step, so the runs would nest without end")
    diags.error(codes.BBF305, message, first.span,
                labels=tuple(Label(link.span, f"`{graphs[a].name}` composes `{graphs[b].name}` here"
                                   + (" (an undo)" if link.undo else ""))
                             for (a, b), link in zip(hops[1:SHOWN], found[1:SHOWN], strict=True)),
                notes=tuple(notes),
                help=("undo the step with commands, or with a reactor outside the ring"
                      if any(link.undo for link in found) else
                      "take the repeated part out into a reactor that composes none of these, "
                      "and repeat it with `map` over a list, or let an agent run the reactor again"))
