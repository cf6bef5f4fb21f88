"""The syntax tree of a ``.flow`` module: frozen, slotted attrs classes.

Every node carries the ``Span`` of the source it came from; names that a
diagnostic may point at are ``Ident`` nodes with spans of their own. Nodes
hold no resolution or type information: later passes keep that in side
tables keyed by node identity (``id(node)``), so the tree stays a pure
description of the text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar, dataclass_transform

import attrs

from bbflow.compiler.source import Span

_C = TypeVar("_C", bound=type)


@dataclass_transform(eq_default=False, frozen_default=True, field_specifiers=(attrs.field,))
def node(cls: _C) -> _C:
    """Decorator of every node: frozen and slotted; equality and hash by identity,
    so that side tables can key on nodes (two equal-looking expressions are
    still two places in the source). ``bbflow.compiler.ast.dump`` compares trees.

    Their repr is ``_repr``, one function for every node: attrs would generate
    and compile one per class at import, a tenth of a check's start-up for
    the nodes alone. (``dataclass_transform`` tells type checkers what
    ``attrs.frozen`` makes of the class.)
    """
    made = attrs.frozen(slots=True, eq=False, repr=False)(cls)
    made.__repr__ = _repr  # type: ignore[assignment,method-assign]
    return made


def _repr(self: object) -> str:
    """``Name(field=value, ...)``, as attrs writes a repr."""
    fields = attrs.fields(type(self))  # type: ignore[arg-type]  # a node: an attrs class
    return f"{type(self).__qualname__}({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in fields)})"


@node
class Ident:
    name: str
    span: Span


@node
class Comment:
    text: str
    span: Span


# --- types ------------------------------------------------------------------------


@node
class NamedType:
    """``float``, ``Pose``, ``arm.Pose``: ``parts`` is the dotted name."""

    parts: tuple[Ident, ...]
    span: Span

    @property
    def dotted(self) -> str:
        return ".".join(p.name for p in self.parts)


@node
class ListType:
    item: TypeExpr
    span: Span


@node
class MapType:
    item: TypeExpr
    span: Span


@node
class OptionalType:
    inner: TypeExpr
    span: Span


@node
class FieldType:
    name: Ident
    type: TypeExpr
    span: Span


@node
class RecordType:
    fields: tuple[FieldType, ...]
    span: Span


TypeExpr = NamedType | ListType | MapType | OptionalType | RecordType


# --- expressions ------------------------------------------------------------------


@node
class IntLit:
    value: int
    span: Span


@node
class FloatLit:
    value: float
    span: Span


@node
class StrLit:
    value: str  # escapes already decoded
    span: Span


@node
class BoolLit:
    value: bool
    span: Span


@node
class NoneLit:
    span: Span


@node
class DurationLit:
    seconds: float
    text: str  # as written: "250ms"
    span: Span


@node
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@node
class FieldInit:
    name: Ident
    value: Expr
    span: Span


@node
class RecordExpr:
    fields: tuple[FieldInit, ...]
    span: Span


@node
class Name:
    ident: Ident
    span: Span


@node
class Attr:
    """``obj.name``: a field, an enum member (``Grip.open``) or a module member."""

    obj: Expr
    name: Ident
    span: Span


@node
class Index:
    obj: Expr
    index: Expr
    span: Span


@node
class Unary:
    op: str  # "-" or "not"
    operand: Expr
    span: Span


@node
class Slice:
    obj: Expr
    start: Expr | None  # `xs[:j]`: none
    end: Expr | None  # `xs[i:]`: none
    span: Span


@node
class Binary:
    op: str  # + - * / == != < <= > >= in, not in, and or ??
    left: Expr
    right: Expr
    span: Span


@node
class Arg:
    """A call argument: ``name: value``, or positional when ``name`` is None."""

    name: Ident | None
    value: Expr
    span: Span


@node
class CallExpr:
    """``callee(args)``; ``callee`` is a ``Name`` or an ``Attr`` (``arm.Inner``)."""

    callee: Expr
    args: tuple[Arg, ...]
    span: Span


Expr = (
    IntLit | FloatLit | StrLit | BoolLit | NoneLit | DurationLit | ListExpr | RecordExpr | Name | Attr | Index | Slice |
    Unary | Binary | CallExpr
)


# --- declarations -----------------------------------------------------------------


@node
class Param:
    name: Ident
    type: TypeExpr
    default: Expr | None
    span: Span


@node
class ImportName:
    name: Ident
    alias: Ident | None
    span: Span


@node
class FromImport:
    """``from cell.arm import Arm, Pose as P``."""

    module: tuple[Ident, ...]
    names: tuple[ImportName, ...]
    span: Span  # starts at the `from` keyword


@node
class ModuleImport:
    """``import cell.arm as arm`` (``alias`` None: bound as the last segment)."""

    module: tuple[Ident, ...]
    alias: Ident | None
    span: Span


@node
class TypeAlias:
    name: Ident
    type: TypeExpr
    span: Span


@node
class EnumDecl:
    name: Ident
    members: tuple[Ident, ...]
    span: Span


@node
class SignalType:
    """A dotted signal type or route pattern, lexed as one token (``pick.requested``, ``cell.**``)."""

    text: str
    span: Span


@node
class SignalDecl:
    type: SignalType
    payload: TypeExpr | None
    span: Span  # starts at the `signal` keyword


@node
class StatesDecl:
    names: tuple[Ident, ...]
    span: Span


@node
class LimitDecl:
    category: Ident
    limit: int
    span: Span


@node
class CommandDecl:
    name: Ident
    params: tuple[Param, ...]
    result: TypeExpr | None
    category: Ident | None
    timeout: DurationLit | None
    readonly: bool
    allowed: tuple[Ident, ...]  # empty: the default (idle)
    undo: CallExpr | None
    span: Span


@node
class EventDecl:
    name: Ident
    payload: TypeExpr | None
    span: Span


@node
class RobotDecl:
    name: Ident
    states: tuple[StatesDecl, ...]
    limits: tuple[LimitDecl, ...]
    commands: tuple[CommandDecl, ...]
    events: tuple[EventDecl, ...]
    span: Span


@node
class ActionDecl:
    name: Ident
    params: tuple[Param, ...]
    result: TypeExpr | None
    pure: bool
    target: StrLit  # "module:function"
    span: Span


# --- reactor bodies ---------------------------------------------------------------


@node
class AfterMod:
    names: tuple[Ident, ...]
    span: Span


@node
class WhenMod:
    cond: Expr
    span: Span


@node
class TimeoutMod:
    duration: DurationLit
    span: Span


@node
class RetryMod:
    attempts: IntLit
    backoff: DurationLit | None
    max: DurationLit | None
    span: Span


@node
class UndoMod:
    call: CallExpr
    span: Span


@node
class IrreversibleMod:
    reason: StrLit
    span: Span


@node
class FallbackMod:
    value: Expr
    span: Span


@node
class WhereMod:
    cond: Expr
    span: Span


Modifier = AfterMod | WhenMod | TimeoutMod | RetryMod | UndoMod | IrreversibleMod | FallbackMod | WhereMod
_M = TypeVar("_M", AfterMod, WhenMod, TimeoutMod, RetryMod, UndoMod, IrreversibleMod, FallbackMod, WhereMod)


@node
class StepStmt:
    name: Ident
    call: CallExpr
    modifiers: tuple[Modifier, ...]  # as written; the parser reports duplicates
    span: Span  # starts at the `step` keyword

    def modifier(self, kind: type[_M]) -> _M | None:
        for m in self.modifiers:
            if isinstance(m, kind):
                return m
        return None


@node
class LetStmt:
    name: Ident
    value: Expr
    span: Span


@node
class ReturnStmt:
    value: Expr
    span: Span


@node
class FailStmt:
    message: StrLit
    span: Span


@node
class CaseClause:
    values: tuple[Expr, ...]
    body: Block
    span: Span


@node
class SwitchStmt:
    name: Ident
    subject: Expr
    cases: tuple[CaseClause, ...]
    default: Block | None
    span: Span


@node
class MapStmt:
    name: Ident
    over: Expr
    item: Ident
    concurrency: IntLit | None
    body: Block
    span: Span


ReactorStmt = StepStmt | LetStmt | SwitchStmt | MapStmt | ReturnStmt | FailStmt


@node
class Block:
    """A reactor body, or the body of a case/default/map. ``stmts`` includes a final return/fail."""

    stmts: tuple[ReactorStmt, ...]
    span: Span


@node
class ReactorOption:
    """``concurrency N`` or ``timeout D`` before the first statement."""

    kind: str  # "concurrency" | "timeout"
    value: IntLit | DurationLit
    span: Span


@node
class ReactorDecl:
    name: Ident
    params: tuple[Param, ...]
    result: TypeExpr | None
    robot: NamedType | None
    options: tuple[ReactorOption, ...]
    body: Block
    span: Span  # starts at the `reactor` keyword


# --- agents -----------------------------------------------------------------------


@node
class StateField:
    name: Ident
    type: TypeExpr
    default: Expr
    span: Span


@node
class SetStmt:
    field: Ident
    value: Expr
    span: Span
    key: Expr | None = None  # `set field[key] = value`: an element of a list or map field


@node
class EmitStmt:
    type: SignalType
    data: RecordExpr | None
    span: Span
    to: Expr | None = None  # `to EXPR`: the robot instance it is addressed to (CloudEvents subject)


@node
class ScheduleStmt:
    type: SignalType
    data: RecordExpr | None
    delay: Expr
    span: Span
    to: Expr | None = None


@node
class RunStmt:
    call: CallExpr
    then: tuple[AgentStmt, ...] | None
    else_: tuple[AgentStmt, ...] | None
    span: Span
    preempt: bool = False  # `run CALL preempt`


@node
class CancelStmt:
    """``cancel REACTOR``: ``reactor`` is the dotted name as written."""

    reactor: tuple[Ident, ...]
    span: Span


@node
class IfStmt:
    cond: Expr
    then: tuple[AgentStmt, ...]
    else_: tuple[AgentStmt, ...] | None
    span: Span


AgentStmt = SetStmt | EmitStmt | ScheduleStmt | RunStmt | CancelStmt | IfStmt


@node
class RouteDecl:
    pattern: SignalType
    bind: Ident | None
    when: Expr | None
    priority: int
    body: tuple[AgentStmt, ...]
    span: Span  # starts at the `on` keyword


@node
class AgentDecl:
    name: Ident
    robot: NamedType | None
    state: tuple[StateField, ...]
    routes: tuple[RouteDecl, ...]
    span: Span


Decl = TypeAlias | EnumDecl | SignalDecl | RobotDecl | ActionDecl | ReactorDecl | AgentDecl
Import = FromImport | ModuleImport


@node
class Module:
    """One ``.flow`` file. ``name`` is the dotted module name (``cell.arm``)."""

    name: str
    file: str
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...]
    span: Span


def steps(block: Block) -> Iterator[StepStmt]:
    """The steps of a reactor body, those of its nested bodies (cases, default, map) included."""
    blocks = [block]
    while blocks:
        for stmt in blocks.pop().stmts:
            if isinstance(stmt, StepStmt):
                yield stmt
            elif isinstance(stmt, SwitchStmt):
                blocks += [c.body for c in stmt.cases] + ([stmt.default] if stmt.default else [])
            elif isinstance(stmt, MapStmt):
                blocks.append(stmt.body)


def dump(n: object, spans: bool = False) -> object:
    """A plain rendering of a tree, for tests and debugging: span-free, unless ``spans``."""
    if isinstance(n, tuple):
        return [dump(x, spans) for x in n]
    if isinstance(n, Span):
        return attrs.astuple(n)
    if attrs.has(type(n)):
        out: dict[str, object] = {"_": type(n).__name__}
        for f in attrs.fields(type(n)):  # type: ignore[arg-type]  # attrs.has() said it is one
            if spans or f.name != "span":
                out[f.name] = dump(getattr(n, f.name), spans)
        return out
    return n
