"""``bbflow graph REACTOR``: a reactor's steps and dependencies as Mermaid or Graphviz dot.

Drawn from the same ``ReactorGraph`` the analyses check (``bbflow.compiler.analysis.analyses``):

- a node per step (``name: call``), ``let``, ``switch``/``map`` (a subgraph
  holding its bodies) and ``fail``;
- a node per input of the drawn reactor (``pick: Pose``), with an edge to each
  node that uses it, and one for its ``return``, with an edge from each node or
  input it returns;
- data edges (solid, labelled with nothing) and order edges (``after``:
  solid, labelled ``after``);
- undo edges, dashed, from a step to its undo (its own, or its command's,
  marked ``inherited``, except on an ``irreversible`` step, which is never
  undone); irreversible steps say so;
- a step that composes another reactor holds that reactor's graph as a
  subgraph (once per step; a reactor composed inside itself is not expanded again,
  nor one that would be more than ``DEEPEST_BOX`` subgraphs deep).

Node ids are generated (``n1``, ``n2``, ...); labels are escaped for each
format, so no name or string can break the output.
"""

from __future__ import annotations

import attrs

from bbflow.compiler import ast
from bbflow.compiler.analysis.analyses import build_graph
from bbflow.compiler.analysis.graph import Body, Node, NodeKind, ReactorGraph
from bbflow.compiler.diagnostics.suggest import closest
from bbflow.compiler.semantic.facts import Facts

FORMATS = ("mermaid", "dot")
#: how many reactors an unknown name's error lists
LISTED = 20


class GraphError(Exception):
    """No such reactor, or an ambiguous name."""


def find_reactor(facts: Facts, name: str) -> tuple[ast.ReactorDecl, ast.Module]:
    """The reactor called ``name`` (qualified, or a short name that is unambiguous) outside ``std``."""
    found = []
    for qualname, decl in facts.decls.items():
        if isinstance(decl, ast.ReactorDecl) and (qualname == name or qualname.rsplit(".", 1)[-1] == name):
            found.append(qualname)
    if not found:
        known = sorted(q for q, d in facts.decls.items() if isinstance(d, ast.ReactorDecl))
        drawable = [q for q, d in facts.decls.items() if isinstance(d, (ast.ReactorDecl, ast.AgentDecl))]
        near = closest(name, {q.rsplit(".", 1)[-1] for q in drawable} | set(drawable), limit=1)  # `graph` draws both
        listed = ", ".join(known[:LISTED]) + (f" and {len(known) - LISTED} more" if len(known) > LISTED else "")
        raise GraphError(f"no reactor named {name!r} (reactors: {listed or 'none'})"
                         + (f"; did you mean {near[0]!r}?" if near else ""))
    if len(found) > 1 and name not in found:
        raise GraphError(f"{name!r} is ambiguous: {', '.join(sorted(found))}")
    qualname = name if name in found else found[0]
    return facts.decls[qualname], facts.modules[qualname.rsplit(".", 1)[0]]


def render_graph(facts: Facts, name: str, fmt: str = "mermaid") -> str:
    """The graph of reactor ``name`` in ``fmt`` (``mermaid`` or ``dot``)."""
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    decl, module = find_reactor(facts, name)
    drawing = _Drawing(facts)
    graph = build_graph(decl, facts, module)
    drawing.reactor(graph, (decl.name.name,))
    result = facts.type_of(decl.result) if decl.result is not None else None
    drawing.ends(graph, f"return: {result}" if result is not None else "return")
    return drawing.mermaid() if fmt == "mermaid" else drawing.dot()


#: composed reactors are drawn inside their steps until boxes are this deep; a deeper one is drawn as
#: its step only (a chain of hundreds of reactors composing the next cannot be read as boxes anyway)
DEEPEST_BOX = 48


@attrs.define
class _Box:
    id: str
    label: str
    children: list[_Box | str] = attrs.Factory(list)  # boxes and node ids
    depth: int = 1


