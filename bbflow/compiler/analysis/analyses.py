"""The analyses that run after names and types: dependency graph, compensation, routes.

``analyse(facts, diags)`` is called by the checker once names and types are
known. It builds a ``ReactorGraph`` for every reactor from the AST and the
facts (the adapter below), summarises composed reactors once for the whole
program, and runs the graph (BBF301/303/304), composition (BBF305), compensation (BBF401-404) and
route (BBF501-505) checks.

No cascades: a reactor in a broken module, or with an error of its own from
the earlier passes (an unknown name, an ill-typed value), is not analysed; a
composed reactor that was not analysed counts as having no effect.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator

import attrs

from bbflow.compiler import ast
from bbflow.compiler.analysis.compensation import ReactorSummary, check_compensation, check_useless_undo, summarise
from bbflow.compiler.analysis.composition import check_composition_cycles
from bbflow.compiler.analysis.graph import (
    Body,
    Category,
    Effect,
    Node,
    NodeKind,
    ReactorGraph,
    UndoRef,
    check_category_conflicts,
    check_cycles,
    check_unused,
)
from bbflow.compiler.analysis.routes import check_routes
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.semantic.facts import CallKind, Facts, RefKind
from bbflow.compiler.semantic.modules import is_std

#: references that are data dependencies (on a node of some body)
_NODE_REFS = (RefKind.STEP, RefKind.LET, RefKind.SWITCH, RefKind.MAP)


def analyse(facts: Facts, diags: Diagnostics, only: tuple[set[str], set[ast.ReactorDecl]] | None = None) -> None:
    """Run every analysis over the checked program, adding diagnostics to ``diags``.

    ``only``: (the modules whose bodies were checked, the other reactors checked because they
    compose): the analyses run on those, and report on the modules only."""
    graphs: dict[str, ReactorGraph] = {}
    reported: list[ReactorGraph] = []
    errors = _error_lines(diags)
    for module in facts.modules.values():
        if module.name in facts.broken:
            continue
        whole = only is None or module.name in only[0]
        for decl in module.decls:
            if not isinstance(decl, ast.ReactorDecl) or not (whole or decl in only[1]):  # type: ignore[index]
                continue
            if not _has_errors(decl, errors.get(module.file, [])):
                graph = build_graph(decl, facts, module)
                graphs[graph.qualname] = graph
                if whole and not is_std(module.name):
                    reported.append(graph)
    summaries = summarise(graphs)
    check_composition_cycles(graphs, {graph.qualname for graph in reported}, diags)
    for graph in reported:
        check_reactor(graph, summaries, diags)
    check_routes(facts, diags, None if only is None else only[0])


def check_reactor(graph: ReactorGraph, summaries: dict[str, ReactorSummary], diags: Diagnostics) -> None:
    """The graph and compensation checks of one reactor; ordering checks need an acyclic graph."""
    check_unused(graph, diags)
    check_useless_undo(graph, summaries, diags)
    if not check_cycles(graph, diags):
        return

    def categories(step: Node) -> frozenset[Category]:
        if step.effect is Effect.COMPOSED and step.reactor in summaries:
            return summaries[step.reactor].categories
        return frozenset({step.category}) if step.category else frozenset()

    check_category_conflicts(graph, categories, diags)
    check_compensation(graph, summaries, diags)


def _error_lines(diags: Diagnostics) -> dict[str, list[int]]:
    """The lines with an error, sorted, per file (so that each reactor is looked up in log time)."""
    lines: dict[str, list[int]] = {}
    for d in diags:
        if d.is_error:
            lines.setdefault(d.span.file, []).append(d.span.line)
    return {file: sorted(found) for file, found in lines.items()}


def _has_errors(decl: ast.ReactorDecl, error_lines: list[int]) -> bool:
    at = bisect.bisect_left(error_lines, decl.span.line)
    return at < len(error_lines) and error_lines[at] <= decl.span.end_line


# --- the adapter: AST + facts -> ReactorGraph ----------------------------------------


def build_graph(decl: ast.ReactorDecl, facts: Facts, module: ast.Module) -> ReactorGraph:
    """The graph of one reactor, from its AST and the checker's facts."""
    return _Builder(facts).build(decl, module)


