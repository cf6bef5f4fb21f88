"""Shared helpers of the codegen/build tests: build .flow sources into a loaded Program."""

from __future__ import annotations

from pathlib import Path

from bbflow.build import build_program, write_package
from bbflow.runtime import model
from bbflow.runtime.loader import load_program


def write_flows(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def flows_project(root: Path, files: dict[str, str], name: str = "cell") -> Path:
    """A project ``name`` at ``root`` (resolved) whose sources, ``files``, are under ``flows/``."""
    root = root.resolve()
    write_flows(root, {"bbflow.toml": f'[project]\nname = "{name}"\nsource = "flows"\n',
                       **{f"flows/{rel}": text for rel, text in files.items()}})
    return root


def build_and_load(root: Path, files: dict[str, str] | None = None, *, out: str = "out") -> model.Program:
    """Build the .flow files under ``root`` (after writing ``files``) and load the generated package."""
    if files:
        write_flows(root, files)
    built = build_program([root], use_cache=False)
    errors = [f"{d.code} {d.span.file}:{d.span.line} {d.message}" for d in built.diagnostics.errors]
    assert not errors, errors
    write_package(built.modules, root / out)
    return load_program(root / out)
