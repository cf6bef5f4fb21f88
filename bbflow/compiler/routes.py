"""Agent routes and signals: BBF501-BBF505.

- BBF501: a route pattern that is not valid (``bbflow.compiler.patterns``).
- BBF502: a route that can never fire, because a route before it in dispatch
  order (priority, then specificity, then declaration) has no ``when`` and
  matches every signal type it matches.
- BBF503 (warning): a pattern that matches no declared signal: the program's
  signals (std's included) and ``robot.event.NAME`` for the events of the
  agent's robot.
- BBF504: ``emit``/``schedule`` of a signal no ``signal`` declaration declares.
- BBF505 (warning): a signal of the project (not std's) that no route of any
  agent handles and that nothing emits or schedules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import Diagnostics, Label
from bbflow.compiler.facts import Facts
from bbflow.compiler.modules import is_std
from bbflow.compiler.patterns import Pattern, compile_pattern
from bbflow.compiler.suggest import closest
from bbflow.runtime.signals import ROBOT_EVENT_PREFIX


def check_routes(facts: Facts, diags: Diagnostics) -> None:
    """Every route and signal check over the program's agents."""
    declared = set(facts.signals)
    handled: list[Pattern] = []
    emitted: set[str] = set()
    for module in facts.modules.values():
        if module.name in facts.broken:
            continue
        for decl in module.decls:
            if isinstance(decl, ast.AgentDecl):
                events = robot_events(facts, decl)
                handled.extend(check_agent_routes(decl, declared | events, diags))
                emitted |= check_emits(decl, declared, diags)
    if any(not is_std(m) for m in facts.broken):
        return  # an agent we could not read may handle or emit any signal: no BBF505 guesses
    # a signal declared twice is BBF102's mistake: it is judged once here, at its first declaration
    signals = [d for m in facts.modules.values() if not is_std(m.name)
               for d in m.decls if isinstance(d, ast.SignalDecl) and facts.signals.get(d.type.text) is d]
    check_unused_signals(signals, handled, emitted, diags)


def robot_events(facts: Facts, agent: ast.AgentDecl) -> set[str]:
    """``robot.event.NAME`` for every event of the agent's robot."""
    robot = facts.decls.get(facts.robots_of.get(id(agent), ""))
    if not isinstance(robot, ast.RobotDecl):
        return set()
    return {ROBOT_EVENT_PREFIX + e.name.name for e in robot.events}


def dispatch_order(routes: Iterable[tuple[ast.RouteDecl, Pattern]]) -> list[tuple[ast.RouteDecl, Pattern]]:
    """Routes as dispatch tries them: priority (higher first), specificity, declaration order."""
    indexed = list(enumerate(routes))
    indexed.sort(key=lambda item: (-item[1][0].priority, item[1][1].dispatch_key(), item[0]))
    return [route for _, route in indexed]


