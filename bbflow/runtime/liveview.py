"""What ``bbflow run`` shows while it works: a live view on a terminal, plain log lines otherwise.

``Board`` is an event observer that keeps the picture up to date: every run
(its reactor, each step's state, how it ended), and it reads the agents
(queue depth, last signal, counts) and robots (safety and operational state)
it is given directly when asked. ``PlainLog`` writes one line per notable
event (not ``step.start``, ``undo.start`` or ``signal.routed``, which the next
line makes plain anyway) to a stream. ``LiveView`` redraws the board with rich
a few times a second from a task of the run's own (the board is only ever
read on the event loop, so the picture is always consistent).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import IO, Any, Protocol

import attrs
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bbflow.runtime import jsonout, model
from bbflow.terminal import printable

REFRESH = 0.25  # seconds between two redraws of the live view
KEEP_FINISHED = 4  # finished runs still shown

#: step state -> (mark, rich style)
STEP_MARKS = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "retrying": ("↻", "yellow"),
    "ok": ("✓", "green"),
    "skipped": ("-", "dim"),
    "error": ("✗", "bold red"),
    "undoing": ("↶", "magenta"),
    "undone": ("↺", "cyan"),
    "undo failed": ("!", "bold red"),
}
_STEP_EVENTS = {
    "step.start": "running",
    "step.ok": "ok",
    "step.error": "error",
    "step.retry": "retrying",
    "step.skip": "skipped",
    "undo.start": "undoing",
    "undo.ok": "undone",
    "undo.error": "undo failed",
}
_SAFETY_STYLES = {"armed": "bold green", "disarmed": "dim", "disarming": "yellow", "fault": "bold red"}
_QUIET = {"step.start", "undo.start", "signal.routed"}


class AgentLike(Protocol):
    name: str
    last_signal: str | None

    @property
    def queue_depth(self) -> int: ...


class RobotLike(Protocol):
    instance: str
    spec: model.Robot

    @property
    def safety(self) -> str: ...

    @property
    def state(self) -> str: ...


@attrs.define
class RunView:
    """One run as the board sees it."""

    run: str
    reactor: str
    parent: str | None
    started: float
    steps: dict[str, str]  # step -> state, in body order
    status: str = "running"  # running, ok, failed, halted
    ended: float | None = None
    detail: str = ""  # the result, or the error


class Board:
    """An observer keeping the state of every run, plus the agents and robots to show."""

    def __init__(self, program: model.Program, *, start: float = 0.0) -> None:
        self.program = program
        self.start = start
        self.runs: dict[str, RunView] = {}
        self.finished: deque[RunView] = deque(maxlen=KEEP_FINISHED)
        #: how many top-level runs ended as run.ok / run.failed / run.halted, and the last such event: counts,
        #: not the events (a session may serve runs for weeks: its memory must not grow with them)
        self.endings: dict[str, int] = {}
        self.last_ending: dict[str, Any] | None = None
        self.agents: tuple[AgentLike, ...] = ()
        self.robots: tuple[RobotLike, ...] = ()
        self.counts: dict[str, int] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        name = event.get("event", "")
        self.counts[name] = self.counts.get(name, 0) + 1
        if name == "signal.dropped":  # the summary says which kind of drop
            for kind in ("unrouted", "unsent"):
                if event.get(kind):
                    self.counts[f"signal.dropped.{kind}"] = self.counts.get(f"signal.dropped.{kind}", 0) + 1
        run_id = event.get("run")
        if name == "run.start" and run_id is not None:
            self.runs[run_id] = RunView(run_id, event.get("reactor") or event.get("command") or "?", event.get("parent"),
                                        event.get("time", self.start), self._steps_of(event.get("reactor")))
            return
        view = self.runs.get(run_id) if run_id is not None else None
        if view is None or run_id is None:
            if name == "run.failed" and event.get("parent") is None:  # a run that never started (busy, or
                self.endings[name] = self.endings.get(name, 0) + 1  # cancelled while queued)
                self.last_ending = event
            return
        if name in _STEP_EVENTS and event.get("step"):
            view.steps[event["step"]] = _STEP_EVENTS[name]
        elif name in ("run.ok", "run.failed", "run.halted"):
            view.status = name.split(".", 1)[1]
            view.ended = event.get("time")
            view.detail = outcome_text(event)
            del self.runs[run_id]
            self.finished.append(view)
            if view.parent is None:
                self.endings[name] = self.endings.get(name, 0) + 1
                self.last_ending = event

    def _steps_of(self, reactor: str | None) -> dict[str, str]:
        try:
            decl: model.Reactor = self.program.find("reactors", reactor or "")
        except KeyError:
            return {}
        return {node.name: "pending" for node in decl.body.nodes if not isinstance(node, model.Let)}

    # --- rendering ------------------------------------------------------------------------

    def render(self, now: float) -> Group:
        parts: list[Any] = []
        runs = [*self.runs.values(), *reversed(self.finished)]
        if runs:
            table = Table(title="runs", title_justify="left", show_edge=False)
            table.add_column("reactor", no_wrap=True)
            table.add_column("status", no_wrap=True)
            table.add_column("time", justify="right", no_wrap=True)
            # on a narrow terminal these two give up their width (their text cut with an ellipsis, one line a run)
            table.add_column("steps")
            table.add_column("outcome")
            for view in runs:
                status_style = {"ok": "green", "failed": "red", "halted": "bold red"}.get(view.status, "yellow")
                took = (view.ended if view.ended is not None else now) - view.started
                name = ("  ↳ " if view.parent else "") + view.reactor
                table.add_row(name, Text(view.status, status_style), elapsed_text(took, 2).lstrip(), _steps_text(view),
                              Text(view.detail, "dim", no_wrap=True, overflow="ellipsis"))
            parts.append(table)
        if self.agents:
            table = Table(title="agents", title_justify="left", show_edge=False)
            for column in ("agent", "queue", "last signal", "handled", "running", "dropped", "errors"):
                table.add_column(column, no_wrap=True)
            for agent in self.agents:
                stats = getattr(agent, "stats", None)
                instance = getattr(agent, "robot_instance", None)
                table.add_row(
                    agent.name + (f"/{instance}" if instance else ""), str(agent.queue_depth), agent.last_signal or "-",
                    *(str(getattr(stats, f, "-")) for f in ("handled", "runs_in_flight")),
                    str(getattr(stats, "dropped_unmatched", 0) + getattr(stats, "dropped_overflow", 0)),
                    str(getattr(stats, "errors", "-")),
                )
            parts.append(table)
        if self.robots:
            table = Table(title="robots", title_justify="left", show_edge=False)
            for column in ("robot", "interface", "safety", "state"):
                table.add_column(column, no_wrap=True)
            for robot in self.robots:
                table.add_row(robot.instance, robot.spec.name,
                              Text(robot.safety, _SAFETY_STYLES.get(robot.safety, "")), robot.state)
            parts.append(table)
        return Group(*parts)


#: the units a time since the start is shown in: the first in which it is under 10,000 (a long run on the
#: virtual clock reaches years: 720000000000000.000s was printed in full)
_ELAPSED_UNITS = (("s", 1.0), ("m", 60.0), ("h", 3600.0), ("d", 86400.0), ("y", 365.25 * 86400.0))


def elapsed_text(seconds: float, places: int = 3) -> str:
    """A time since the start, right-aligned in 9 columns (``places`` decimals): ``   1.234s``, ``  16.667m``,
    ``   2.500h``, ``   3.000d``; past 10,000 years, ``2.28e+07y``."""
    value, unit = seconds, "s"
    for unit, size in _ELAPSED_UNITS:
        value = seconds / size
        if abs(round(value, places)) < 10_000:  # as printed: 9999.9996 is 10000.000
            return f"{value:{5 + places}.{places}f}{unit}"
    return f"{value:8.2e}{unit}"


def _steps_text(view: RunView) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (step, state) in enumerate(view.steps.items()):
        mark, style = STEP_MARKS.get(state, ("?", ""))
        if i:
            text.append("  ")
        text.append(f"{mark} {step}", style=style)
    return text


# --- plain lines ----------------------------------------------------------------------------


def outcome_text(event: dict[str, Any]) -> str:
    """How a run ended, in a few words: its result, or its error and undo errors."""
    name = event.get("event")
    if name == "run.ok":
        return "result " + compact(event.get("result"))
    error = event.get("error") or {}
    text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    undo_errors = event.get("undo_errors") or []
    if undo_errors:
        text += "; undo errors: " + "; ".join(
            f"{u.get('step', '?')}: {u.get('message', '')}" if isinstance(u, dict) else str(u) for u in undo_errors
        )
    if name == "run.halted":
        done = event.get("completed") or []
        text += f"; completed: {', '.join(done) if done else 'nothing'}; {undone_text(event.get('undone') or [])}"
    return text


def undone_text(undone: list[str] | tuple[str, ...]) -> str:
    """What a halted run's rollback undid before it halted: ``undone: g, a`` or ``nothing undone``."""
    return f"undone: {', '.join(undone)}" if undone else "nothing undone"


