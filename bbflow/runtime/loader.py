"""Load a package made by ``bbflow build`` into a runtime ``model.Program``.

The package holds one Python module per ``.flow`` module and a manifest,
``bbflow_build.json``, that lists them. Modules are loaded by file path under
private names, so a ``.flow`` module called ``json`` or ``001_cell`` can never
shadow or be shadowed by an installed Python package.

Each generated module calls ``require_abi`` before it builds anything, so a
module generated for another shape of the executable model refuses to load
(``IncompatibleModule``) with a message that names the module, the compiler
that made it and this runtime, whether it is loaded here or imported directly.

This module must not import the compiler, lark or networkx: a robot runs
generated code with ``bbflow.runtime`` alone.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from bbflow import __version__
from bbflow.runtime import model

MANIFEST = "bbflow_build.json"


class LoadError(Exception):
    """A generated package that cannot be loaded (missing, malformed, incompatible)."""


class IncompatibleModule(LoadError, ImportError):
    """A generated module targets another ABI of the executable model."""


def require_abi(module: str, abi: int, compiler_version: str) -> None:
    """Called by every generated module first thing: refuse to load against another ABI."""
    if abi != model.ABI:
        raise IncompatibleModule(
            f"generated module {module} was built by bbflow {compiler_version} for runtime ABI {abi}, "
            f"but this runtime (bbflow {__version__}) implements ABI {model.ABI}; "
            f"rebuild it with `bbflow build`"
        )


def read_manifest(directory: Path | str) -> dict[str, Any]:
    """The build manifest: ``{"compiler_version", "abi", "modules": {name: {"path", "source_sha256"}}}``."""
    file = Path(directory) / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise LoadError(f"{file}: cannot read the build manifest: {e.strerror or e}") from e
    except ValueError as e:
        raise LoadError(f"{file}: not a valid build manifest: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("modules"), dict):
        raise LoadError(f"{file}: not a valid build manifest: no `modules` table")
    return data


def load_module(path: Path | str, name: str) -> ModuleType:
    """Execute one generated module file and check what it records."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"bbflow_generated.{name}", path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{path}: cannot load generated module {name}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for attr in ("MODULE", "ABI", "COMPILER_VERSION", "SOURCE_SHA256", "DECLS", "register"):
        if not hasattr(mod, attr):
            raise LoadError(f"{path}: not a bbflow generated module (no {attr})")
    if name != mod.MODULE:
        raise LoadError(f"{path}: holds module {mod.MODULE}, but the manifest says {name}")
    require_abi(name, mod.ABI, mod.COMPILER_VERSION)
    return mod


def load_modules(directory: Path | str) -> list[ModuleType]:
    """Every module of a generated package, in module-name order."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    mods = []
    for name in sorted(manifest["modules"]):
        entry = manifest["modules"][name]
        rel = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise LoadError(f"{directory / MANIFEST}: bad path for module {name}")
        mods.append(load_module(directory / rel, name))
    return mods


def load_program(directory: Path | str) -> model.Program:
    """A ``model.Program`` with every declaration of the generated package at ``directory``."""
    program = model.Program()
    for mod in load_modules(directory):
        mod.register(program)
    return program