@attrs.define
class _Builder:
    facts: Facts
    #: id(statement) -> its node
    nodes: dict[int, Node] = attrs.Factory(dict)
    #: the nodes named by statements, for `after`
    used: set[int] = attrs.Factory(set)
    order: int = 0
    #: id(node) -> the parameters it uses; what the reactor's own `return` uses
    inputs: dict[int, dict[str, None]] = attrs.Factory(dict)
    returns: dict[Node | str, None] | None = None

    def build(self, decl: ast.ReactorDecl, module: ast.Module) -> ReactorGraph:
        body = self._body(decl.body)
        self._link(decl.body, [])
        for node in self.nodes.values():
            node.used = id(node) in self.used
            node.inputs = tuple(self.inputs.get(id(node), ()))
        qualname = self.facts.qualnames.get(decl, f"{module.name}.{decl.name.name}")
        params = tuple(f"{p.name.name}: {self.facts.type_of(p.type) or '?'}" for p in decl.params)
        return ReactorGraph(qualname, decl.name.name, decl.span, body, self.facts.robots_of.get(decl), params,
                            None if self.returns is None else tuple(self.returns))

    # first pass: the nodes, in source order

    def _body(self, block: ast.Block) -> Body:
        nodes = []
        for stmt in block.stmts:
            node = self._node(stmt)
            if node is not None:
                nodes.append(node)
        body = Body(nodes)
        for end in (n for n in nodes if n.kind is NodeKind.FAIL):
            for node in nodes:
                if node is not end:
                    body.edges[(node, end)] = "`fail` ends the body"
        return body

    def _node(self, stmt: ast.ReactorStmt) -> Node | None:
        if isinstance(stmt, ast.ReturnStmt):
            return None
        self.order += 1
        order = self.order
        if isinstance(stmt, ast.StepStmt):
            node = self._step(stmt, order)
        elif isinstance(stmt, ast.LetStmt):
            node = Node(stmt.name.name, NodeKind.LET, stmt.span, order)
        elif isinstance(stmt, ast.SwitchStmt):
            blocks = [c.body for c in stmt.cases] + ([stmt.default] if stmt.default else [])
            cases = [", ".join(_value_text(v) for v in c.values) for c in stmt.cases]
            node = Node(stmt.name.name, NodeKind.SWITCH, stmt.span, order,
                        bodies=tuple(self._body(b) for b in blocks),
                        cases=(*cases, *(["default"] if stmt.default else [])))
        elif isinstance(stmt, ast.MapStmt):
            node = Node(stmt.name.name, NodeKind.MAP, stmt.span, order, bodies=(self._body(stmt.body),),
                        concurrency=stmt.concurrency.value if stmt.concurrency else 1)
        else:
            node = Node("fail", NodeKind.FAIL, stmt.span, order)
        self.nodes[id(stmt)] = node
        return node

    def _step(self, stmt: ast.StepStmt, order: int) -> Node:
        target = self.facts.call(stmt.call)
        own = stmt.modifier(ast.UndoMod)
        node = Node(stmt.name.name, NodeKind.STEP, stmt.span, order, call=_callee_text(stmt.call.callee),
                    undo=own is not None,
                    irreversible=stmt.modifier(ast.IrreversibleMod) is not None,
                    fallback=stmt.modifier(ast.FallbackMod) is not None)
        if target is None:
            node.effect = Effect.UNKNOWN
        elif target.kind is CallKind.REACTOR:
            node.effect, node.reactor = Effect.COMPOSED, target.qualname
        elif target.kind in (CallKind.COMMAND, CallKind.ACTION, CallKind.BUILTIN):
            node.effect = Effect.LEAF if target.effectful else Effect.NONE
            node.pure_read = not target.effectful
            node.default_undo = target.default_undo is not None
            if target.kind is CallKind.COMMAND and target.category and (target.limit or 1) == 1:
                node.category = (target.qualname.rpartition(".")[0], target.category)
        if isinstance(own, ast.UndoMod):
            node.undo_call = _callee_text(own.call.callee)
            undo = self.facts.call(own.call)
            if undo is not None and undo.kind is CallKind.REACTOR:
                node.undo_reactor, node.undo_span = undo.qualname, own.span
        elif target is not None and target.default_undo is not None:
            node.undo_call = _callee_text(target.default_undo.callee)
        return node

    # second pass: edges, uses and undo values

    def _link(self, block: ast.Block, path: list[Node]) -> None:
        """Edges from the statements of ``block``; ``path``: the switch/map nodes around it."""
        for stmt in block.stmts:
            node = self.nodes.get(id(stmt))
            here = path + [node] if node is not None else path
            if isinstance(stmt, ast.ReturnStmt) and not path:
                self.returns = {}
            for expr, self_ok in _own_exprs(stmt):
                for name in _value_names(expr, self.facts):
                    self._reference(name, stmt, here, self_ok)
            if isinstance(stmt, ast.StepStmt):
                self._after(stmt, here)
                undo = stmt.modifier(ast.UndoMod)
                if undo is not None:
                    refs = []
                    for name in _value_names(undo.call, self.facts):
                        target = self._target(name)
                        if target is not None:
                            if target is not node:
                                self.used.add(id(target))
                            refs.append(UndoRef(name.ident.name, name.span, target))
                    here[-1].undo_refs = tuple(refs)  # here[-1] is this step's node
            for inner in _blocks(stmt):
                self._link(inner, here)

    def _target(self, name: ast.Name) -> Node | None:
        ref = self.facts.ref(name)
        if ref is None or ref.kind not in _NODE_REFS or ref.decl is None:
            return None
        return self.nodes.get(id(ref.decl))

    def _reference(self, name: ast.Name, stmt: ast.ReactorStmt, path: list[Node], self_ok: bool) -> None:
        target = self._target(name)
        returned = isinstance(stmt, ast.ReturnStmt) and not path
        if target is None:
            ref = self.facts.ref(name)
            if ref is not None and ref.kind is RefKind.PARAM:
                if returned:
                    assert self.returns is not None
                    self.returns[name.ident.name] = None
                elif path:
                    self.inputs.setdefault(id(path[-1]), {})[name.ident.name] = None
            return
        if returned:
            assert self.returns is not None
            self.returns[target] = None
        if target is self.nodes.get(id(stmt)):
            if self_ok:
                return  # a wait_event's `where` names the event by the step's name
        else:
            self.used.add(id(target))
        self._edge(target, path, f"uses `{name.ident.name}`")

    def _after(self, stmt: ast.StepStmt, path: list[Node]) -> None:
        after = stmt.modifier(ast.AfterMod)
        if after is None:
            return
        for ident in after.names:
            target = self._after_target(ident, path)
            if target is not None:
                if target is not path[-1]:
                    self.used.add(id(target))
                self._edge(target, path, f"after {ident.name}")

    def _after_target(self, ident: ast.Ident, path: list[Node]) -> Node | None:
        """The node an `after` name orders on: the checker's Ref (constant time), else a search by name."""
        ref = self.facts.refs.get(ident)
        if ref is not None and ref.kind in _NODE_REFS and ref.decl is not None:
            node = self.nodes.get(id(ref.decl))
            if node is not None:
                return node
        return _lookup(ident.name, path)

    @staticmethod
    def _edge(target: Node, path: list[Node], why: str) -> None:
        """An edge from ``target`` to the node of ``path`` in the same body as ``target``."""
        for node in path:
            if node.body is target.body:
                assert node.body is not None
                node.body.edges.setdefault((target, node), why)
                return


