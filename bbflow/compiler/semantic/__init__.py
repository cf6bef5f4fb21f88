"""Semantics: modules and imports, symbols, name resolution, types and type checking.

The passes record what they learn about the AST in ``Facts`` (side tables keyed by node)
for the analyses and the code generator.
"""

from bbflow.compiler.semantic.exprs import BUILTIN_FUNCTIONS, WAITS
from bbflow.compiler.semantic.facts import CallKind, CallTarget, Facts, Ref, RefKind
from bbflow.compiler.semantic.modules import PRELUDE, STDLIB_FILE, STDLIB_PACKAGE, is_std
from bbflow.compiler.semantic.resolve import BUILTIN_COMMANDS

__all__ = [
    "BUILTIN_COMMANDS", "BUILTIN_FUNCTIONS", "PRELUDE", "STDLIB_FILE", "STDLIB_PACKAGE", "WAITS",
    "CallKind", "CallTarget", "Facts", "Ref", "RefKind", "is_std",
]