def compact(value: Any, limit: int = 120) -> str:
    text = jsonout.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(event: dict[str, Any]) -> str | None:
    """One line for a notable event (``None`` for those not worth a line of their own)."""
    name = event.get("event", "")
    if name in _QUIET:
        return None
    where = event.get("reactor") or event.get("command") or event.get("agent") or event.get("supervisor") or ""
    if event.get("step"):
        where += "." + str(event["step"])
        if event.get("index"):
            where += str(event["index"])
    if name == "step.ok":
        detail = compact(event.get("result"), 80)
    elif name in ("run.ok", "run.failed", "run.halted"):
        detail = outcome_text(event)
    elif name == "step.retry":
        detail = f"attempt {event.get('attempt', '?')} in {event.get('delay', 0):g}s"  # attempt: the next one
    elif name in ("step.error", "undo.error", "agent.error"):
        error = event.get("error") or {}
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
        if name == "step.error" and event.get("in_doubt"):
            detail += " (cut off at the driver: it may have moved part-way)"
    elif name.startswith("signal."):
        detail = str(event.get("type", ""))
        if name in ("signal.in", "signal.emit") and event.get("data") is not None:
            detail += " " + compact(event.get("data"), 80)
        if name == "signal.dropped":
            detail += f": {event.get('reason', '')}"
        elif name == "signal.lost":
            source = f" from {event['source']}" if event.get("source") else ""  # none: lost at this process's door
            detail += f": {event.get('count', '?')}{source}: {event.get('reason', '')}"
    elif name in ("robot.safety", "robot.state"):
        where = str(event.get("robot", ""))
        detail = f"{event.get('from')} -> {event.get('to')}"
    elif name.startswith("supervisor."):
        detail = " ".join(f"{k}={event[k]}" for k in ("child", "error", "reason") if event.get(k))
    else:
        detail = ""
    return f"{name:<14} {where}" + (f"  {detail}" if detail else "")


class PlainLog:
    """Writes ``describe``d events as lines: ``  1.234s run.ok PickAndPlace ...``."""

    def __init__(self, stream: IO[str], *, start: float = 0.0) -> None:
        self.stream = stream
        self.start = start

    def __call__(self, event: dict[str, Any]) -> None:
        line = describe(event)
        if line is not None:
            self.line(event.get("time", self.start), line)

    def line(self, at: float, text: str) -> None:
        self.stream.write(f"{elapsed_text(at - self.start)} {printable(text, newline=False)}\n")
        self.stream.flush()


class LiveView:
    """Redraws ``board`` on a terminal every ``REFRESH`` seconds while ``run()`` is awaited."""

    def __init__(self, board: Board, console: Console) -> None:
        self.board = board
        self.console = console

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        with Live(self.board.render(loop.time()), console=self.console, auto_refresh=False,
                  transient=False, redirect_stdout=False, redirect_stderr=False) as live:
            try:
                while True:
                    await asyncio.sleep(REFRESH)
                    live.update(self.board.render(loop.time()), refresh=True)
            finally:
                live.update(self.board.render(loop.time()), refresh=True)
