"""The checker: every semantic check of LANGUAGE.md §2-§8, in order, over a whole program.

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
summaries (``duplicate_signals``, ``unused_signals``, ``signal_use``; see
``bbflow.compiler.cache``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bbflow.compiler import ast
from bbflow.compiler import types as T
from bbflow.compiler.diagnostics import Diagnostics, Label
from bbflow.compiler.cache import SignalSite
from bbflow.compiler.facts import Facts
from bbflow.compiler.modules import is_std, link, load_stdlib
from bbflow.compiler.patterns import Pattern, compile_pattern
from bbflow.compiler.resolve import Resolver, declare
from bbflow.compiler.routes import check_emits, check_unused_signals
from bbflow.compiler.symbols import ModuleScope, SymKind
from bbflow.compiler.typecheck import TypeChecker

#: the code of the one diagnostic the route analysis makes about the whole program
UNUSED_SIGNAL = "BBF505"


def check(modules: "list[ast.Module] | Any", diags: Diagnostics | None = None, *, stdlib: bool = True,
          program_wide: bool = True) -> Facts:
    """Check parsed ``modules``, adding diagnostics to ``diags``; the facts established.

    Also accepts a ``CompileResult`` (its ``modules`` and ``diagnostics``),
    which is how the language server calls it. With ``program_wide=False``
    the whole-program checks are left out (see the module docstring).
    """
    if diags is None:
        diags = modules.diagnostics
        modules = modules.modules
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
    signals = _collect_signals(scopes, resolver, facts, diags)
    if program_wide:
        duplicate_signals([SignalSite.of(d) for m in program.values() for d in m.decls
                           if isinstance(d, ast.SignalDecl)], diags)
    checker = TypeChecker(resolver, facts, diags, signals)
    for scope in scopes.values():
        if not scope.broken:
            checker.check_module(scope)

    # Only modules that could not be read whole (syntax errors) are unfit for the
    # analyses; a type error elsewhere in a file must not hide a missing undo.
    # The analyses skip each reactor that has an error of its own.
    facts.broken = broken
    before = len(diags.items)
    _run_analyses(facts, diags)
    if not program_wide:
        diags.items[before:] = [d for d in diags.items[before:] if d.code != UNUSED_SIGNAL]
    return facts


def _modules_with_errors(program: dict[str, ast.Module], diags: Diagnostics) -> set[str]:
    files = {d.span.file for d in diags.errors}
    return {name for name, m in program.items() if m.file in files}


def _record_decls(scopes: dict[str, ModuleScope], facts: Facts) -> None:
    for scope in scopes.values():
        for name, sym in scope.own.items():
            facts.decls[sym.qualname] = sym.decl
            facts.qualnames[id(sym.decl)] = sym.qualname
            if sym.kind is SymKind.ROBOT:
                for cmd in sym.decl.commands:
                    facts.qualnames.setdefault(id(cmd), f"{sym.qualname}.{cmd.name.name}")


def _collect_signals(scopes: dict[str, ModuleScope], resolver: Resolver, facts: Facts,
                     diags: Diagnostics) -> dict[str, T.Type]:
    """Every declared signal's payload type (NONE without payload); the first declaration of a type wins."""
    payloads: dict[str, T.Type] = {}
    for scope in scopes.values():
        for decl in scope.module.decls:
            if not isinstance(decl, ast.SignalDecl):
                continue
            text = decl.type.text
            payload = resolver.type_of(decl.payload, scope) if decl.payload is not None else T.NONE
            if decl.payload is not None and not isinstance(payload, T.RecordT) and not T.is_lenient(payload):
                diags.error("BBF201", f"the payload of signal `{text}` must be a record, found {payload}",
                            decl.payload.span, help=f"name the value: `signal {text}: {{value: {payload}}}`")
                payload = T.ERROR  # reported once here, not again at every emit
            facts.decl_types[id(decl)] = payload
            if text not in facts.signals:
                facts.signals[text] = decl
                payloads[text] = payload
    return payloads


# --- the whole-program checks ----------------------------------------------------------


def duplicate_signals(sites: Iterable[SignalSite], diags: Diagnostics) -> None:
    """BBF102 at every declaration of a signal type declared before (``sites`` in program order)."""
    first: dict[str, SignalSite] = {}
    for site in sites:
        if site.text in first:
            diags.error("BBF102", f"signal `{site.text}` is already declared", site.type_span,
                        labels=(Label(first[site.text].type_span, "first declared here"),))
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
    """(the declared signals the routes of ``module``'s agents match, those they emit or schedule).

    What ``unused_signals`` needs of a module; ``facts``: of a check that saw
    every signal declaration. Nothing for a module with syntax errors (its
    agents are not analysed).
    """
    if module.name in facts.broken:
        return frozenset(), frozenset()
    declared = set(facts.signals)
    handled: set[str] = set()
    emitted: set[str] = set()
    for decl in module.decls:
        if not isinstance(decl, ast.AgentDecl):
            continue
        for route in decl.routes:
            pattern = compile_pattern(route.pattern.text)
            if isinstance(pattern, Pattern):
                handled.update(s for s in declared if pattern.matches(s))
        emitted |= check_emits(decl, declared, Diagnostics())  # its diagnostics were reported by the check
    return frozenset(handled), frozenset(emitted)


def _run_analyses(facts: Facts, diags: Diagnostics) -> None:
    """The graph, compensation and route analyses, once they are part of the tree."""
    try:
        from bbflow.compiler.analyses import analyse
    except ImportError:  # pragma: no cover - the analyses ship with the checker
        return
    analyse(facts, diags)
