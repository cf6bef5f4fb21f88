"""Local scopes of reactors and agents: the names an expression can see.

A reactor body declares all its names at once (a step may name a step written
after it: the dependency graph, not the text, orders them), so a name's type
is computed on first use. A name whose type is asked for while it is being
computed is part of a dependency cycle; it gets the error type silently, and
the graph analysis reports the cycle (BBF301).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostics
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import RefKind
from bbflow.compiler.semantic.resolve import duplicate


@attrs.define(eq=False)
class Local:
    kind: RefKind
    name: str
    decl: Any  # the declaring node (Param, StepStmt, ...) or None for implicit names
    ident: ast.Ident | None  # where it is written; None for implicit names (`result`, `args`)
    type: T.Type | None = None
    compute: Callable[[], T.Type] | None = None
    busy: bool = False

    def resolve_type(self) -> T.Type:
        if self.type is None:
            if self.busy or self.compute is None:
                return T.ERROR
            self.busy = True
            try:
                self.type = self.compute()
            finally:
                self.busy = False
        return self.type


class Env:
    """One scope; lookups go outwards through ``parent``."""

    def __init__(self, parent: Env | None = None) -> None:
        self.parent = parent
        self.names: dict[str, Local] = {}

    def lookup(self, name: str) -> Local | None:
        env: Env | None = self
        while env is not None:
            if name in env.names:
                return env.names[name]
            env = env.parent
        return None

    def visible(self, *kinds: RefKind) -> list[str]:
        out: dict[str, None] = {}
        env: Env | None = self
        while env is not None:
            for n, local in env.names.items():
                if not kinds or local.kind in kinds:
                    out.setdefault(n, None)
            env = env.parent
        return list(out)

    def declare(self, local: Local, diags: Diagnostics, what: str = "name") -> bool:
        """Add ``local``; BBF102 if a written name is already visible (no shadowing in bodies)."""
        first = self.lookup(local.name)
        if first is not None and local.ident is not None and first.ident is not None:
            duplicate(diags, what, local.ident, first.ident)
            return False
        self.names[local.name] = local
        return True
