"""Syntax: the lark grammar's parser, error recovery, literal decoding and the AST builder.

Text in, ``ast.Module`` out; every syntax mistake becomes a diagnostic (BBF001/BBF002).
"""

from bbflow.compiler.syntax.parser import flow_parser, parse_module, parse_text

__all__ = ["flow_parser", "parse_module", "parse_text"]
