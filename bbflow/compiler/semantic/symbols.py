"""Module-level symbols and the namespace of one module.

A module sees, in this order: its own declarations, what it imports, and
``std.prelude`` (imported implicitly, like Python's builtins, so a module may
reuse a prelude name for its own declaration). Signals are not names: they
live in one program-wide table keyed by their dotted type.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from bbflow.compiler import ast


class SymKind(str, enum.Enum):
    TYPE = "type"  # `type Name = T`
    ENUM = "enum"
    ROBOT = "robot"
    ACTION = "action"
    REACTOR = "reactor"
    AGENT = "agent"
    MODULE = "module"  # `import cell.arm as arm`: ``decl`` is the module's dotted name
    UNKNOWN = "unknown"  # an import that failed (already reported): uses of it stay silent


#: which symbol kinds a declaration node makes
DECL_KINDS: dict[type, SymKind] = {
    ast.TypeAlias: SymKind.TYPE,
    ast.EnumDecl: SymKind.ENUM,
    ast.RobotDecl: SymKind.ROBOT,
    ast.ActionDecl: SymKind.ACTION,
    ast.ReactorDecl: SymKind.REACTOR,
    ast.AgentDecl: SymKind.AGENT,
}


@attrs.frozen(slots=True)
class Symbol:
    kind: SymKind
    name: str  # as bound in the module that sees it
    qualname: str  # `cell.arm.Pose`; a module alias: the module's name
    decl: Any  # the AST declaration; for MODULE, the module's dotted name
    module: str  # the module that declares it


@attrs.define
class ModuleScope:
    """The names one module can see (see the module docstring for the order)."""

    module: ast.Module
    own: dict[str, Symbol] = attrs.Factory(dict)
    imported: dict[str, Symbol] = attrs.Factory(dict)
    prelude: dict[str, Symbol] = attrs.Factory(dict)
    #: the module had syntax errors: what failed to parse may be missing, so
    #: names that do not resolve are not reported again
    broken: bool = False
    _names: dict[tuple[Any, ...], list[str]] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @property
    def name(self) -> str:
        return self.module.name

    def lookup(self, name: str) -> Symbol | None:
        return self.own.get(name) or self.imported.get(name) or self.prelude.get(name)

    def names(self, *kinds: SymKind) -> list[str]:
        """Every name visible here (of the given kinds), for "did you mean" (remembered while the tables
        keep their sizes: an unknown name in each of thousands of places must not cost a scan each)."""
        key = (kinds, len(self.own), len(self.imported), len(self.prelude))
        if key not in self._names:
            self._names[key] = self._collect(kinds)
        return self._names[key]

    def _collect(self, kinds: tuple[SymKind, ...]) -> list[str]:
        seen: dict[str, None] = {}
        for table in (self.own, self.imported, self.prelude):
            for n, sym in table.items():
                if not kinds or sym.kind in kinds:
                    seen.setdefault(n, None)
        return list(seen)
