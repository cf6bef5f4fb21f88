"""The checker: every semantic check of docs/checks.md, in order, over a whole program.

Passes, each over all modules: the standard library is added (``std.prelude``
and friends), every module's declarations become symbols (BBF102), imports
are linked (BBF103/104/101), signals are collected, declarations and bodies
are type-checked (BBF101-102, BBF201-205, BBF302), and then the analyses
(dependency graph, compensation, routes) run on the ``Facts`` gathered.

A module with syntax errors still contributes its declarations, but its
bodies are not checked and names it fails to define are not reported again:
the syntax error is the one diagnostic for that mistake.

Two checks judge the program as a whole rather than one module: a signal
declared twice (BBF102) and a signal neither handled nor emitted (BBF505).
``check(..., program_wide=False)`` leaves them out, so that the pipeline can
check a part of a program and compute them for the whole from per-module
summaries (``duplicate_signals``, ``unused_signals``, ``signal_use``, ``handled_signals``; see
``bbflow.compiler.cache``).

``check(..., bodies=NAMES)`` checks the declarations and bodies of those
modules only: the others are declared and linked, their declarations
resolved when used, and the bodies of the reactors the checked ones compose
(directly or not) are checked too, for the compensation analysis; the
analyses report on ``NAMES`` only. So the pipeline checks a changed module
and its importers without checking again the modules they import.

Signals are global, so an agent is checked against every module's signal
declarations. ``check(..., declared=...)`` takes those of modules outside the
run already resolved (``SignalEntry``, as ``signal_entries`` gives them from
an earlier check), so that the pipeline can check an agent with its import
closure only.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Mapping, Sequence

from bbflow.compiler import ast
from bbflow.compiler.analysis.routes import check_emits, check_unused_signals, waited_signals
from bbflow.compiler.cache import RobotTypes, SignalEntry, SignalSite
from bbflow.compiler.diagnostics import codes
from bbflow.compiler.diagnostics.core import Diagnostics, Label
from bbflow.compiler.semantic import types as T
from bbflow.compiler.semantic.facts import CallKind, Facts
from bbflow.compiler.semantic.modules import STDLIB_FILE, is_std, link, load_stdlib
from bbflow.compiler.semantic.patterns import Pattern, SignalIndex, compile_pattern
from bbflow.compiler.semantic.resolve import Resolver, declare
from bbflow.compiler.semantic.symbols import ModuleScope, SymKind
from bbflow.compiler.semantic.typecheck import TypeChecker

#: a signal-declaring module of the program, in program order -> its declarations' sites and
#: resolved entries when it is outside the run (``None``: it is checked in the run)
Declared = Mapping[str, "Sequence[tuple[SignalSite, SignalEntry]] | None"]


def check(modules: Sequence[ast.Module], diags: Diagnostics, *, stdlib: bool = True,
          program_wide: bool = True, declared: Declared | None = None,
          bodies: Collection[str] | None = None) -> Facts:
    """Check parsed ``modules``, adding diagnostics to ``diags``; the facts established.

    With ``program_wide=False`` the whole-program checks are left out (see the
    module docstring). ``declared``: the signals of the whole program, for a
    check of a part of it (modules of the run that declare signals and are not
    listed come last).
    """
    facts = Facts()
    program: dict[str, ast.Module] = {}
    if stdlib:
        for m in load_stdlib(diags):
            program[m.name] = m
    for m in modules:
        program.setdefault(m.name, m)
    facts.modules = program
    broken = _modules_with_errors(program, diags)

    own = {name: declare(m, diags) for name, m in program.items()}
    scopes = link(program, own, broken, diags)
    _record_decls(scopes, facts)
    resolver = Resolver(scopes, facts, diags)
    signals = _collect_signals(scopes, resolver, facts, diags, declared or {})
    if program_wide:
        duplicate_signals([SignalSite.of(d) for m in program.values() for d in m.decls
                           if isinstance(d, ast.SignalDecl)], diags)
    checker = TypeChecker(resolver, facts, diags, signals)
    for scope in scopes.values():
        if not scope.broken and (bodies is None or scope.name in bodies):
            checker.check_module(scope)
    composed = _check_composed(checker, scopes, facts, bodies) if bodies is not None else set()

    # Only modules that could not be read whole (syntax errors) are unfit for the
    # analyses; a type error elsewhere in a file must not hide a missing undo.
    # The analyses skip each reactor that has an error of its own.
    facts.broken = broken
    before = len(diags.items)
    _run_analyses(facts, diags, None if bodies is None else (set(bodies), composed))
    if not program_wide:
        diags.items[before:] = [d for d in diags.items[before:] if d.code != codes.BBF505.code]  # about the whole program
    return facts


def _check_composed(checker: TypeChecker, scopes: Mapping[str, ModuleScope], facts: Facts,
                    bodies: Collection[str]) -> set[ast.ReactorDecl]:
    """Check the bodies of the reactors that the checked reactors compose, from modules not checked."""
    checked: set[ast.ReactorDecl] = set()
    seen = 0
    while seen != len(facts.calls):
        seen = len(facts.calls)
        for target in list(facts.calls.values()):
            decl = target.decl
            if target.kind is not CallKind.REACTOR or not isinstance(decl, ast.ReactorDecl) or decl in checked:
                continue
            scope = scopes.get(facts.qualnames.get(decl, "").rpartition(".")[0])
            if scope is None or scope.broken or scope.name in bodies:
                continue
            checked.add(decl)
            checker.check_reactor(decl, scope)
    return checked


def _modules_with_errors(program: dict[str, ast.Module], diags: Diagnostics) -> set[str]:
    files = {d.span.file for d in diags.errors}
    return {name for name, m in program.items() if m.file in files}


def _record_decls(scopes: dict[str, ModuleScope], facts: Facts) -> None:
    for scope in scopes.values():
        for _name, sym in scope.own.items():
            facts.decls[sym.qualname] = sym.decl
            facts.qualnames[sym.decl] = sym.qualname
            if sym.kind is SymKind.ROBOT:
                for cmd in sym.decl.commands:
                    facts.qualnames.setdefault(cmd, f"{sym.qualname}.{cmd.name.name}")


def _collect_signals(scopes: dict[str, ModuleScope], resolver: Resolver, facts: Facts,
                     diags: Diagnostics, declared: Declared) -> dict[str, T.Type]:
    """Every declared signal's payload type (NONE without payload), the error type for one declared twice.

    A module outside the run (listed in ``declared`` with its entries) stands
    in with a declaration made from its sites, typed by its entries.
    """
    payloads: dict[str, T.Type] = {}
    order = [*declared, *(name for name in scopes if name not in declared)]
    for name in order:
        scope, outside = scopes.get(name), declared.get(name)
        if scope is not None:
            found = [(decl, _payload(decl, scope, resolver, diags)) for decl in scope.module.decls
                     if isinstance(decl, ast.SignalDecl)]
        else:
            found = [(ast.SignalDecl(ast.SignalType(site.text, site.type_span), None, site.span), entry.payload)
                     for site, entry in outside or ()]
        for decl, payload in found:
            facts.decl_types[decl] = payload
            if decl.type.text not in facts.signals:
                facts.signals[decl.type.text] = decl
                payloads[decl.type.text] = payload
            else:  # declared twice (BBF102): which payload is meant is unknown, so its uses are not judged
                payloads[decl.type.text] = T.ERROR
    return payloads


def _payload(decl: ast.SignalDecl, scope: ModuleScope, resolver: Resolver, diags: Diagnostics) -> T.Type:
    text = decl.type.text
    payload = resolver.type_of(decl.payload, scope) if decl.payload is not None else T.NONE
    if decl.payload is not None and not isinstance(payload, T.RecordT) and not T.is_lenient(payload):
        diags.error(codes.BBF201, f"the payload of signal `{text}` must be a record, found {payload}",
                    decl.payload.span, help=f"name the value: `signal {text}: {{value: {payload}}}`")
        return T.ERROR  # reported once here, not again at every emit
    return payload


def robot_types(module: ast.Module, facts: Facts) -> tuple[RobotTypes, ...]:
    """The types of the robot interfaces ``module`` declares, as the check of ``facts`` resolved them (the
    error type for one that did not resolve)."""
    def of(t: ast.TypeExpr | None, absent: T.Type) -> T.Type:
        return absent if t is None else facts.type_of(t) or T.ERROR

    return tuple(RobotTypes(d.name.name, tuple((c.name.name, of(c.result, T.ANY)) for c in d.commands),
                            tuple((e.name.name, of(e.payload, T.NONE)) for e in d.events))
                 for d in module.decls if isinstance(d, ast.RobotDecl))


def signal_entries(module: ast.Module, facts: Facts) -> tuple[SignalEntry, ...]:
    """The signals ``module`` declares, with their payload types as the check of ``facts`` resolved them."""
    return tuple(SignalEntry(d.type.text, facts.decl_types[d]) for d in module.decls
                 if isinstance(d, ast.SignalDecl))


# --- the whole-program checks ----------------------------------------------------------


def duplicate_signals(sites: Iterable[SignalSite], diags: Diagnostics) -> None:
    """BBF102 at every declaration of a signal type declared before (``sites`` in program order)."""
    first: dict[str, SignalSite] = {}
    for site in sites:
        if site.text in first:
            by_std = first[site.text].type_span.file.startswith(STDLIB_FILE)
            diags.error(codes.BBF102, f"signal `{site.text}` is already declared"
                        + (" by the standard library (std.prelude)" if by_std else ""), site.type_span,
                        labels=(Label(first[site.text].type_span, "first declared here"),),
                        help="the standard signals are declared for every program: use it as it is, "
                             "or give yours another name" if by_std else None)
        else:
            first[site.text] = site


def unused_signals(sites: Mapping[str, Sequence[SignalSite]], used: Iterable[str], broken: Iterable[str],
                   diags: Diagnostics) -> None:
    """BBF505 for each signal of the project no route handles and nothing emits (``used``: those that are).

    ``sites``: module -> its declarations, in program order; ``broken``: the
    modules with syntax errors (an agent that could not be read may use any
    signal, so none is reported then).
    """
    if any(not is_std(m) for m in broken):
        return
    seen: set[str] = set()
    firsts = []
    for module, declared in sites.items():
        for site in declared:
            if site.text not in seen:  # a signal declared twice is judged at its first declaration
                seen.add(site.text)
                if not is_std(module):
                    firsts.append(ast.SignalDecl(ast.SignalType(site.text, site.type_span), None, site.span))
    # every signal used is passed as emitted: the rule and its message live with the routes
    check_unused_signals(firsts, set(), set(used), diags)


def signal_use(module: ast.Module, facts: Facts) -> tuple[frozenset[str], frozenset[str]]:
    """(the valid patterns of the routes of ``module``'s agents, the declared signals they emit or schedule).

    What ``unused_signals`` needs of a module; ``facts``: of a check that saw
    every signal declaration. Nothing for a module with syntax errors (its
    agents are not analysed). Patterns, not the signals they match: a pattern
    that many modules share (``**.failed``) is matched once for the program
    (``handled_signals``), which keeps the check of n modules linear.
    """
    if module.name in facts.broken:
        return frozenset(), frozenset()
    declared = facts.signals.keys()  # not a copy per module
    patterns: set[str] = set()
    emitted: set[str] = set()
    for decl in module.decls:
        if isinstance(decl, ast.ReactorDecl):  # a `wait_signal` step handles its signal: a literal pattern
            patterns.update(waited_signals(decl, facts))
        if not isinstance(decl, ast.AgentDecl):
            continue
        patterns.update(r.pattern.text for r in decl.routes if isinstance(compile_pattern(r.pattern.text), Pattern))
        emitted |= check_emits(decl, declared, Diagnostics())  # its diagnostics were reported by the check
    return frozenset(patterns), frozenset(emitted)


def handled_signals(declared: Iterable[str], patterns: Iterable[str]) -> set[str]:
    """The signals of ``declared`` that one of ``patterns`` (valid, distinct route patterns) matches."""
    index = SignalIndex(declared)
    handled: set[str] = set()
    for text in patterns:
        pattern = compile_pattern(text)
        if isinstance(pattern, Pattern):
            handled.update(index.matching(pattern, sys.maxsize))  # walks only the branches it can match
    return handled


def _run_analyses(facts: Facts, diags: Diagnostics,
                  only: tuple[set[str], set[ast.ReactorDecl]] | None) -> None:
    """The graph, compensation and route analyses, once they are part of the tree."""
    try:
        from bbflow.compiler.analysis.analyses import analyse
    except ImportError:  # pragma: no cover - the analyses ship with the checker
        return
    analyse(facts, diags, only)
