"""Analyses over checked programs: reactor graphs, compensation (undo), routes, graph drawings."""

from bbflow.compiler.analysis.analyses import analyse, build_graph
from bbflow.compiler.analysis.graphviz import FORMATS, GraphError, render_graph

__all__ = ["FORMATS", "GraphError", "analyse", "build_graph", "render_graph"]
