"""Syntax: the lark grammar's parser, error recovery, literal decoding and the AST builder.

Text in, ``ast.Module`` out; every syntax mistake becomes a diagnostic (BBF001/BBF002).
"""

from typing import TYPE_CHECKING

from bbflow.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from bbflow.compiler.syntax.fmt import FormatError, flow_files, format_diff, format_text
    from bbflow.compiler.syntax.parser import flow_parser, parse_module, parse_text

__getattr__ = lazy_exports(__name__, {"fmt": ("FormatError", "flow_files", "format_diff", "format_text"),
                                      "parser": ("flow_parser", "parse_module", "parse_text")})

__all__ = ["FormatError", "flow_files", "flow_parser", "format_diff", "format_text", "parse_module", "parse_text"]
