"""``bbflow init``: a new project that checks clean and runs on the simulated robot.

The project's files are package data under ``bbflow/scaffold/project``
(``gitignore`` is written as ``.gitignore``); ``{name}`` in ``bbflow.toml``
and ``README.md`` becomes the project's name, taken from its folder.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["InitError", "init_project", "project_files"]

_RENAMED = {"gitignore": ".gitignore"}
_NAMED = ("bbflow.toml", "README.md")


class InitError(Exception):
    """A project that cannot be created: a file is in the way, or the folder is not writable."""


def project_files(name: str) -> dict[str, str]:
    """The new project's files, by path relative to its folder."""
    files: dict[str, str] = {}
    _collect(resources.files(__name__).joinpath("project"), "", files)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "cell"
    return {path: text.replace("{name}", safe) if path in _NAMED else text for path, text in sorted(files.items())}


def init_project(folder: str | Path) -> list[Path]:
    """Write a new project into ``folder`` (created if needed); refuses to overwrite any file.

    Returns the files written. Nothing is written when any of them exists already.
    """
    root = Path(folder)
    files = project_files(root.resolve().name)
    taken = [path for path in files if (root / path).exists()]
    if taken:
        raise InitError(f"{root}: would overwrite {', '.join(taken)}; nothing written (choose an empty folder)")
    written = []
    try:
        for path, text in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "x", encoding="utf-8") as out:  # "x": never replace a file made meanwhile
                out.write(text)
            written.append(target)
    except OSError as e:
        raise InitError(f"{e.filename or root}: cannot write: {e.strerror or e}") from e
    return written


def _collect(folder: Traversable, prefix: str, into: dict[str, str]) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith(("__", ".")):
            continue
        path = f"{prefix}{_RENAMED.get(entry.name, entry.name)}"
        if entry.is_dir():
            _collect(entry, path + "/", into)
        else:
            into[path] = entry.read_text(encoding="utf-8")
