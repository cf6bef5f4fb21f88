"""What name resolution and type checking establish, for the analyses and codegen.

The resolve/type passes fill a ``Facts`` table; the graph, compensation and
route analyses and the code generator read it and never re-resolve a name.
Tables are keyed by the nodes themselves: AST nodes compare and hash by
identity, so two equal-looking expressions are still two entries.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from bbflow.compiler import ast
from bbflow.compiler.semantic import types as T

#: a node that declares a name with a type (the keys of ``Facts.decl_types``)
Declaring = (
    ast.Param | ast.StateField | ast.LetStmt | ast.StepStmt | ast.SwitchStmt | ast.MapStmt | ast.TypeAlias |
    ast.EnumDecl | ast.EventDecl | ast.SignalDecl | ast.CommandDecl | ast.ActionDecl | ast.ReactorDecl |
    ast.RouteDecl
)


class CallKind(str, enum.Enum):
    COMMAND = "command"  # a command of the reactor's/agent's robot (arm/disarm included)
    ACTION = "action"
    REACTOR = "reactor"  # composition (in a step) or a run (in an agent)
    WAIT_STATE = "wait_state"
    WAIT_EVENT = "wait_event"
    WAIT_SIGNAL = "wait_signal"  # args["signal"]: the signal type waited for
    BUILTIN = "builtin"  # pure builtins: len min max abs round str


@attrs.frozen(slots=True)
class CallTarget:
    """What a ``CallExpr`` calls, resolved.

    ``qualname``: ``module.Robot.command`` for commands, the declaration's
    qualified name for actions and reactors, the builtin's name otherwise.
    ``decl``: the AST declaration (CommandDecl, ActionDecl, ReactorDecl) or None.
    ``args``: the call's arguments by parameter name, defaults not included
    (codegen fills defaults from ``decl``); a wait's argument under "states"
    (a tuple of state names) or "event" (the event name).
    """

    kind: CallKind
    qualname: str
    decl: Any = None
    #: commands: not readonly; actions: not pure; reactors and waits: False here
    #: (a composed reactor's effects are the compensation analysis' business).
    effectful: bool = False
    category: str | None = None
    limit: int | None = None  # the category's limit on the robot (default 1)
    default_undo: ast.CallExpr | None = None  # the command's own `undo`
    args: dict[str, Any] = attrs.Factory(dict)


class RefKind(str, enum.Enum):
    PARAM = "param"  # reactor parameter
    LET = "let"
    STEP = "step"
    SWITCH = "switch"
    MAP = "map"
    ITEM = "item"  # a map's `as ITEM`
    STATE = "state"  # an agent's state field
    BINDING = "binding"  # a route's `as NAME`
    RESULT = "result"  # `result` in then / inherited undo
    ERROR = "error"  # `error` in else
    ARGS = "args"  # `args` in a command's own undo
    ENUM_MEMBER = "enum_member"  # `Grip.open` or a bare `open`
    ROBOT_STATE = "robot_state"  # `idle` in wait_state(idle), or a safety state (`fault`)
    EVENT = "event"  # `force` in wait_event(force)
    INSTANCE = "instance"  # `instance` in an agent: its robot instance's name


@attrs.frozen(slots=True)
class Ref:
    """What a ``Name`` (or, for ``Grip.open``, an ``Attr``) refers to.

    ``decl``: the declaring node (a Param, LetStmt, StepStmt, SwitchStmt,
    MapStmt, StateField, RouteDecl, EnumDecl...) or None for implicit names.
    ``value``: for ENUM_MEMBER / ROBOT_STATE / EVENT, the member/state/event name.
    """

    kind: RefKind
    name: str
    decl: Any = None
    value: str | None = None


@attrs.define
class Facts:
    """The checker's findings for a whole program (all modules, std included)."""

    #: every parsed module by dotted name
    modules: dict[str, ast.Module] = attrs.Factory(dict)
    #: top-level declarations by qualified name ("cell.PickAndPlace", "cell.Pose")
    decls: dict[str, Any] = attrs.Factory(dict)
    #: CallExpr -> CallTarget, for every call that resolved
    calls: dict[ast.CallExpr, CallTarget] = attrs.Factory(dict)
    #: Name or Attr (or the Ident a ``set`` assigns) -> Ref, for every value name that resolved
    refs: dict[ast.Expr | ast.Ident, Ref] = attrs.Factory(dict)
    #: expression or type expression -> its compiler type
    types: dict[ast.Expr | ast.TypeExpr, T.Type] = attrs.Factory(dict)
    #: ReactorDecl or AgentDecl -> qualname of the robot interface it is `on`
    robots_of: dict[ast.ReactorDecl | ast.AgentDecl, str] = attrs.Factory(dict)
    #: declaration (a command too) -> its qualified name
    qualnames: dict[ast.Decl | ast.CommandDecl, str] = attrs.Factory(dict)
    #: ``cancel REACTOR`` -> the qualified name of the reactor it cancels
    cancels: dict[ast.CancelStmt, str] = attrs.Factory(dict)
    #: declaring node -> its compiler type: Param, StateField, LetStmt, StepStmt,
    #: SwitchStmt, MapStmt (the value of the name), TypeAlias, EnumDecl, EventDecl and
    #: SignalDecl (payload), CommandDecl/ActionDecl/ReactorDecl (result), RouteDecl (its
    #: `as NAME` envelope). Type expressions' types are in ``types``.
    decl_types: dict[Declaring, T.Type] = attrs.Factory(dict)
    #: every declared signal by its dotted type (std.prelude's included)
    signals: dict[str, Any] = attrs.Factory(dict)
    #: modules whose errors make them unfit for analyses/codegen
    broken: set[str] = attrs.Factory(set)
    #: modules whose check read the program's signals (beyond their imports: the cache must key them by it)
    signal_readers: set[str] = attrs.Factory(set)

    def call(self, call: ast.CallExpr) -> CallTarget | None:
        return self.calls.get(call)

    def ref(self, node: ast.Name | ast.Attr) -> Ref | None:
        return self.refs.get(node)

    def type_of(self, expr: ast.Expr | ast.TypeExpr) -> T.Type | None:
        return self.types.get(expr)
