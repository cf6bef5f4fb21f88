"""Shared helpers of the graph and compensation tests: hand-built reactor graphs, and source checked for codes by line."""

from __future__ import annotations

from bbflow.compiler.checker import check
from bbflow.compiler.analysis.graph import Body, Node, NodeKind, ReactorGraph
from bbflow.compiler.syntax.parser import parse_text
from bbflow.compiler.source import Span


def span(line: int) -> Span:
    return Span("t.flow", line, 5, line, 9)


def node(name: str, line: int, kind: NodeKind = NodeKind.STEP, **kw) -> Node:
    """A node declared on ``line`` (its order too); ``call`` defaults to its name."""
    return Node(name, kind, span(line), order=line, call=kw.pop("call", name), **kw)


def body(nodes: list[Node], *edges: str) -> Body:
    """``edges``: "a>b" means b depends on a."""
    b = Body(nodes)
    by_name = {n.name: n for n in nodes}
    for edge in edges:
        a, c = edge.split(">")
        b.edges[(by_name[a], by_name[c])] = f"uses `{a}`"
    return b


def graph(b: Body, name: str = "R") -> ReactorGraph:
    return ReactorGraph(f"t.{name}", name, span(1), b)


def found_after(prelude: str, text: str) -> list[tuple[str, int]]:
    """Check ``prelude + text`` as one module: (code, line) of every diagnostic, lines counted within ``text``."""
    module, diags = parse_text(prelude + text, "t.flow", "t")
    check([module], diags)
    offset = prelude.count("\n")
    return [(d.code, d.span.line - offset) for d in diags]
