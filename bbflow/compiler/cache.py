"""The on-disk compilation cache (``.bbflow/cache`` under the project root).

Entries are keyed by content, never by time or path:

- ``imports/<sha>.json``: the modules a source text imports (keyed by the
  text's SHA-256), so that keys can be computed without parsing;
- ``modules/<key>.json``: the generated Python code of one module (and its
  line map), keyed by the module key below;
- ``programs/<key>.json``: the diagnostics of a whole program, keyed by the
  module keys of all its modules (some checks, such as a signal that no
  module handles, look at the whole program).

A module's key hashes the compiler itself (a fingerprint of the code of the
installed ``bbflow`` package, so that a changed compiler never replays what
an older one found, even between two releases), the runtime ABI, the module's
name and source, and the keys of the modules it imports (the standard
library's sources included). So an unchanged module whose imports are
unchanged hits; a change to an imported module changes the keys of all its
importers, directly or not, and they miss.

Entries are written atomically (a temporary file, then ``os.replace``) so
that two builds sharing a cache never read half an entry; an unreadable or
malformed entry is a miss, never an error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from bbflow import __version__
from bbflow.compiler.diagnostics import Diagnostic, Label, Severity
from bbflow.compiler.source import Span
from bbflow.runtime import model

CACHE_DIR = ".bbflow/cache"
#: bump when the layout of an entry changes
FORMAT = 1
#: stored spans name modules, not paths, so entries do not depend on the folder a build ran from
MODULE_MARK = "module:"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def compiler_fingerprint() -> str:
    """A hash of every Python and grammar file of the installed ``bbflow`` package (read once per process)."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"bbflow {__version__}".encode("utf-8"))
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".lark") and p.is_file()):
        h.update(path.relative_to(package).as_posix().encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@attrs.frozen(slots=True)
class Entry:
    """The generated code of one module."""

    code: str
    linemap: dict[int, int]


def module_keys(sources: Mapping[str, str], imports: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """The cache key of every module: its source and, transitively, everything it imports.

    ``sources``: module name -> text (standard library included); ``imports``:
    module name -> the modules it imports. An import of a module not in
    ``sources`` (a mistake the checker reports) enters the key as missing, so
    creating that module later changes the importer's key. Import cycles (an
    error too) are cut where they close.
    """
    keys: dict[str, str] = {}

    def key(name: str, visiting: tuple[str, ...]) -> str:
        if name in keys:
            return keys[name]
        if name not in sources:
            return "missing:" + name
        if name in visiting:
            return "cycle:" + name
        h = hashlib.sha256()
        for part in (compiler_fingerprint(), f"abi {model.ABI}", f"format {FORMAT}", name, sha256(sources[name])):
            h.update(part.encode("utf-8") + b"\0")
        for dep in sorted(set(imports.get(name, ()))):
            h.update(f"{dep}={key(dep, (*visiting, name))}".encode("utf-8") + b"\0")
        keys[name] = h.hexdigest()
        return keys[name]

    for name in sorted(sources):
        key(name, ())
    return keys


@attrs.define
class Cache:
    """One project's cache folder."""

    root: Path  # the cache folder itself (``PROJECT/.bbflow/cache``)
    hits: int = 0
    misses: int = 0

    @classmethod
    def for_project(cls, project_root: Path | str) -> "Cache":
        return cls(Path(project_root) / CACHE_DIR)

    # --- imports -------------------------------------------------------------------

    def imports(self, source_sha: str) -> tuple[str, ...] | None:
        data = self._read(self.root / "imports" / f"{source_sha}.json")
        if not isinstance(data, list) or not all(isinstance(m, str) for m in data):
            return None
        return tuple(data)

    def store_imports(self, source_sha: str, modules: tuple[str, ...]) -> None:
        self._write(self.root / "imports" / f"{source_sha}.json", sorted(set(modules)))

    # --- modules and programs --------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        """The generated code cached under a module key; None on a miss."""
        data = self._read(self.root / "modules" / f"{key}.json")
        entry = _entry_from_json(data) if isinstance(data, dict) else None
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: str, entry: Entry) -> None:
        data = {"format": FORMAT, "code": entry.code, "linemap": {str(k): v for k, v in entry.linemap.items()}}
        self._write(self.root / "modules" / f"{key}.json", data)

    def get_diagnostics(self, keys: Mapping[str, str], files: Mapping[str, str]) -> list[Diagnostic] | None:
        """The diagnostics of the program made of the modules ``keys``; ``files``: module -> path shown now."""
        data = self._read(self.root / "programs" / f"{program_key(keys)}.json")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        try:
            return [_diag_from_json(d, files) for d in data["diagnostics"]]
        except (KeyError, TypeError, ValueError):
            return None

    def put_diagnostics(self, keys: Mapping[str, str], files: Mapping[str, str], diags: list[Diagnostic]) -> None:
        modules = {path: name for name, path in files.items()}
        data = {"format": FORMAT, "diagnostics": [_diag_to_json(d, modules) for d in diags]}
        self._write(self.root / "programs" / f"{program_key(keys)}.json", data)

    # --- files ---------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write(self, path: Path, data: Any) -> None:
        """Write atomically; a cache that cannot be written only makes the next build slower."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            gitignore = self.root.parent / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", encoding="utf-8")
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            return


# --- (de)serialising entries --------------------------------------------------------


def program_key(keys: Mapping[str, str]) -> str:
    return sha256("\n".join(f"{name}={key}" for name, key in sorted(keys.items())))


def _span_to_json(span: Span, modules: Mapping[str, str]) -> list[Any]:
    name = MODULE_MARK + modules[span.file] if span.file in modules else span.file
    return [name, span.line, span.column, span.end_line, span.end_column]


def _span_from_json(data: Any, files: Mapping[str, str]) -> Span:
    name, line, column, end_line, end_column = data
    name = str(name)
    if name.startswith(MODULE_MARK):
        name = files.get(name[len(MODULE_MARK):], name)
    return Span(name, int(line), int(column), int(end_line), int(end_column))


def _diag_to_json(d: Diagnostic, modules: Mapping[str, str]) -> dict[str, Any]:
    return {
        "code": d.code, "severity": d.severity.value, "message": d.message,
        "span": _span_to_json(d.span, modules),
        "labels": [[_span_to_json(lb.span, modules), lb.message] for lb in d.labels],
        "notes": list(d.notes), "help": d.help,
    }


def _diag_from_json(d: dict[str, Any], files: Mapping[str, str]) -> Diagnostic:
    return Diagnostic(
        str(d["code"]), Severity(d["severity"]), str(d["message"]), _span_from_json(d["span"], files),
        tuple(Label(_span_from_json(s, files), str(m)) for s, m in d["labels"]),
        tuple(str(n) for n in d["notes"]), None if d["help"] is None else str(d["help"]),
    )


def _entry_from_json(data: dict[str, Any]) -> Entry | None:
    if data.get("format") != FORMAT or not isinstance(data.get("code"), str):
        return None
    try:
        linemap = {int(k): int(v) for k, v in data["linemap"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return Entry(data["code"], linemap)
