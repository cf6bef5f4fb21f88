"""The code generator: one checked ``.flow`` module to one Python module.

A generated module builds the executable model (``bbflow.runtime.model``)
and nothing else: structure as data (constructor calls), expressions as
small functions ``def _eN(s): return ...``. It records
``COMPILER_VERSION``, ``SOURCE_SHA256`` and ``ABI``, refuses to load against
a runtime with another ABI (``bbflow.runtime.loader.require_abi``), exposes
``DECLS`` and ``register(program)``, and carries its line map
(``__bbflow_lines__``: generated line -> ``.flow`` line) so that
``bbflow.runtime.linemap`` can point an exception at ``cell.flow:12``.

Output depends only on the module, the modules it imports and the checker's
facts about them (which is what the cache keys on): declarations in
source order, names numbered in order of creation, no hashes of Python
objects, no absolute paths, no time. The same sources give the same bytes.
"""

from __future__ import annotations

import hashlib
import keyword
import re

import attrs

from bbflow import __version__
from bbflow.compiler import ast
from bbflow.compiler.codegen.decl import DeclGen
from bbflow.compiler.codegen.expr import CodegenError, ExprFunctions, ExprGen
from bbflow.compiler.codegen.src import Line, Src, comment, ident, literal, render
from bbflow.compiler.codegen.types import TypeTable
from bbflow.compiler.semantic.facts import Facts
from bbflow.runtime import model

__all__ = ["CodegenError", "GeneratedModule", "flow_path", "generate_module", "module_path"]

_PREFIX = {ast.RobotDecl: "robot_", ast.ActionDecl: "action_", ast.ReactorDecl: "reactor_", ast.AgentDecl: "agent_"}


@attrs.frozen(slots=True)
class GeneratedModule:
    """The Python source of one module and where its lines come from."""

    module: str  # dotted .flow module name ("cell.arm")
    flow_file: str  # "cell/arm.flow"
    source_sha256: str
    code: str
    linemap: dict[int, int]  # generated line -> .flow line


def flow_path(module: str) -> str:
    """The ``.flow`` path of a module relative to its source root: ``cell.arm`` -> ``cell/arm.flow``."""
    return module.replace(".", "/") + ".flow"


def module_path(module: str, all_modules: set[str] | frozenset[str]) -> str:
    """Where a module's code goes in the output package (``cell/arm.py``).

    A module that other modules live under (``cell`` beside ``cell.arm``) is
    its package's ``__init__.py``. A part of the name that is not a Python
    identifier (``001_cell``, ``pick-and-place``, ``class``) is written with a
    leading underscore and ``_`` for each character an identifier cannot hold
    (``_001_cell.py``), so that every generated file is a valid module name
    (ruff's N999); the build manifest maps each module to its file.
    """
    parts = [_python_name(p) for p in module.split(".")]
    while parts != module.split(".") and ".".join(parts) in all_modules:  # a module by that very name
        parts[-1] += "_"
    if any(m.startswith(module + ".") for m in all_modules):
        return "/".join(parts) + "/__init__.py"
    return "/".join(parts) + ".py"


def _python_name(part: str) -> str:
    if part.isidentifier() and not keyword.iskeyword(part):
        return part
    return "_" + re.sub(r"\W", "_", part)


