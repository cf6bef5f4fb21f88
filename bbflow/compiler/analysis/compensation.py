"""Compensation completeness (BBF401-BBF404) and what composed reactors amount to.

The rule (docs/checks.md, compensation completeness): a step that changes the world and can be
followed by a failure must say how it is taken back (``undo``, its own or its
command's) or admit that it cannot (``irreversible``). "Can be followed by a
failure" means: some node that can fail is not an ancestor of it, so it may
still be running, or start, after the step completes. Inside a switch or map
body, the same holds one level up for the switch/map node, and a map body
whose nodes can fail can also fail in a later iteration.

A composed reactor is undone as a unit, so its step is covered only if the
reactor is *fully reversible* (every effect in it, at any depth, has an undo)
or the step carries its own ``undo``/``irreversible``. Each reactor's summary
is computed once for the whole program (``summarise``), by reachability over
the composition graph, which also copes with reactors that compose each other.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping

import attrs

from bbflow.compiler.analysis.graph import Category, Effect, Node, NodeKind, ReactorGraph
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label


@attrs.frozen(slots=True)
class ReactorSummary:
    """What a reactor amounts to when another one composes it."""

    #: it contains an effectful step, at any depth
    effectful: bool
    #: every effect in it, at any depth, is undone when it is rolled back as a unit
    reversible: bool
    #: limit-1 categories it may use, at any depth
    categories: frozenset[Category] = frozenset()
    #: why it is not reversible, for notes ("`Inner`: step `b` (beep) has no undo")
    why_not: str = ""


def _composed(graph: ReactorGraph) -> list[Node]:
    return [s for s in graph.steps() if s.effect is Effect.COMPOSED and s.reactor is not None]


def summarise(graphs: Mapping[str, ReactorGraph]) -> dict[str, ReactorSummary]:
    """The summary of every reactor in ``graphs`` (keyed by qualified name).

    A composed reactor missing from ``graphs`` (it did not check) counts as
    having no effect, which keeps its callers free of follow-on errors.
    """
    if not graphs:
        return {}
    uses: dict[str, dict[str, None]] = {name: {} for name in graphs}  # R -> T: R composes T
    uncovered: dict[str, dict[str, None]] = {name: {} for name in graphs}  # ... through a step without its own undo
    for name, graph in graphs.items():
        for step in _composed(graph):
            composed = step.reactor
            if composed is not None and composed in graphs:
                uses[name][composed] = None
                if not (step.undo or step.irreversible):
                    uncovered[name][composed] = None

    def reach(g: Mapping[str, Iterable[str]], *names: str) -> set[str]:
        seen = set(names)
        stack = list(names)
        while stack:
            for nxt in g[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    leaf_effect = {n for n, g in graphs.items() if any(s.effect is Effect.LEAF for s in g.steps())}
    used_by: dict[str, list[str]] = {name: [] for name in graphs}  # T -> R: R composes T
    for name, targets in uses.items():
        for target in targets:
            used_by[target].append(name)
    effectful = reach(used_by, *leaf_effect)  # they, and what composes them at any depth: one walk back

    def step_effectful(step: Node) -> bool:
        return step.effect is Effect.LEAF or (step.effect is Effect.COMPOSED and step.reactor in effectful)

    defects: dict[str, str] = {}
    for name, graph in graphs.items():
        for step in graph.steps():
            if step.irreversible and step_effectful(step):
                defects[name] = f"its step `{step.name}` ({step.call}) is marked irreversible"
                break
            if step.effect is Effect.LEAF and not (step.undo or step.default_undo):
                defects[name] = f"its step `{step.name}` ({step.call}) has no undo"
                break

    def nearest_defect(name: str) -> list[str] | None:
        """The shortest path through uncovered steps from ``name`` to a reactor with a defect (the first
        found breadth-first, in the order the steps are written); None if there is none."""
        parent: dict[str, str | None] = {name: None}
        queue = collections.deque([name])
        while queue:
            node = queue.popleft()
            if node in defects:
                path = [node]
                while (up := parent[path[-1]]) is not None:
                    path.append(up)
                return path[::-1]
            for nxt in uncovered[node]:
                if nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        return None

    own_categories = {n: frozenset(s.category for s in g.steps() if s.category) for n, g in graphs.items()}
    summaries = {}
    for name in graphs:
        bad = nearest_defect(name)
        why = ""
        if bad is not None:
            via = "".join(f", through `{graphs[p].name}`" for p in bad[1:-1])
            why = f"`{graphs[bad[-1]].name}`{via}: {defects[bad[-1]]}"
        categories = frozenset().union(*(own_categories[t] for t in reach(uses, name)))
        summaries[name] = ReactorSummary(name in effectful, bad is None, categories, why)
    return summaries


def failure_after(node: Node) -> str | None:
    """How a failure may follow ``node``'s completion, or None if nothing that can fail can run after it.

    The node's body must be acyclic, and so must the bodies around it.
    """
    body = node.body
    assert body is not None
    after = body.failing() & ~body.reachability().ancestors[node.index] & ~(1 << node.index)
    if after:
        other = body.nodes[(after & -after).bit_length() - 1]  # the first in source order
        if other.kind is NodeKind.FAIL:
            return "the `fail` that ends its body runs after it"
        return f"{other.label} can fail after it completes"
    parent = body.parent
    if parent is None:
        return None
    if parent.kind is NodeKind.MAP and body.failing():
        return f"a later iteration of map `{parent.name}` can fail after it completes"
    outer = failure_after(parent)
    return None if outer is None else f"it is inside {parent.label}, and {outer}"


def _is_effectful(step: Node, summaries: Mapping[str, ReactorSummary]) -> bool | None:
    if step.effect is Effect.LEAF:
        return True
    if step.effect is Effect.NONE:
        return False
    if step.effect is Effect.COMPOSED and step.reactor is not None and step.reactor in summaries:
        return summaries[step.reactor].effectful
    return None  # unknown: no verdict


def _exists_when_undone(target: Node, step: Node) -> bool:
    """Is ``target`` certainly done whenever ``step`` is undone (i.e. done before ``step`` starts)?"""
    if target is step:
        return True
    level: Node | None = step
    while level is not None and level.body is not None:
        if target.body is level.body:
            return level.body.reachability().is_ancestor(target, level)
        level = level.body.parent
    return True  # not visible from the step: name resolution's business, not ours


def check_compensation(graph: ReactorGraph, summaries: Mapping[str, ReactorSummary],
                       diags: Diagnostics) -> None:
    """BBF401, BBF403 and BBF404 for an acyclic reactor graph (BBF402: ``check_useless_undo``)."""
    for step in graph.steps():
        if _is_effectful(step, summaries):
            _check_covered(step, summaries, diags)
        _check_undo_values(step, diags)


def check_useless_undo(graph: ReactorGraph, summaries: Mapping[str, ReactorSummary],
                       diags: Diagnostics) -> None:
    """BBF402: ``undo``/``irreversible`` on a step with no effect (needs no acyclic graph)."""
    for step in graph.steps():
        if (step.undo or step.irreversible) and _is_effectful(step, summaries) is False:
            what = "`undo`" if step.undo else "`irreversible`"
            reason = (f"`{step.call}` composes a reactor with no effect" if step.effect is Effect.COMPOSED
                      else f"`{step.call}` has no effect on the world")
            diags.warning(codes.BBF402, f"{what} on step `{step.name}`, which has no effect to take back", step.span,
                          notes=(reason + ", so there is nothing to undo",),
                          help=f"remove the {what}")


def _check_covered(step: Node, summaries: Mapping[str, ReactorSummary], diags: Diagnostics) -> None:
    if step.undo or step.irreversible:
        return
    if step.effect is Effect.LEAF and step.default_undo:
        return
    if step.effect is Effect.COMPOSED and summaries[step.reactor].reversible:  # type: ignore[index]
        return
    witness = failure_after(step)
    if witness is None:
        return
    if step.effect is Effect.COMPOSED:
        summary = summaries[step.reactor]  # type: ignore[index]
        diags.error(codes.BBF403,
                    f"step `{step.name}` composes `{step.call}`, which is not fully reversible, "
                    "and has no `undo` or `irreversible` of its own",
                    step.span,
                    notes=(f"a composed reactor is undone as a unit; {summary.why_not}",
                           f"{witness}, and then `{step.name}` could not be rolled back"),
                    help=f"give `{step.name}` its own `undo` (it replaces the reactor's rollback), mark it "
                         f"`irreversible \"why\"`, or make `{step.call}` fully reversible")
        return
    diags.error(codes.BBF401,
                f"step `{step.name}` ({step.call}) changes the world and can be followed by a failure, "
                "but has no `undo` or `irreversible`",
                step.span,
                notes=(f"{witness}; the run would then be rolled back, and `{step.name}` could not be undone",),
                help=f"add `undo CALL` to `{step.name}` (or to the command `{step.call}`), "
                     "or mark it `irreversible \"why\"`")


def _check_undo_values(step: Node, diags: Diagnostics) -> None:
    seen: set[str] = set()
    for ref in step.undo_refs:
        if ref.name in seen or _exists_when_undone(ref.target, step):
            continue
        seen.add(ref.name)
        diags.error(codes.BBF404,
                    f"the undo of step `{step.name}` uses `{ref.name}`, which may not exist when the undo runs",
                    ref.span,
                    labels=(Label(step.span, f"`{step.name}` does not wait for `{ref.name}`"),),
                    notes=(f"{ref.target.label} is not certain to be done before `{step.name}` starts, "
                           f"so a rollback may undo `{step.name}` when `{ref.name}` never ran",),
                    help=f"add `after {ref.name}` to `{step.name}`, or build the undo from the inputs, "
                         f"from values `{step.name}` depends on, or from `{step.name}` itself")
