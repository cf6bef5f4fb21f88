"""The checker: every semantic check of LANGUAGE.md §2-§8, in order, over a whole program.

Passes, each over all modules: the standard library is added (``std.prelude``
and friends), every module's declarations become symbols (BBF102), imports
are linked (BBF103/104/101), signals are collected, declarations and bodies
are type-checked (BBF101-102, BBF201-205, BBF302), and then the analyses
(dependency graph, compensation, routes) run on the ``Facts`` gathered.

A module with syntax errors still contributes its declarations, but its
bodies are not checked and names it fails to define are not reported again:
the syntax error is the one diagnostic for that mistake.
"""

from __future__ import annotations

from typing import Any

from bbflow.compiler import ast
from bbflow.compiler import types as T
from bbflow.compiler.diagnostics import Diagnostics, Label
from bbflow.compiler.facts import Facts
from bbflow.compiler.modules import link, load_stdlib
from bbflow.compiler.resolve import Resolver, declare
from bbflow.compiler.symbols import ModuleScope, SymKind
from bbflow.compiler.typecheck import TypeChecker


def check(modules: "list[ast.Module] | Any", diags: Diagnostics | None = None, *, stdlib: bool = True) -> Facts:
    """Check parsed ``modules``, adding diagnostics to ``diags``; the facts established.

    Also accepts the pipeline's ``CompileResult`` (its ``modules`` and
    ``diagnostics``), which is how ``bbflow.compiler.pipeline`` calls it.
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
    checker = TypeChecker(resolver, facts, diags, signals)
    for scope in scopes.values():
        if not scope.broken:
            checker.check_module(scope)

    # Only modules that could not be read whole (syntax errors) are unfit for the
    # analyses; a type error elsewhere in a file must not hide a missing undo.
    # The analyses skip each reactor that has an error of its own.
    facts.broken = broken
    _run_analyses(facts, diags)
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
    """Every declared signal's payload type (NONE without payload); BBF102 for one declared twice."""
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
            if text in facts.signals:
                diags.error("BBF102", f"signal `{text}` is already declared", decl.type.span,
                            labels=(Label(facts.signals[text].type.span, "first declared here"),))
                continue
            facts.signals[text] = decl
            payloads[text] = payload
    return payloads


def _run_analyses(facts: Facts, diags: Diagnostics) -> None:
    """The graph, compensation and route analyses, once they are part of the tree."""
    try:
        from bbflow.compiler.analyses import analyse
    except ImportError:  # pragma: no cover - the analyses ship with the checker
        return
    analyse(facts, diags)
