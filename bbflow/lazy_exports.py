"""A package's public names, imported on first use (PEP 562), so importing the package costs nothing.

``bbflow.compiler`` and ``bbflow.runtime`` list where each public name lives;
``import bbflow.runtime.model`` (what the compiler's cache needs) then no longer
imports the executor, the agents and asyncio, and ``bbflow explain`` loads
neither lark nor networkx.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["LazyExports", "lazy_exports"]


class LazyExports:
    """A package's module ``__getattr__``: ``public`` maps a submodule ("" for the package itself) to the
    names it holds: its attributes, or else its submodules of that name."""

    def __init__(self, package: str, public: Mapping[str, tuple[str, ...]]) -> None:
        self.package = package
        self.home = {name: where for where, names in public.items() for name in names}

    def __call__(self, name: str) -> Any:
        if name not in self.home:
            raise AttributeError(f"module {self.package!r} has no attribute {name!r}")
        module = f"{self.package}.{self.home[name]}".rstrip(".")
        value = getattr(importlib.import_module(module), name, None) if module != self.package else None
        if value is None:
            value = importlib.import_module(f"{module}.{name}")
        setattr(sys.modules[self.package], name, value)
        return value


def lazy_exports(package: str, public: Mapping[str, tuple[str, ...]]) -> LazyExports:
    """The ``__getattr__`` of ``package``, importing each public name where ``public`` says, on first use."""
    return LazyExports(package, public)
