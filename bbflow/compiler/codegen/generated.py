"""What the code generator makes, and where it goes: without the generator, for a check that generates nothing."""

from __future__ import annotations

import keyword
import re

import attrs

__all__ = ["GeneratedModule", "flow_path", "module_path"]


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