def _lookup(name: str, path: list[Node]) -> Node | None:
    """The node called ``name`` seen from the innermost body of ``path`` outwards."""
    for node in reversed(path):
        assert node.body is not None
        for candidate in node.body.nodes:
            if candidate.name == name and candidate.kind is not NodeKind.FAIL:
                return candidate
    return None


def _own_exprs(stmt: ast.ReactorStmt) -> Iterator[tuple[ast.Expr, bool]]:
    """The expressions a statement evaluates before or while it runs (not its undo, not its bodies).

    The flag says whether a reference to the statement itself is allowed there.
    """
    if isinstance(stmt, ast.StepStmt):
        yield stmt.call, False
        for mod in stmt.modifiers:
            if isinstance(mod, ast.WhenMod):
                yield mod.cond, False
            elif isinstance(mod, ast.FallbackMod):
                yield mod.value, False
            elif isinstance(mod, ast.WhereMod):
                yield mod.cond, True
    elif isinstance(stmt, ast.LetStmt):
        yield stmt.value, False
    elif isinstance(stmt, ast.SwitchStmt):
        yield stmt.subject, False
        for case in stmt.cases:
            for value in case.values:
                yield value, False
    elif isinstance(stmt, ast.MapStmt):
        yield stmt.over, False
    elif isinstance(stmt, ast.ReturnStmt):
        yield stmt.value, False


