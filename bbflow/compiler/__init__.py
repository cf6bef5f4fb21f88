"""The bbflow compiler: ``.flow`` sources in, diagnostics and generated Python out.

Stages, each a sub-package: ``syntax`` (parse) -> ``semantic`` (resolve, type-check) ->
``analysis`` (reactor graphs, undo, routes) -> ``codegen``; ``diagnostics`` holds what every
stage reports. ``pipeline`` runs the stages over files through the ``cache``; ``checker``
runs the semantic passes and analyses over a set of modules.

This module is the compiler's public API: the command line and the language server use
only the names below.
"""

from bbflow.compiler import ast
from bbflow.compiler.analysis.graphviz import GraphError, render_graph
from bbflow.compiler.codegen.generate import GeneratedModule
from bbflow.compiler.diagnostics.codes import CODES, Code, explain, normalize
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label, Severity
from bbflow.compiler.diagnostics.render_text import render_text
from bbflow.compiler.pipeline import CompileResult, InputError, compile_paths
from bbflow.compiler.report import Report, report, summary
from bbflow.compiler.source import SourceFile, Span
from bbflow.compiler.syntax.fmt import FormatError, flow_files, format_diff, format_text

__all__ = [
    "CODES", "Code", "CompileResult", "Diagnostic", "Diagnostics", "GeneratedModule",
    "FormatError", "GraphError", "InputError", "Label", "Report", "Severity", "SourceFile", "Span",
    "ast", "compile_paths", "explain", "flow_files", "format_diff", "format_text", "normalize", "render_graph", "render_text", "report", "summary",
]
