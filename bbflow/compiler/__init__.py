"""The bbflow compiler: ``.flow`` sources in, diagnostics and generated Python out.

Stages, each a sub-package: ``syntax`` (parse) -> ``semantic`` (resolve, type-check) ->
``analysis`` (reactor graphs, undo, routes) -> ``codegen``; ``diagnostics`` holds what every
stage reports. ``pipeline`` runs the stages over files through the ``cache``; ``checker``
runs the semantic passes and analyses over a set of modules.

This module is the compiler's public API: the command line and the language server use
only the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bbflow.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from bbflow.compiler import ast
    from bbflow.compiler.analysis.graphviz import GraphError, render_graph
    from bbflow.compiler.analysis.signal_graph import render_agent_graph, render_project_graph
    from bbflow.compiler.codegen.generated import GeneratedModule
    from bbflow.compiler.diagnostics.codes import CODES, Code, explain, normalize
    from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label, Severity
    from bbflow.compiler.diagnostics.render_sarif import render_sarif_failure
    from bbflow.compiler.diagnostics.render_text import render_text
    from bbflow.compiler.pipeline import CompileResult, ParsedTrees, compile_paths
    from bbflow.compiler.reports import Report, report, summary
    from bbflow.compiler.semantic import types
    from bbflow.compiler.semantic.exprs import BUILTIN_FUNCTIONS, WAITS
    from bbflow.compiler.semantic.facts import CallKind, CallTarget, Facts, Ref, RefKind
    from bbflow.compiler.semantic.modules import PRELUDE, STDLIB_FILE, STDLIB_PACKAGE
    from bbflow.compiler.semantic.resolve import BUILTIN_COMMANDS
    from bbflow.compiler.source import SUFFIX, InputError, SourceFile, Span
    from bbflow.compiler.syntax.fmt import FormatError, flow_files, format_diff, format_text, read_flow_file
    from bbflow.compiler.syntax.parser import flow_parser

# Where each public name lives (the same as the imports above, which are for type checkers).
# They are imported on first use, so that `bbflow explain` or a program that only needs the
# codes does not pay for the parser and the analyses.
__getattr__ = lazy_exports(__name__, {
    "": ("ast",),
    "semantic": ("types",),
    "analysis.graphviz": ("GraphError", "render_graph"),
    "analysis.signal_graph": ("render_agent_graph", "render_project_graph"),
    "codegen.generated": ("GeneratedModule",),
    "diagnostics.codes": ("CODES", "Code", "explain", "normalize"),
    "diagnostics.core": ("Diagnostic", "Diagnostics", "Label", "Severity"),
    "diagnostics.render_sarif": ("render_sarif_failure",),
    "diagnostics.render_text": ("render_text",),
    "pipeline": ("CompileResult", "ParsedTrees", "compile_paths"),
    "reports": ("Report", "report", "summary"),
    "semantic.exprs": ("BUILTIN_FUNCTIONS", "WAITS"),
    "semantic.facts": ("CallKind", "CallTarget", "Facts", "Ref", "RefKind"),
    "semantic.modules": ("PRELUDE", "STDLIB_FILE", "STDLIB_PACKAGE"),
    "semantic.resolve": ("BUILTIN_COMMANDS",),
    "source": ("SUFFIX", "InputError", "SourceFile", "Span"),
    "syntax.parser": ("flow_parser",),
    "syntax.fmt": ("FormatError", "flow_files", "format_diff", "format_text", "read_flow_file"),
})


__all__ = [
    "BUILTIN_COMMANDS",
    "BUILTIN_FUNCTIONS",
    "CODES",
    "PRELUDE",
    "STDLIB_FILE",
    "STDLIB_PACKAGE",
    "SUFFIX",
    "WAITS",
    "CallKind",
    "CallTarget",
    "Code",
    "CompileResult",
    "Diagnostic",
    "Diagnostics",
    "Facts",
    "FormatError",
    "GeneratedModule",
    "GraphError",
    "InputError",
    "Label",
    "ParsedTrees",
    "Ref",
    "RefKind",
    "Report",
    "Severity",
    "SourceFile",
    "Span",
    "ast",
    "compile_paths",
    "explain",
    "flow_files",
    "flow_parser",
    "format_diff",
    "format_text",
    "normalize",
    "read_flow_file",
    "render_agent_graph",
    "render_graph",
    "render_project_graph",
    "render_sarif_failure",
    "render_text",
    "report",
    "summary",
    "types",
]
