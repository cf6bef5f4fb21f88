"""Agent routes and signals: BBF501-BBF505.

- BBF501: a route pattern that is not valid (``bbflow.compiler.semantic.patterns``).
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

from collections.abc import Collection, Iterable, Iterator
from collections.abc import Set as AbstractSet

from bbflow.compiler import ast
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.diagnostics.suggest import closest
from bbflow.compiler.semantic.facts import CallKind, Facts
from bbflow.compiler.semantic.modules import is_std
from bbflow.compiler.semantic.patterns import Pattern, SignalIndex, compile_pattern
from bbflow.compiler.source import Span
from bbflow.runtime.contract import ROBOT_EVENT_PREFIX
from bbflow.runtime.router import STAR, PatternTrie


def check_routes(facts: Facts, diags: Diagnostics, only: Collection[str] | None = None) -> None:
    """Every route and signal check over the program's agents (those of the modules ``only``, if given:
    then a signal no agent uses is not reported, as the other agents were not looked at)."""
    declared = set(facts.signals)
    agents: list[ast.AgentDecl] = []
    for module in facts.modules.values():
        if module.name not in facts.broken and (only is None or module.name in only):
            found = [decl for decl in module.decls if isinstance(decl, ast.AgentDecl)]
            if found:
                facts.signal_readers.add(module.name)  # what follows reads the signals for its agents
                agents += found
    compiled = [[(route, compile_pattern(route.pattern.text)) for route in agent.routes] for agent in agents]
    reached, handled = match_signals(declared, [p for routes in compiled for _, p in routes if isinstance(p, Pattern)])
    emitted: set[str] = set()
    for agent, routes in zip(agents, compiled):
        check_agent_routes(routes, declared, reached, robot_events(facts, agent), diags)
        emitted |= check_emits(agent, declared, diags)
    if only is not None or any(not is_std(m) for m in facts.broken):
        return  # an agent we could not read may handle or emit any signal: no BBF505 guesses
    handled.update(signal for module in facts.modules.values() for decl in module.decls
                   if isinstance(decl, ast.ReactorDecl) for signal in waited_signals(decl, facts))
    # a signal declared twice is BBF102's mistake: it is judged once here, at its first declaration
    signals = [d for m in facts.modules.values() if not is_std(m.name)
               for d in m.decls if isinstance(d, ast.SignalDecl) and facts.signals.get(d.type.text) is d]
    check_unused_signals(signals, handled, emitted, diags)


def waited_signals(reactor: ast.ReactorDecl, facts: Facts) -> Iterator[str]:
    """The signals the ``wait_signal`` steps of ``reactor`` wait for: each handles its signal as a route does."""
    for step in ast.steps(reactor.body):
        target = facts.call(step.call)
        if target is not None and target.kind is CallKind.WAIT_SIGNAL:
            yield target.args["signal"]


def match_signals(declared: Iterable[str], patterns: Iterable[Pattern]) -> tuple[set[str], set[str]]:
    """(the texts of the patterns some declared signal matches, the declared signals some pattern matches).

    The distinct patterns go into one trie (the runtime router's), and each signal walks it once: the
    work grows with the number of signals and patterns, not with their product.
    """
    trie: PatternTrie[str] = PatternTrie()
    added: set[str] = set()
    for pattern in patterns:
        if pattern.text not in added:  # once each: a pattern in many agents is one value to collect
            added.add(pattern.text)
            trie.add(pattern.segments, pattern.text)
    reached: set[str] = set()
    handled: set[str] = set()
    for signal in declared:
        found = trie.collect(signal)
        if found:
            handled.add(signal)
            reached |= found
    return reached, handled


def robot_events(facts: Facts, agent: ast.AgentDecl) -> set[str]:
    """``robot.event.NAME`` for every event of the agent's robot."""
    robot = facts.decls.get(facts.robots_of.get(agent, ""))
    if not isinstance(robot, ast.RobotDecl):
        return set()
    return {ROBOT_EVENT_PREFIX + e.name.name for e in robot.events}


def dispatch_order(routes: Iterable[tuple[ast.RouteDecl, Pattern]]) -> list[tuple[ast.RouteDecl, Pattern]]:
    """Routes as dispatch tries them: priority (higher first), specificity, declaration order."""
    indexed = list(enumerate(routes))
    indexed.sort(key=lambda item: (-item[1][0].priority, item[1][1].dispatch_key(), item[0]))
    return [route for _, route in indexed]


def check_agent_routes(routes: list[tuple[ast.RouteDecl, Pattern | str]], declared: set[str], reached: set[str],
                       events: set[str], diags: Diagnostics) -> None:
    """BBF501, BBF503 and BBF502 for the routes of one agent, each with its compiled pattern.

    A route is live when its pattern matches a declared signal (its text is in ``reached``, from
    ``match_signals``) or an event of the agent's robot (``events``).
    """
    valid: list[tuple[ast.RouteDecl, Pattern]] = []
    live: set[int] = set()  # routes whose pattern matches some declared signal
    event_index: SignalIndex | None = None
    for route, pattern in routes:
        if isinstance(pattern, str):
            diags.error(codes.BBF501, f"invalid signal pattern `{route.pattern.text}`: {pattern}", route.pattern.span,
                        help="a pattern is dotted segments: names, `*` for exactly one segment, "
                             "`**` for any number of segments")
            continue
        valid.append((route, pattern))
        if pattern.text not in reached and events:
            event_index = event_index or SignalIndex(events)
        if pattern.text in reached or (event_index is not None and event_index.matching(pattern, 1)):
            live.add(id(route))
            continue
        near = closest(pattern.text, _respellings(pattern.text, declared | events))
        diags.warning(codes.BBF503, f"route pattern `{pattern.text}` matches no declared signal", route_head(route),
                      notes=("no `signal` declaration (nor an event of the agent's robot) has a type this "
                             "pattern matches, so this route never runs",),
                      help=("did you mean " + " or ".join(f"`{n}`" for n in near) + "?") if near
                      else "declare the signal with `signal TYPE`, or fix the pattern")
    check_shadowed(valid, live, diags)


def check_shadowed(valid: list[tuple[ast.RouteDecl, Pattern]], live: set[int], diags: Diagnostics) -> None:
    """BBF502 for each live route that a route before it in dispatch order, without a ``when``, covers.

    A literal pattern covers only the same literal (a wildcard matches types no literal does), so the
    earlier literals are looked up by text and only the earlier wildcards are tried one by one.
    """
    first_literal: dict[str, tuple[int, ast.RouteDecl]] = {}  # text -> (position, route) of its first unguarded
    wildcards: list[tuple[int, ast.RouteDecl, Pattern]] = []  # unguarded wildcard routes so far, in order
    for position, (route, pattern) in enumerate(dispatch_order(valid)):
        literal = STAR not in pattern.text
        if id(route) in live:
            candidates = [first_literal[pattern.text]] if literal and pattern.text in first_literal else []
            covering = next(((i, r) for i, r, p in wildcards if p.covers(pattern)), None)
            candidates += [covering] if covering is not None else []
            if candidates:
                _, shadow = min(candidates, key=lambda c: c[0])
                _shadowed(route, pattern, shadow, diags)
        if route.when is None:
            if literal:
                first_literal.setdefault(pattern.text, (position, route))
            else:
                wildcards.append((position, route, pattern))


def _shadowed(route: ast.RouteDecl, pattern: Pattern, shadow: ast.RouteDecl, diags: Diagnostics) -> None:
    diags.error(codes.BBF502,
                f"route `on {pattern.text}` can never fire: route `on {shadow.pattern.text}` comes "
                "before it in dispatch order, has no `when`, and handles every signal it matches",
                route_head(route),
                labels=(Label(route_head(shadow), f"`on {shadow.pattern.text}` handles these signals first"),),
                notes=("a signal is handled by one route: by priority (higher first), then by "
                       "specificity (more literal segments; `*` before `**`), then in declaration "
                       "order; the first whose `when` holds runs",),
                help=f"give `on {pattern.text}` a higher priority, add a `when` to "
                     f"`on {shadow.pattern.text}`, or remove one of them")


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


def check_emits(agent: ast.AgentDecl, declared: AbstractSet[str], diags: Diagnostics) -> set[str]:
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
            diags.error(codes.BBF504, f"`{verb} {name}`: no signal `{name}` is declared", stmt.type.span,
                        help=("did you mean " + " or ".join(f"`{n}`" for n in near) + "?") if near
                        else f"declare it: `signal {name}` (with a payload type if it carries data)")
    return emitted


def check_unused_signals(signals: Iterable[ast.SignalDecl], handled: set[str], emitted: set[str],
                         diags: Diagnostics) -> None:
    """BBF505 for every signal no route handles (not in ``handled``, from ``match_signals``) and nothing
    emits or schedules."""
    for signal in signals:
        name = signal.type.text
        if name in emitted or name in handled:
            continue
        diags.warning(codes.BBF505, f"signal `{name}` is declared but neither handled nor emitted anywhere",
                      signal.span,
                      notes=("no agent has a route that matches it, and no `emit` or `schedule` sends it",),
                      help=f"handle it with `on {name} {{ ... }}`, emit it, or remove the declaration")


def route_head(route: ast.RouteDecl) -> Span:
    """`on PATTERN`: where a diagnostic about a route's pattern points (not the whole route and its body)."""
    end = route.pattern.span
    return Span(route.span.file, route.span.line, route.span.column, end.end_line, end.end_column)