def generate_module(module: ast.Module, facts: Facts, source_text: str) -> GeneratedModule:
    """Generate the Python module for ``module`` (which must have checked without errors).

    Raises ``CodegenError`` if the facts do not cover the module (a compiler bug).
    """
    file = flow_path(module.name)
    types = TypeTable()
    fns = ExprFunctions()
    exprs = ExprGen(facts, types, fns)
    decls = DeclGen(facts, exprs, file)

    sections: list[tuple[str, str, int, int, Src]] = []  # (variable, title, line, functions end, source)
    for d in module.decls:
        if isinstance(d, ast.RobotDecl):
            src, var, kind = decls.robot(d), ident("robot_", d.name.name), "robot"
        elif isinstance(d, ast.ActionDecl):
            src, var, kind = decls.action(d), ident("action_", d.name.name), "action"
        elif isinstance(d, ast.SignalDecl):
            src, var, kind = decls.signal(d), f"signal_{len(sections) + 1}", "signal"
        elif isinstance(d, ast.ReactorDecl):
            src, var, kind = decls.reactor(d), ident("reactor_", d.name.name), "reactor"
        elif isinstance(d, ast.AgentDecl):
            src, var, kind = decls.agent(d), ident("agent_", d.name.name), "agent"
        else:  # type aliases and enums live on in the descriptors that use them
            continue
        title = d.type.text if isinstance(d, ast.SignalDecl) else d.name.name
        sections.append((var, f"{kind} {comment(title)}", d.span.line, len(fns.items), src))

    out = _Writer(file)
    out.header(module, source_text)
    if types.defs:
        out.blank()
        out.add("# --- types", 0)
        for name, src, _spelled in types.defs:
            out.extend(render(src, file=file, prefix=f"{name} = "))
    emitted_fns = 0
    for var, title, line, end, src in sections:
        out.blank()
        out.blank()
        out.add(f"# --- {title} ({comment(file)}:{line})", line)
        # the functions this declaration uses, then the declaration
        for name, body, fline in fns.items[emitted_fns:end]:
            out.add(f"def {name}(s):  # {comment(file)}:{fline}", fline)
            out.add(f"    return {body}", fline)
            out.blank()
        emitted_fns = end
        out.extend(render(src, file=file, prefix=f"{var} = "))
    out.footer([s[0] for s in sections])
    return GeneratedModule(module.name, file, _sha256(source_text), out.text(), out.linemap())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@attrs.define
class _Writer:
    file: str
    lines: list[Line] = attrs.Factory(list)

    def add(self, text: str, line: int) -> None:
        self.lines.append((text, line))

    def extend(self, lines: list[Line]) -> None:
        self.lines.extend(lines)

    def blank(self) -> None:
        self.lines.append(("", 0))

    def header(self, module: ast.Module, source_text: str) -> None:
        self.add(literal(f"Generated by bbflow {__version__} from {self.file} (module {module.name}). Do not edit."), 0)
        self.blank()
        self.add("from bbflow.runtime import exprlib as _x", 0)
        self.add("from bbflow.runtime import model as _m", 0)
        self.add("from bbflow.runtime import types as _t", 0)
        self.add("from bbflow.runtime.loader import require_abi as _require_abi", 0)
        self.blank()
        self.add(f"MODULE = {literal(module.name)}", 0)
        self.add(f"SOURCE_FILE = {literal(self.file)}", 0)
        self.add(f"SOURCE_SHA256 = {literal(_sha256(source_text))}", 0)
        self.add(f"COMPILER_VERSION = {literal(__version__)}", 0)
        self.add(f"ABI = {model.ABI}", 0)
        self.blank()
        self.add("_require_abi(MODULE, ABI, COMPILER_VERSION)", 0)
        self.add("__bbflow_file__ = SOURCE_FILE", 0)

    def footer(self, names: list[str]) -> None:
        self.blank()
        self.blank()
        self.add("# --- what this module declares", 0)
        if names:
            self.add("DECLS = (", 0)
            for n in names:
                self.add(f"    {n},", 0)
            self.add(")", 0)
        else:
            self.add("DECLS = ()", 0)
        self.blank()
        self.blank()
        self.add("def register(program):", 0)
        self.add('    """Add every declaration of this module to ``program`` (a ``model.Program``)."""', 0)
        self.add("    for decl in DECLS:", 0)
        self.add("        program.add(decl)", 0)
        self.blank()
        self.blank()
        self.add("# generated line -> .flow line, for tracebacks (bbflow.runtime.linemap)", 0)
        mapping = self.linemap()
        self.add("__bbflow_lines__ = {", 0)
        items = [f"{g}: {f}" for g, f in sorted(mapping.items())]
        for i in range(0, len(items), 10):
            self.add("    " + ", ".join(items[i:i + 10]) + ",", 0)
        self.add("}", 0)

    def linemap(self) -> dict[int, int]:
        return {i + 1: line for i, (_, line) in enumerate(self.lines) if line}

    def text(self) -> str:
        """The module; an import the body does not use is marked ``noqa: F401``, and only then (ruff's
        default rules pass, with no unused ``noqa``)."""
        body = "\n".join(text.rstrip() for text, _ in self.lines) + "\n"
        for alias in ("_x", "_t"):
            if f"{alias}." not in body:
                line = next(text for text, _ in self.lines if text.endswith(f" as {alias}"))
                body = body.replace(line + "\n", f"{line}  # noqa: F401 - unused in this module\n", 1)
        return body
