"""Dependency tables of a reactor's bodies, computed once per ``Reactor`` and cached.

The executor schedules the nodes of a ``Body`` by index: ``indegree[i]`` is
how many nodes of the same body node ``i`` waits for, ``dependents[i]`` the
nodes that wait for it, ``roots`` the nodes that wait for nothing. Names in
``deps`` that are not nodes of the body (inputs, values of an enclosing body)
are already in scope and impose no order. Switch and map bodies get plans of
their own (``subplans``).
"""

from __future__ import annotations

import functools
import weakref

from bbflow.runtime import model

STEP, LET, SWITCH, MAP = 0, 1, 2, 3

_KIND = {model.Step: STEP, model.Let: LET, model.Switch: SWITCH, model.Map: MAP}


class PlanError(ValueError):
    """A reactor model the executor cannot run (duplicate names, a dependency cycle).

    The compiler rejects such reactors; this guards hand-built models.
    """


class BodyPlan:
    __slots__ = ("body", "nodes", "kinds", "indegree", "dependents", "roots", "subplans")

    def __init__(self, body: model.Body, where: str) -> None:
        self.body = body
        nodes = body.nodes
        self.nodes = nodes
        index: dict[str, int] = {}
        for i, node in enumerate(nodes):
            if node.name in index:
                raise PlanError(f"{where}: two nodes are named {node.name!r}")
            index[node.name] = i
        self.kinds = tuple(_KIND[type(node)] for node in nodes)
        dependents: list[list[int]] = [[] for _ in nodes]
        indegree = [0] * len(nodes)
        for i, node in enumerate(nodes):
            for dep in dict.fromkeys(node.deps):  # a name listed twice is one dependency
                j = index.get(dep)
                if j is None:
                    continue
                if j == i:
                    raise PlanError(f"{where}: {node.name!r} depends on itself")
                dependents[j].append(i)
                indegree[i] += 1
        self.indegree = tuple(indegree)
        self.dependents = tuple(tuple(d) for d in dependents)
        self.roots = tuple(i for i, n in enumerate(indegree) if n == 0)
        _check_acyclic(self, where)
        self.subplans: tuple[BodyPlan | tuple[BodyPlan | None, ...] | None, ...] = tuple(
            _subplan(node, where) for node in nodes
        )


def _subplan(node: model.Node, where: str) -> BodyPlan | tuple[BodyPlan | None, ...] | None:
    if isinstance(node, model.Switch):
        cases = tuple(BodyPlan(case.body, f"{where}.{node.name}") for case in node.cases)
        default = BodyPlan(node.default, f"{where}.{node.name}") if node.default is not None else None
        return cases + (default,)
    if isinstance(node, model.Map):
        return BodyPlan(node.body, f"{where}.{node.name}")
    return None


def _check_acyclic(plan: BodyPlan, where: str) -> None:
    waiting = list(plan.indegree)
    ready = list(plan.roots)
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for j in plan.dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if seen != len(plan.nodes):
        stuck = ", ".join(plan.nodes[i].name for i, n in enumerate(waiting) if n)
        raise PlanError(f"{where}: dependency cycle among {stuck}")


_cache: dict[int, tuple[weakref.ref[model.Reactor], BodyPlan]] = {}


def plan_for(reactor: model.Reactor) -> BodyPlan:
    """The (cached) plan of a reactor's body; ``PlanError`` if it cannot run."""
    key = id(reactor)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is reactor:
        return hit[1]
    plan = BodyPlan(reactor.body, reactor.name)
    _cache[key] = (weakref.ref(reactor, functools.partial(_forget, key)), plan)
    return plan


def _forget(key: int, ref: weakref.ref[model.Reactor]) -> None:
    hit = _cache.get(key)
    if hit is not None and hit[0] is ref:
        del _cache[key]