@attrs.define
class _Drawing:
    """Format-neutral nodes, edges and nested boxes, then written as Mermaid or dot."""

    facts: Facts
    nodes: dict[str, tuple[str, str]] = attrs.Factory(dict)  # id -> (label, shape: step|let|control|undo|fail)
    edges: list[tuple[str, str, str, bool]] = attrs.Factory(list)  # (from, to, label, dashed)
    boxes: list[_Box] = attrs.Factory(list)
    #: id(Node) -> its node id
    drawn: dict[int, str] = attrs.Factory(dict)
    _count: int = 0

    def new_id(self, prefix: str = "n") -> str:
        self._count += 1
        return f"{prefix}{self._count}"

    def reactor(self, graph: ReactorGraph, stack: tuple[str, ...], box: _Box | None = None) -> None:
        self.body(graph.body, graph, stack, box)

    def ends(self, graph: ReactorGraph, returned: str) -> None:
        """The drawn reactor's inputs, each with an edge to what uses it, and its `return`, with an edge
        from what it returns (after the body, so that the body's node ids do not depend on them)."""
        inputs: dict[str, str] = {}
        for param in graph.params:
            inputs[param.partition(":")[0]] = nid = self.new_id("i")
            self.nodes[nid] = (param, "input")
        for node in graph.nodes():
            for name in (n for n in inputs if n in node.inputs):
                self.edges.append((inputs[name], self.drawn[id(node)], "", False))
        if graph.returns is not None:
            rid = self.new_id("r")
            self.nodes[rid] = (returned, "return")
            for used in graph.returns:
                self.edges.append((inputs[used] if isinstance(used, str) else self.drawn[id(used)], rid, "", False))

    def body(self, body: Body, graph: ReactorGraph, stack: tuple[str, ...], box: _Box | None) -> dict[int, str]:
        ids: dict[int, str] = {}
        for node in body.nodes:
            ids[id(node)] = self.node(node, graph, stack, box)
        for (src, dst), why in body.edges.items():
            label = "after" if why.startswith("after ") else ""
            if src.kind is NodeKind.FAIL or dst.kind is NodeKind.FAIL:
                label = ""
            self.edges.append((ids[id(src)], ids[id(dst)], label, False))
        return ids

    def node(self, node: Node, graph: ReactorGraph, stack: tuple[str, ...], box: _Box | None) -> str:
        nid = self.drawn[id(node)] = self.new_id()
        holder = box.children if box is not None else None
        if node.kind is NodeKind.STEP:
            label = f"{node.name}: {node.call}"
            if node.irreversible:
                label += " (irreversible)"
            self.nodes[nid] = (label, "step")
            if node.reactor is not None:
                inner = self._composed(node, stack)
                if inner is not None and box is not None and box.depth >= DEEPEST_BOX:
                    self.nodes[nid] = (f"{label} (not drawn: {DEEPEST_BOX} boxes deep)", "step")
                elif inner is not None:
                    sub = _Box(self.new_id("g"), f"{node.name}: {inner[0].name}", depth=_depth(box))
                    self._place(sub, box)
                    self.reactor(inner[0], inner[1], sub)
                    self.edges.append((nid, sub.id, "runs", False))
            if node.undo or (node.default_undo and not node.irreversible):  # an irreversible step is never undone
                uid = self.new_id("u")
                label = f"undo {node.undo_call}()"
                self.nodes[uid] = (label if node.undo else f"{label} (inherited)", "undo")
                self.edges.append((nid, uid, "undo", True))
                self._place(uid, box)
        elif node.kind in (NodeKind.SWITCH, NodeKind.MAP):
            self.nodes[nid] = (f"{node.kind.value} {node.name}", "control")
            for i, inner_body in enumerate(node.bodies):
                if node.kind is NodeKind.SWITCH:
                    case = node.cases[i] if i < len(node.cases) else str(i + 1)
                    title = f"{node.name}: default" if case == "default" else f"{node.name}: case {case}"
                else:
                    title = f"{node.name}: each item"
                sub = _Box(self.new_id("g"), title, depth=_depth(box))
                self._place(sub, box)
                self.body(inner_body, graph, stack, sub)
                self.edges.append((nid, sub.id, "", False))
        elif node.kind is NodeKind.LET:
            self.nodes[nid] = (f"let {node.name}", "let")
        else:
            self.nodes[nid] = ("fail", "fail")
        if holder is not None:
            holder.append(nid)
        return nid

    def _composed(self, node: Node, stack: tuple[str, ...]) -> tuple[ReactorGraph, tuple[str, ...]] | None:
        assert node.reactor is not None
        decl = self.facts.decls.get(node.reactor)
        module = self.facts.modules.get(node.reactor.rsplit(".", 1)[0])
        if not isinstance(decl, ast.ReactorDecl) or module is None or node.reactor in stack:
            return None
        return build_graph(decl, self.facts, module), (*stack, node.reactor)

    def _place(self, item: _Box | str, box: _Box | None) -> None:
        if box is not None:
            box.children.append(item)
        elif isinstance(item, _Box):
            self.boxes.append(item)

    # --- writers ----------------------------------------------------------------------

    def mermaid(self) -> str:
        out = ["flowchart TD"]
        shapes = {"step": ("[", "]"), "let": ("[/", "/]"), "control": ("{{", "}}"), "undo": ("([", "])"),
                  "fail": ("((", "))"), "input": ("[/", "\\]"), "return": ("[\\", "/]")}
        inside = {c for b in self._all_boxes() for c in b.children if isinstance(c, str)}
        for nid, (label, shape) in self.nodes.items():
            if nid not in inside:
                left, right = shapes[shape]
                out.append(f"    {nid}{left}\"{mermaid_text(label)}\"{right}")

        def box(b: _Box, depth: int) -> None:
            pad = "    " * depth
            out.append(f"{pad}subgraph {b.id}[\"{mermaid_text(b.label)}\"]")
            for c in b.children:
                if isinstance(c, _Box):
                    box(c, depth + 1)
                else:
                    label, shape = self.nodes[c]
                    left, right = shapes[shape]
                    out.append(f"{pad}    {c}{left}\"{mermaid_text(label)}\"{right}")
            out.append(f"{pad}end")

        for b in self.boxes:
            box(b, 1)
        for src, dst, label, dashed in self.edges:
            arrow = "-.->" if dashed else "-->"
            text = f"|{mermaid_text(label)}|" if label else ""
            out.append(f"    {src} {arrow}{text} {dst}")
        return "\n".join(out) + "\n"

    def dot(self) -> str:
        font = 'fontname="Helvetica"'
        out = ["digraph reactor {", "    compound=true;", "    rankdir=TB;", f"    graph [{font}];",
               f"    node [shape=box, {font}];", f"    edge [{font}];"]
        shapes = {"step": "box", "let": "parallelogram", "control": "hexagon", "undo": "box", "fail": "doublecircle",
                  "input": "trapezium", "return": "invtrapezium"}
        boxes = {b.id: b for b in self._all_boxes()}
        inside = {c for b in boxes.values() for c in b.children if isinstance(c, str)}

        def node_line(nid: str, pad: str) -> str:
            label, shape = self.nodes[nid]
            style = ", style=\"rounded,dashed\"" if shape == "undo" else ""
            return f"{pad}{nid} [label={dot_text(label)}, shape={shapes[shape]}{style}];"

        for nid in self.nodes:
            if nid not in inside:
                out.append(node_line(nid, "    "))

        def box(b: _Box, depth: int) -> None:
            pad = "    " * depth
            out.append(f"{pad}subgraph cluster_{b.id} {{")
            out.append(f"{pad}    label={dot_text(b.label)};")
            if _first_node(b) == b.id:
                out.append(f"{pad}    {b.id} [label=\"\", shape=point, style=invis];")
            for c in b.children:
                if isinstance(c, _Box):
                    box(c, depth + 1)
                else:
                    out.append(node_line(c, pad + "    "))
            out.append(f"{pad}}}")

        for b in self.boxes:
            box(b, 1)
        for src, dst, label, dashed in self.edges:
            attrs_ = []
            if dst in boxes:  # into a cluster: to a node inside it, clipped at the cluster's border
                attrs_.append(f"lhead=cluster_{dst}")
                dst = _first_node(boxes[dst])
            if label:
                attrs_.append(f"label={dot_text(label)}")
            if dashed:
                attrs_.append("style=dashed")
            tail = f" [{', '.join(attrs_)}]" if attrs_ else ""
            out.append(f"    {src} -> {dst}{tail};")
        out.append("}")
        return "\n".join(out) + "\n"

    def _all_boxes(self) -> list[_Box]:
        out, stack = [], list(self.boxes)
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(c for c in b.children if isinstance(c, _Box))
        return out


def _depth(outer: _Box | None) -> int:
    """The depth of a box inside ``outer`` (None: at the top)."""
    return 1 if outer is None else outer.depth + 1


def _first_node(box: _Box) -> str:
    """A node inside ``box``; a box without one holds an invisible point named as the box."""
    for c in box.children:
        found = c if isinstance(c, str) else _first_node(c)
        if found != (c.id if isinstance(c, _Box) else None):
            return found
    return box.id


def mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: quotes and markup characters as entity codes."""
    return "".join(f"#{ord(c)};" if c in "\"#<>|[]{}()`\n\r" else c for c in text)


def dot_text(text: str) -> str:
    """A dot string literal."""
    escaped = text.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "")
    return f"\"{escaped}\""