def check_agent_routes(agent: ast.AgentDecl, declared: set[str], diags: Diagnostics) -> list[Pattern]:
    """BBF501, BBF503 and BBF502 for one agent; returns its valid patterns."""
    valid: list[tuple[ast.RouteDecl, Pattern]] = []
    live: set[int] = set()  # routes whose pattern matches some declared signal
    for route in agent.routes:
        pattern = compile_pattern(route.pattern.text)
        if isinstance(pattern, str):
            diags.error("BBF501", f"invalid signal pattern `{route.pattern.text}`: {pattern}", route.pattern.span,
                        help="a pattern is dotted segments: names, `*` for exactly one segment, "
                             "`**` for any number of segments")
            continue
        valid.append((route, pattern))
        if any(pattern.matches(s) for s in declared):
            live.add(id(route))
            continue
        near = closest(pattern.text, _respellings(pattern.text, declared))
        diags.warning("BBF503", f"route pattern `{pattern.text}` matches no declared signal", route.span,
                      notes=("no `signal` declaration (nor an event of the agent's robot) has a type this "
                             "pattern matches, so this route never runs",),
                      help=("did you mean " + " or ".join(f"`{n}`" for n in near) + "?") if near
                      else "declare the signal with `signal TYPE`, or fix the pattern")
    earlier: list[tuple[ast.RouteDecl, Pattern]] = []
    for route, pattern in dispatch_order(valid):
        shadow = next((r for r, p in earlier if r.when is None and p.covers(pattern)), None)
        if shadow is not None and id(route) in live:
            diags.error("BBF502",
                        f"route `on {pattern.text}` can never fire: route `on {shadow.pattern.text}` comes "
                        "before it in dispatch order, has no `when`, and handles every signal it matches",
                        route.span,
                        labels=(Label(shadow.span, f"`on {shadow.pattern.text}` handles these signals first"),),
                        notes=("a signal is handled by one route: by priority (higher first), then by "
                               "specificity (more literal segments; `*` before `**`), then in declaration "
                               "order; the first whose `when` holds runs",),
                        help=f"give `on {pattern.text}` a higher priority, add a `when` to "
                             f"`on {shadow.pattern.text}`, or remove one of them")
        earlier.append((route, pattern))
    return [p for _, p in valid]


def _respellings(pattern: str, declared: set[str]) -> set[str]:
    """Patterns of the same shape that match a declared signal: the declared types themselves, and
    ``pattern`` with its literal segments taken from a declared type (``cel.**`` -> ``cell.**``)."""
    segments = pattern.split(".")
    out = set(declared)
    for signal in declared:
        parts = signal.split(".")
        spelled = [parts[i] if "*" not in seg and i < len(parts) else seg for i, seg in enumerate(segments)]
        candidate = ".".join(spelled)
        compiled = compile_pattern(candidate)
        if candidate != pattern and not isinstance(compiled, str) and compiled.matches(signal):
            out.add(candidate)
    return out


def _signal_stmts(stmts: Iterable[ast.AgentStmt]) -> Iterator[ast.EmitStmt | ast.ScheduleStmt]:
    for stmt in stmts:
        if isinstance(stmt, (ast.EmitStmt, ast.ScheduleStmt)):
            yield stmt
        elif isinstance(stmt, (ast.RunStmt, ast.IfStmt)):
            yield from _signal_stmts(stmt.then or ())
            yield from _signal_stmts(stmt.else_ or ())


def check_emits(agent: ast.AgentDecl, declared: set[str], diags: Diagnostics) -> set[str]:
    """BBF504 for each emit/schedule of an undeclared signal; returns the declared types emitted."""
    emitted = set()
    for route in agent.routes:
        for stmt in _signal_stmts(route.body):
            name = stmt.type.text
            if name in declared:
                emitted.add(name)
                continue
            verb = "emit" if isinstance(stmt, ast.EmitStmt) else "schedule"
            near = closest(name, declared)
            emitted.update(near[:1])  # the signal it was meant to be is not also "never emitted" (BBF505)
            diags.error("BBF504", f"`{verb} {name}`: no signal `{name}` is declared", stmt.type.span,
                        help=("did you mean " + " or ".join(f"`{n}`" for n in near) + "?") if near
                        else f"declare it: `signal {name}` (with a payload type if it carries data)")
    return emitted


def check_unused_signals(signals: Iterable[ast.SignalDecl], handled: list[Pattern], emitted: set[str],
                         diags: Diagnostics) -> None:
    """BBF505 for every signal no route handles and nothing emits or schedules."""
    for signal in signals:
        name = signal.type.text
        if name in emitted or any(p.matches(name) for p in handled):
            continue
        diags.warning("BBF505", f"signal `{name}` is declared but neither handled nor emitted anywhere",
                      signal.span,
                      notes=("no agent has a route that matches it, and no `emit` or `schedule` sends it",),
                      help=f"handle it with `on {name} {{ ... }}`, emit it, or remove the declaration")