def _blocks(stmt: ast.ReactorStmt) -> list[ast.Block]:
    if isinstance(stmt, ast.SwitchStmt):
        return [c.body for c in stmt.cases] + ([stmt.default] if stmt.default else [])
    if isinstance(stmt, ast.MapStmt):
        return [stmt.body]
    return []


def _value_names(expr: ast.Expr, facts: Facts) -> Iterator[ast.Name]:
    """Every ``Name`` in ``expr`` that may refer to a value (callees and enum members left out)."""
    stack: list[object] = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Name):
            yield e
        elif isinstance(e, ast.Attr):
            if facts.ref(e) is None:  # `Grip.open` resolves as a whole
                stack.append(e.obj)
        elif isinstance(e, ast.CallExpr):
            stack.extend(a.value for a in e.args)
        elif isinstance(e, ast.Index):
            stack.extend((e.obj, e.index))
        elif isinstance(e, ast.Slice):
            stack.extend(b for b in (e.obj, e.start, e.end) if b is not None)
        elif isinstance(e, ast.Unary):
            stack.append(e.operand)
        elif isinstance(e, ast.Binary):
            stack.extend((e.left, e.right))
        elif isinstance(e, ast.ListExpr):
            stack.extend(e.items)
        elif isinstance(e, ast.RecordExpr):
            stack.extend(f.value for f in e.fields)


def _callee_text(callee: ast.Expr) -> str:
    if isinstance(callee, ast.Name):
        return callee.ident.name
    if isinstance(callee, ast.Attr):
        return f"{_callee_text(callee.obj)}.{callee.name.name}"
    return "?"


def _value_text(expr: ast.Expr) -> str:
    """A case value as written: a literal, a name or an enum member (``Grip.open``)."""
    if isinstance(expr, ast.StrLit):
        return json.dumps(expr.value, ensure_ascii=False)
    if isinstance(expr, ast.BoolLit):
        return "true" if expr.value else "false"
    if isinstance(expr, (ast.IntLit, ast.FloatLit)):
        return str(expr.value)
    if isinstance(expr, ast.NoneLit):
        return "none"
    if isinstance(expr, ast.Name):
        return expr.ident.name
    if isinstance(expr, ast.Attr):
        return f"{_value_text(expr.obj)}.{expr.name.name}"
    if isinstance(expr, ast.Unary) and expr.op == "-" and isinstance(expr.operand, (ast.IntLit, ast.FloatLit)):
        return f"-{expr.operand.value}"
    return "..."
