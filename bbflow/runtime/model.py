"""The executable model: what generated modules build and the runtime executes.

Structure is data (frozen, slotted attrs classes); behaviour lives in the
runtime. Expressions are plain Python callables ``Expr = (scope) -> value``
that generated code defines; a scope is a read-only mapping from the names
visible at that point (inputs, lets, step results, state fields, route
bindings, ``result``/``error``) to their values. Values are JSON-like data
(see ``bbflow.runtime.types``).

Nothing here imports the compiler: a robot needs only ``bbflow.runtime`` and
the generated modules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from bbflow.runtime.contract import ABI as ABI  # the model's ABI: ``model.ABI``, as generated modules read it
from bbflow.runtime.types import RType

Scope = Mapping[str, Any]
Expr = Callable[[Scope], Any]


@attrs.frozen(slots=True)
class Param:
    """A parameter of a command, action or reactor. ``default`` takes an empty scope."""

    name: str
    type: RType
    default: Expr | None = None


# --- robot interfaces, actions, signals -------------------------------------------


@attrs.frozen(slots=True)
class Command:
    name: str
    params: tuple[Param, ...]
    result: RType
    category: str | None = None
    timeout: float | None = None
    readonly: bool = False
    allowed: tuple[str, ...] = ("idle",)
    #: the command's default undo, run with scope {"args": kwargs, "result": value}
    undo: Call | None = None


@attrs.frozen(slots=True)
class Event:
    name: str
    payload: RType | None = None


@attrs.frozen(slots=True)
class Robot:
    """A robot interface (``robot Arm { ... }``)."""

    name: str
    qualname: str
    states: tuple[str, ...]  # operational states; always contains "idle"
    limits: tuple[tuple[str, int], ...]  # category -> max concurrent commands
    commands: Mapping[str, Command]
    events: Mapping[str, Event]
    line: int = 0

    def limit(self, category: str) -> int:
        """The limit of a category: declared, else 1 (the default of every category)."""
        for name, n in self.limits:
            if name == category:
                return n
        return 1


@attrs.frozen(slots=True)
class Action:
    """A Python callable bound by ``action``; ``target`` is ``"module:function"``."""

    name: str
    qualname: str
    params: tuple[Param, ...]
    result: RType | None
    target: str
    pure: bool = False


@attrs.frozen(slots=True)
class Signal:
    type: str
    payload: RType | None = None


# --- calls ------------------------------------------------------------------------


@attrs.frozen(slots=True)
class CommandCall:
    """A robot command; ``args`` returns the complete keyword arguments (defaults filled)."""

    command: str
    args: Expr


@attrs.frozen(slots=True)
class ActionCall:
    action: str  # qualname of an Action in the Program
    args: Expr


@attrs.frozen(slots=True)
class ReactorCall:
    """Composition: runs another reactor as a child (undone as a unit)."""

    reactor: str  # qualname of a Reactor in the Program
    args: Expr


@attrs.frozen(slots=True)
class WaitState:
    """Done at once if the robot is already in one of ``states``."""

    states: tuple[str, ...]


@attrs.frozen(slots=True)
class WaitEvent:
    """The first matching event published after the step starts.

    ``where`` sees the scope plus the event's data under the step's own name.
    """

    event: str
    where: Expr | None = None


@attrs.frozen(slots=True)
class WaitSignal:
    """The first signal of type ``signal`` that enters the runtime after the step starts.

    Its value is the envelope as a route binds it; ``where`` sees the scope
    plus that envelope under the step's own name.
    """

    signal: str
    where: Expr | None = None


Call = CommandCall | ActionCall | ReactorCall | WaitState | WaitEvent | WaitSignal


# --- reactors ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class Retry:
    """``retry N backoff D max M``: N more attempts; delay D * 2**k capped at M."""

    attempts: int
    backoff: float = 0.0
    max_backoff: float | None = None  # None: 10 x backoff


@attrs.frozen(slots=True)
class Undo:
    call: Call
    #: True when taken from the command's declaration: scope is {"args", "result"};
    #: otherwise the step's scope plus its own result under its name.
    inherited: bool = False


@attrs.frozen(slots=True)
class Step:
    name: str
    call: Call
    deps: tuple[str, ...] = ()  # data references and `after`, in this body
    when: Expr | None = None
    timeout: float | None = None  # per attempt; the command's default already filled in
    retry: Retry | None = None
    undo: Undo | None = None
    irreversible: str | None = None
    fallback: Expr | None = None
    line: int = 0


@attrs.frozen(slots=True)
class Let:
    name: str
    expr: Expr
    deps: tuple[str, ...] = ()
    line: int = 0


@attrs.frozen(slots=True)
class Return:
    expr: Expr
    line: int = 0


@attrs.frozen(slots=True)
class Fail:
    message: str
    line: int = 0


@attrs.frozen(slots=True)
class Body:
    """Nodes of one scope and how it ends (``None``: a reactor with no result)."""

    nodes: tuple[Node, ...]
    end: Return | Fail | None = None


@attrs.frozen(slots=True)
class Case:
    values: tuple[Any, ...]
    body: Body


@attrs.frozen(slots=True)
class Switch:
    """The first case whose values contain the subject runs; else ``default``."""

    name: str
    subject: Expr
    cases: tuple[Case, ...]
    default: Body | None = None
    deps: tuple[str, ...] = ()  # of the subject and of everything the bodies use outside
    line: int = 0


@attrs.frozen(slots=True)
class Map:
    """BODY once per element of ``over`` with the element as ``item``; results in input order."""

    name: str
    over: Expr
    item: str
    body: Body
    concurrency: int = 1
    deps: tuple[str, ...] = ()
    line: int = 0


Node = Step | Let | Switch | Map


@attrs.frozen(slots=True)
class Reactor:
    name: str
    qualname: str
    params: tuple[Param, ...]
    result: RType | None
    robot: str | None  # qualname of the Robot interface, or None
    body: Body
    concurrency: int = 8
    timeout: float | None = None
    file: str = ""
    line: int = 0


# --- agents -----------------------------------------------------------------------


@attrs.frozen(slots=True)
class StateField:
    name: str
    type: RType
    default: Expr


@attrs.frozen(slots=True)
class Set:
    field: str
    expr: Expr
    line: int = 0
    key: Expr | None = None  # `set FIELD[KEY] = EXPR`: replace an element of a list or a key of a map


@attrs.frozen(slots=True)
class Emit:
    type: str
    data: Expr | None = None
    line: int = 0
    to: Expr | None = None  # the robot instance addressed (the envelope's ``subject``)


@attrs.frozen(slots=True)
class Schedule:
    type: str
    delay: float | Expr  # seconds, or computed when the turn runs (``schedule retry in backoff * 2``)
    data: Expr | None = None
    line: int = 0
    to: Expr | None = None


@attrs.frozen(slots=True)
class Run:
    """Starts CALL as a supervised child; ``then``/``else_`` come back as later turns.

    Inside ``then`` the scope has ``result``; inside ``else_``, ``error`` with
    ``message`` and ``code``.
    """

    call: Call
    then: tuple[Stmt, ...] | None = None
    else_: tuple[Stmt, ...] | None = None
    line: int = 0
    #: ``run ... preempt``: cancel the run holding the robot (code ``preempted``) and go first
    preempt: bool = False


@attrs.frozen(slots=True)
class Cancel:
    """``cancel REACTOR``: every run of ``reactor`` (qualname) this agent instance started, queued or running."""

    reactor: str
    line: int = 0


@attrs.frozen(slots=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    else_: tuple[Stmt, ...] = ()
    line: int = 0


Stmt = Set | Emit | Schedule | Run | Cancel | If


@attrs.frozen(slots=True)
class Route:
    pattern: str  # e.g. "pick.requested", "robot.event.*", "cell.**"
    body: tuple[Stmt, ...]
    bind: str | None = None
    when: Expr | None = None
    priority: int = 0
    index: int = 0  # declaration order within the agent
    line: int = 0


@attrs.frozen(slots=True)
class Agent:
    name: str
    qualname: str
    robot: str | None  # qualname of the Robot interface, or None
    state: tuple[StateField, ...]
    routes: tuple[Route, ...]
    file: str = ""
    line: int = 0


# --- a whole program --------------------------------------------------------------

Decl = Robot | Action | Signal | Reactor | Agent


@attrs.define
class Program:
    """Every declaration of a loaded project, by qualified name (signals by type)."""

    robots: dict[str, Robot] = attrs.Factory(dict)
    actions: dict[str, Action] = attrs.Factory(dict)
    signals: dict[str, Signal] = attrs.Factory(dict)
    reactors: dict[str, Reactor] = attrs.Factory(dict)
    agents: dict[str, Agent] = attrs.Factory(dict)

    def add(self, decl: Decl) -> None:
        if isinstance(decl, Robot):
            self.robots[decl.qualname] = decl
        elif isinstance(decl, Action):
            self.actions[decl.qualname] = decl
        elif isinstance(decl, Signal):
            self.signals[decl.type] = decl
        elif isinstance(decl, Reactor):
            self.reactors[decl.qualname] = decl
        elif isinstance(decl, Agent):
            self.agents[decl.qualname] = decl
        else:  # pragma: no cover - guarded by the type
            raise TypeError(f"not a declaration: {decl!r}")

    def find(self, table: str, name: str) -> Any:
        """Look a declaration up by qualified name, or by its short name when unambiguous."""
        items: dict[str, Any] = getattr(self, table)
        if name in items:
            return items[name]
        hits = [v for k, v in items.items() if k.rsplit(".", 1)[-1] == name]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise KeyError(f"no {table[:-1]} named {name!r}")
        raise KeyError(f"{name!r} is ambiguous: {', '.join(sorted(k for k in items if k.endswith('.' + name)))}")
