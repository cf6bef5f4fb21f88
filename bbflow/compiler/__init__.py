"""The bbflow compiler: ``.flow`` sources in, diagnostics and generated Python out.

Stages, each a sub-package: ``syntax`` (parse) -> ``semantic`` (resolve, type-check) ->
``analysis`` (reactor graphs, undo, routes) -> ``codegen``; ``diagnostics`` holds what every
stage reports. ``pipeline`` runs the stages over files through the ``cache``; ``checker``
runs the semantic passes and analyses over a set of modules.

This module is the compiler's public API: the command line and the language server use
only the names below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bbflow.compiler import ast
    from bbflow.compiler.analysis.graphviz import GraphError, render_graph
    from bbflow.compiler.codegen.generate import GeneratedModule
    from bbflow.compiler.diagnostics.codes import CODES, Code, explain, normalize
    from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics, Label, Severity
    from bbflow.compiler.diagnostics.render_text import render_text
    from bbflow.compiler.pipeline import CompileResult, InputError, compile_paths
    from bbflow.compiler.reports import Report, report, summary
    from bbflow.compiler.source import SourceFile, Span
    from bbflow.compiler.syntax.fmt import FormatError, flow_files, format_diff, format_text

# Where each public name lives (the same as the imports above, which are for type checkers).
# They are imported on first use, so that `bbflow explain` or a program that only needs the
# codes does not pay for the parser and the analyses.
_PUBLIC = {
    "": ("ast",),
    "analysis.graphviz": ("GraphError", "render_graph"),
    "codegen.generate": ("GeneratedModule",),
    "diagnostics.codes": ("CODES", "Code", "explain", "normalize"),
    "diagnostics.core": ("Diagnostic", "Diagnostics", "Label", "Severity"),
    "diagnostics.render_text": ("render_text",),
    "pipeline": ("CompileResult", "InputError", "compile_paths"),
    "reports": ("Report", "report", "summary"),
    "source": ("SourceFile", "Span"),
    "syntax.fmt": ("FormatError", "flow_files", "format_diff", "format_text"),
}
_HOME = {name: home for home, names in _PUBLIC.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _HOME[name]
    value = importlib.import_module(f"{__name__}.{name}" if not home else f"{__name__}.{home}")
    if home:
        value = getattr(value, name)
    globals()[name] = value
    return value


__all__ = [
    "CODES",
    "Code",
    "CompileResult",
    "Diagnostic",
    "Diagnostics",
    "FormatError",
    "GeneratedModule",
    "GraphError",
    "InputError",
    "Label",
    "Report",
    "Severity",
    "SourceFile",
    "Span",
    "ast",
    "compile_paths",
    "explain",
    "flow_files",
    "format_diff",
    "format_text",
    "normalize",
    "render_graph",
    "render_text",
    "report",
    "summary",
]
