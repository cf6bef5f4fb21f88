"""Analyses over checked programs: reactor graphs, compensation (undo), routes, graph drawings."""

from typing import TYPE_CHECKING

from bbflow.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from bbflow.compiler.analysis.analyses import analyse, build_graph
    from bbflow.compiler.analysis.graphviz import FORMATS, GraphError, render_graph

# Imported on first use: a check runs the analyses but draws no graph.
__getattr__ = lazy_exports(__name__, {"analyses": ("analyse", "build_graph"),
                                      "graphviz": ("FORMATS", "GraphError", "render_graph")})

__all__ = ["FORMATS", "GraphError", "analyse", "build_graph", "render_graph"]
