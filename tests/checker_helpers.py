"""Helpers for the checker tests: check source text, look at what came out."""

from __future__ import annotations

from bbflow.compiler import ast
from bbflow.compiler.checker import check
from bbflow.compiler.diagnostics.core import Diagnostic, Diagnostics
from bbflow.compiler.semantic.facts import Facts
from bbflow.compiler.syntax.parser import parse_text

#: a robot interface most tests use (as in the conformance cases)
ARM = """
type Pose = {x: float, y: float, z: float}
enum Grip { open, closed }

robot Arm {
    states idle, busy
    limit motion 1
    command move_to(target: Pose, speed: float = 0.5) -> Pose category motion
    command grip(force: float = 20.0) -> Grip undo release()
    command release() -> Grip
    command read_force() -> float readonly
    command beep()
    event force: {newtons: float}
}

action locate(color: str) -> Pose? pure = "cell.vision:locate"
action plan(p: Pose) -> Pose pure = "cell.plan:plan"
"""


def check_modules(sources: dict[str, str], *, stdlib: bool = True) -> tuple[Diagnostics, Facts, list[ast.Module]]:
    """Parse and check modules given as {module name: text}; the file of `a.b` is `a/b.flow`."""
    diags = Diagnostics()
    modules = []
    for name, text in sources.items():
        module, parsed = parse_text(text, name.replace(".", "/") + ".flow", name)
        assert not parsed.items, [d.message for d in parsed.items]
        modules.append(module)
    facts = check(modules, diags, stdlib=stdlib)
    return diags, facts, modules


def check_text(text: str, *, arm: bool = False) -> tuple[Diagnostics, Facts, ast.Module]:
    """Check one module (`main`), with the ARM declarations prepended when ``arm``."""
    diags, facts, modules = check_modules({"main": (ARM if arm else "") + text})
    return diags, facts, modules[0]


def codes(diags: Diagnostics) -> list[str]:
    return [d.code for d in diags.sorted()]


def only(diags: Diagnostics, code: str) -> Diagnostic:
    """The one diagnostic there is, which must have ``code`` (one mistake, one diagnostic)."""
    found = [(d.code, d.message) for d in diags.sorted()]
    assert len(found) == 1 and found[0][0] == code, found
    return diags.sorted()[0]


def line_of(text: str, needle: str, *, arm: bool = False) -> int:
    """The 1-based line of the first line containing ``needle`` (counting the ARM prefix when ``arm``)."""
    full = (ARM if arm else "") + text
    for n, line in enumerate(full.split("\n"), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in the text")


def decl(module: ast.Module, name: str) -> object:
    for d in module.decls:
        if getattr(getattr(d, "name", None), "name", None) == name:
            return d
    raise KeyError(name)
