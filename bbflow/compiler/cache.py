"""The on-disk compilation cache (``.bbflow/cache`` under the project root): per module, for checking too.

Entries are keyed by content, never by time or path:

- ``scans/<sha>.json``: what a source text says about itself without being
  checked (a ``Scan``: the modules it imports, the signals it declares, whether
  it has agents or a ``wait_signal`` call, whether it has syntax errors), keyed by the compiler and the
  text, so that module keys can be computed without parsing;
- ``signals/<base key>.json``: the signals a module declares, each with its
  payload type as the checker resolved it in that module (``SignalEntry``),
  keyed by the module's base key below;
- ``tables/<id>.json``: the digest of the program's signal table, keyed by
  the declaring modules' names and base keys (``table_id``), so that an
  unchanged program reads one entry, not one per declaring module;
- ``checks/<key>.json``: what checking one module found (a ``ModuleCheck``:
  the diagnostics in its file, and the signals its agents handle and emit),
  keyed by the module key below;
- ``modules/<key>.json``: the generated Python code of one module (and its
  line map), keyed by the same module key.

**Base keys.** A module's base key hashes the compiler itself (a fingerprint
of the code of the installed ``bbflow`` package, so that a changed compiler
never replays what an older one found), the runtime ABI, the module's name,
and the names and texts of every module in its import closure (itself
included, imports followed transitively, the standard library's too, cycles
included as a set; an import of a module that does not exist enters as
missing, so creating it later changes the key). Two program-wide facts enter
some base keys as well:

- a module importing a module that does not exist gets a BBF103 whose "did
  you mean" looks at every module name: its key adds all module names;
- a module with syntax errors is not checked itself, but its declarations are
  resolved on demand by whichever module uses them, so its diagnostics depend
  on its importers: its key adds every module's name and text (the program).

The payload types of a module's signals are resolved in the module's own
scope, from its import closure: they are a function of its base key, and are
cached under it.

**Module keys.** What a module's check reads beyond its import closure is
the program's signals, when it reads them at all: signals are global, so a
module with agents is typed by, and judged against (BBF503, BBF504), the
signals declared anywhere, and a reactor's ``wait_signal`` step binds the
payload of a signal its module need not import. Such a module
(``Scan.reads_signals``) is keyed by its base key and the signal table; any
other by its base key alone. The checker records which modules' checks did
read the signals (``Facts.signal_readers``), and the pipeline stores no check
whose key does not cover what it read. What a reader's check and code read of
the signals is the program's signal table (``signal_table``): every signal type, in
program order, with the module that declares it first and that declaration's
resolved payload type, written out structurally (``type_to_json``: records
with their fields and alias names, enums by qualified name and members,
lists, maps, optionals, primitives, ``none``, and the error type of a payload
that failed to resolve). Its key is its base key and that table. Nothing else
of the declaring modules reaches an agent: route patterns are matched against
the table's types, emitted payloads are checked against its payloads (the
messages show them by their alias and enum names, which the table holds), a
bound route's envelope is built from them, an enum member written bare in a
payload is found among the table's members, generated code converts values
by the types the checker inferred from them; robot events come from the
agent's robot, which is in its import closure; a ``wait_signal`` step's envelope and
its "unknown signal" did-you-mean come from the table too. (The declaring module is in
the table although nothing reads it today: moving a declaration is rare.)
So a change to a declaring module that leaves its resolved signals as they
were (a comment, a reactor, a type alias no payload uses) re-checks that
module and its importers only.

**Whole-program checks** are computed on every run, from the scans and the
module checks (cached or fresh), never stored as a result: BBF102 for a signal
declared in two modules (from the scans' declarations, in program order) and
BBF505 for a signal neither handled nor emitted (from the scans' declarations,
every module's route patterns, each distinct one matched once against an index
of the declared signals, and its emitted signals; off when a module of the
project has syntax errors, as in the checker). BBF104 (import cycles) needs no
summary: every module of a cycle has the whole cycle in its import closure, so
they miss together and the cycle is checked whole.

Entries are written atomically (a temporary file, then ``os.replace``) so
that two builds sharing a cache never read half an entry; an unreadable or
malformed entry is a miss, never an error.

**Trust.** A cached entry is replayed instead of checking, and generated code
from the cache is executed by ``bbflow run``: the cache is trusted as much as
the project's own files, and no more. So every entry is verified on read: its
first line is a SHA-256 over the entry's kind and key and its body
(``ENTRY_MAGIC``), and an entry whose digest does not match (edited, damaged,
or copied under another key) is a miss, checked again from the sources and
rewritten. And a cache folder that another user could write to (the cache
folder or ``.bbflow`` above it group- or world-writable, or owned by another
user, as pip and ccache refuse) is not used at all: nothing is read from it
or written to it, and ``Cache.refused`` says why (the commands print it as a
warning). Folders the cache creates are private to the user (mode 0700). The
digest is not a signature: someone who can write the project's files as the
user can also recompute it, and could edit the sources themselves. Spans are stored with module names
instead of paths, so a replay shows the paths the user typed this time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from bbflow import __version__
from bbflow.compiler import ast
from bbflow.compiler.diagnostics.core import Diagnostic, Label, Severity
from bbflow.compiler.semantic import types as T
from bbflow.compiler.source import Span
from bbflow.runtime.contract import ABI
from bbflow.runtime.ids import folder_key

CACHE_DIR = ".bbflow/cache"
#: names a folder to keep every project's cache in, instead of the projects' own folders
CACHE_ENV = "BBFLOW_CACHE"
#: bump when the layout of an entry changes
FORMAT = 7
#: the first line of every entry: this, then the hex SHA-256 of the entry's kind, key and body
ENTRY_MAGIC = b"bbflow-cache sha256:"
_WARNED: set[str] = set()
#: stored spans name modules, not paths, so entries do not depend on the folder a build ran from
MODULE_MARK = "module:"
#: the one call outside agents whose check reads the program's signals
WAIT_SIGNAL = "wait_signal"
#: the file of the spans in a ``Scan`` (which does not know where its text was read from)
TEXT_FILE = ""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def compiler_fingerprint() -> str:
    """A hash of every Python and grammar file of the installed ``bbflow`` package (read once per process)."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"bbflow {__version__}".encode())
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".lark") and p.is_file()):
        h.update(path.relative_to(package).as_posix().encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def scan_key(text: str) -> str:
    """The key of a text's ``Scan``: the text and the compiler that parsed it."""
    return _hash((compiler_fingerprint(), f"format {FORMAT}", sha256(text)))


@attrs.frozen(slots=True)
class Entry:
    """The generated code of one module."""

    code: str
    linemap: dict[int, int]


@attrs.frozen(slots=True)
class SignalSite:
    """One ``signal`` declaration: its type, the declaration's span and its type's span."""

    text: str
    span: Span
    type_span: Span

    @classmethod
    def of(cls, decl: ast.SignalDecl) -> SignalSite:
        return cls(decl.type.text, decl.span, decl.type.span)


@attrs.frozen(slots=True)
class RobotSite:
    """The names a ``robot`` declaration gives (what the project file may name: commands, events, states)."""

    name: str
    commands: tuple[str, ...]
    events: tuple[str, ...]
    states: tuple[str, ...]

    @classmethod
    def of(cls, decl: ast.RobotDecl) -> RobotSite:
        return cls(decl.name.name, tuple(c.name.name for c in decl.commands), tuple(e.name.name for e in decl.events),
                   tuple(n.name for s in decl.states for n in s.names))


@attrs.frozen(slots=True)
class Scan:
    """What a module's text says about itself, known from parsing alone (spans name ``TEXT_FILE``)."""

    imports: tuple[str, ...]  # the modules it imports, as written (sorted)
    signals: tuple[SignalSite, ...]  # in declaration order
    agents: tuple[str, ...]  # the agents it declares (whose routes and emits read the program's signals)
    broken: bool  # the parser reported an error
    robots: tuple[RobotSite, ...] = ()  # the robot interfaces it declares
    waits: bool = False  # a call of `wait_signal` (which reads the program's signals) is written in it

    @property
    def reads_signals(self) -> bool:
        """Does checking it read the program's signal table (an agent's routes and emits, a ``wait_signal``)?"""
        return bool(self.agents) or self.waits

    @classmethod
    def of(cls, module: ast.Module, broken: bool, implied: Iterable[str] = ()) -> Scan:
        """The scan of a parsed module; ``implied``: modules it imports without saying so (the prelude)."""
        imports = {".".join(i.name for i in imp.module) for imp in module.imports} | set(implied)
        signals = tuple(_anonymous(SignalSite.of(d)) for d in module.decls if isinstance(d, ast.SignalDecl))
        agents = tuple(d.name.name for d in module.decls if isinstance(d, ast.AgentDecl))
        robots = tuple(RobotSite.of(d) for d in module.decls if isinstance(d, ast.RobotDecl))
        # the only call whose check reads the program's signals, and only a step may make it
        waits = any(isinstance(step.call.callee, ast.Name) and step.call.callee.ident.name == WAIT_SIGNAL
                    for d in module.decls if isinstance(d, ast.ReactorDecl) for step in ast.steps(d.body))
        return cls(tuple(sorted(imports)), signals, agents, broken, robots, waits)

    def in_file(self, file: str) -> tuple[SignalSite, ...]:
        """The signal declarations with their spans in ``file``."""
        return tuple(SignalSite(s.text, _moved(s.span, file), _moved(s.type_span, file)) for s in self.signals)


@attrs.frozen(slots=True)
class SignalEntry:
    """One ``signal`` declaration of a module, as checked: its type and its payload type, resolved."""

    text: str
    payload: T.Type  # NONE without a payload; ERROR when it failed to resolve or is not a record


@attrs.frozen(slots=True)
class RobotTypes:
    """A robot interface's types as the checker resolved them: what the project file's ``sim`` values
    (a command's ``result``, an event's ``data``) are checked against."""

    name: str
    results: tuple[tuple[str, T.Type], ...]  # command -> its result type (``any`` when it declares none)
    payloads: tuple[tuple[str, T.Type], ...]  # event -> its payload type (``none`` when it has none)


@attrs.frozen(slots=True)
class ModuleCheck:
    """What checking one module found: what its importers and the whole-program checks need from it."""

    diagnostics: tuple[Diagnostic, ...]  # the diagnostics in its file, whole-program checks left out
    routes: frozenset[str] = frozenset()  # the valid patterns of its agents' routes
    emitted: frozenset[str] = frozenset()  # declared signals its agents emit or schedule
    robots: tuple[RobotTypes, ...] = ()  # the types of the robot interfaces it declares


def base_keys(sources: Mapping[str, str], scans: Mapping[str, Scan]) -> dict[str, str]:
    """The base key of every module (see the module docstring): what keys every module but signal readers.

    ``sources``: module name -> text, in program order (the standard library
    first, then the files as discovered); ``scans``: module name -> its scan.
    """
    shas = {name: sha256(text) for name, text in sources.items()}
    names = sorted(sources)
    program = _hash(f"{name}={sha}" for name, sha in shas.items())
    keys = {}
    for name in sources:
        scan = scans[name]
        parts = [compiler_fingerprint(), f"abi {ABI}", f"format {FORMAT}", name,
                 _closure_hash(_closure(name, scans), shas)]
        if any(m not in sources for m in scan.imports):
            parts += ["names", *names]
        if scan.broken:
            parts += ["program", program]
        keys[name] = _hash(parts)
    return keys


def signal_table(declared: Mapping[str, Sequence[SignalEntry]]) -> list[tuple[str, str, T.Type]]:
    """The program's signals as the checker resolves them: (type, the module declaring it first, its payload).

    ``declared``: every module declaring signals -> its entries (in declaration
    order), the modules in program order. A type declared twice has the error
    payload, as in the checker, which judges none of its uses (BBF102 is
    reported at the declarations): whether a signal is declared once is a fact
    of other modules that an agent's verdict depends on, so it is in the table.
    """
    table: dict[str, tuple[str, str, T.Type]] = {}
    for module, entries in declared.items():
        for entry in entries:
            first = table.get(entry.text)
            table[entry.text] = (entry.text, module, entry.payload) if first is None else (*first[:2], T.ERROR)
    return list(table.values())


def table_digest(table: Iterable[tuple[str, str, T.Type]]) -> str:
    """What of ``signal_table`` enters the keys of modules that read signals: all of it, types written out."""
    return _hash(f"{text}@{module}={canonical_type(payload)}" for text, module, payload in table)


def table_id(base: Mapping[str, str], scans: Mapping[str, Scan]) -> str:
    """The declaring modules, in program order, with their base keys: what the signal table is a function of."""
    return _hash(f"{name}={key}" for name, key in base.items() if scans[name].signals)


def module_keys(base: Mapping[str, str], scans: Mapping[str, Scan], digest: str) -> dict[str, str]:
    """The cache key of every module: its base key, and for a module that reads signals the ``table_digest`` too."""
    return {name: _hash([key, "signals", digest]) if scans[name].reads_signals else key for name, key in base.items()}


def canonical_type(t: T.Type) -> str:
    """A resolved type as one line of text that tells apart any two types the checker does."""
    return json.dumps(type_to_json(t), ensure_ascii=False, separators=(",", ":"))


def type_to_json(t: T.Type) -> Any:
    """A compiler type as JSON, complete: ``type_from_json`` gives back an equal type, names and members too."""
    if isinstance(t, T.Prim):
        return t.name
    if isinstance(t, T.ListT):
        return ["list", type_to_json(t.item)]
    if isinstance(t, T.MapT):
        return ["map", type_to_json(t.item)]
    if isinstance(t, T.OptionalT):
        return ["optional", type_to_json(t.inner)]
    if isinstance(t, T.RecordT):
        return ["record", t.name, [[name, type_to_json(ft)] for name, ft in t.fields]]
    if isinstance(t, T.EnumT):
        return ["enum", t.qualname, list(t.members)]
    if isinstance(t, T.NoneT):
        return ["none"]
    if isinstance(t, T.ErrorT):
        return ["error"]
    raise TypeError(f"not a compiler type: {t!r}")


def type_from_json(data: Any) -> T.Type:
    """The inverse of ``type_to_json``; ValueError (or TypeError, KeyError) for anything else."""
    if isinstance(data, str):
        return T.PRIMITIVES[data]
    kind, *rest = data
    if kind in ("list", "map", "optional") and len(rest) == 1:
        inner = type_from_json(rest[0])
        return T.ListT(inner) if kind == "list" else T.MapT(inner) if kind == "map" else T.OptionalT(inner)
    if kind == "record" and len(rest) == 2 and (rest[0] is None or isinstance(rest[0], str)):
        return T.RecordT(tuple((str(name), type_from_json(ft)) for name, ft in rest[1]), rest[0])
    if kind == "enum" and len(rest) == 2:
        return T.EnumT(str(rest[0]), tuple(str(m) for m in rest[1]))
    if kind == "none" and not rest:
        return T.NONE
    if kind == "error" and not rest:
        return T.ERROR
    raise ValueError(f"not a stored type: {data!r}")


def import_closure(names: Iterable[str], scans: Mapping[str, Scan]) -> set[str]:
    """``names`` and every module they import, directly or not (modules that do not exist left out)."""
    seen: set[str] = set()
    stack = [n for n in names if n in scans]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(m for m in scans[name].imports if m in scans and m not in seen)
    return seen


def _closure(name: str, scans: Mapping[str, Scan]) -> tuple[set[str], set[str]]:
    """(the modules of ``name``'s import closure, itself included; the imports in it that do not exist)."""
    found = import_closure((name,), scans)
    missing = {m for n in found for m in scans[n].imports if m not in scans}
    return found, missing


def _closure_hash(closure: tuple[set[str], set[str]], shas: Mapping[str, str]) -> str:
    found, missing = closure
    return _hash([*(f"{n}={shas[n]}" for n in sorted(found)), *(f"missing {m}" for m in sorted(missing))])


def _hash(parts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")  # a file name may be any bytes
    return h.hexdigest()


@attrs.define
class Cache:
    """One project's cache folder; ``hits`` and ``misses`` count lookups of checks and code."""

    root: Path  # the cache folder itself (``PROJECT/.bbflow/cache``)
    hits: int = 0
    misses: int = 0
    #: why this folder is not used (another user could write to it), else None
    refused: str | None = attrs.field(default=attrs.Factory(lambda self: untrusted(self.root), takes_self=True))

    @classmethod
    def for_project(cls, project_root: Path | str) -> Cache:
        """``PROJECT/.bbflow/cache``; or, when ``$BBFLOW_CACHE`` names a folder, a
        folder of its own in there (for read-only checkouts, CI and tests)."""
        shared = os.environ.get(CACHE_ENV)
        if shared:
            cache = cls(Path(shared) / folder_key(project_root))
        else:
            cache = cls(Path(project_root) / CACHE_DIR)
        if cache.refused is not None and cache.refused not in _WARNED:  # once per process and folder
            _WARNED.add(cache.refused)
            sys.stderr.write(f"warning: {cache.refused}\n")
        return cache

    # --- scans -----------------------------------------------------------------------

    def scan(self, text: str) -> Scan | None:
        """The cached scan of ``text``; None on a miss."""
        data = self._read(self.root / "scans" / f"{scan_key(text)}.json")
        try:
            return _scan_from_json(data) if isinstance(data, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    def put_scan(self, text: str, scan: Scan) -> None:
        self._write(self.root / "scans" / f"{scan_key(text)}.json", _scan_to_json(scan))

    # --- resolved signals ------------------------------------------------------------

    def signals(self, base_key: str) -> tuple[SignalEntry, ...] | None:
        """The resolved signals of the module of ``base_key``; None on a miss."""
        data = self._read(self.root / "signals" / f"{base_key}.json")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        try:
            return tuple(SignalEntry(str(text), type_from_json(payload)) for text, payload in data["signals"])
        except (KeyError, TypeError, ValueError):
            return None

    def put_signals(self, base_key: str, entries: Sequence[SignalEntry]) -> None:
        data = {"format": FORMAT, "signals": [[e.text, type_to_json(e.payload)] for e in entries]}
        self._write(self.root / "signals" / f"{base_key}.json", data)

    def table(self, table_id: str) -> str | None:
        """The ``table_digest`` of the signal table of ``table_id``; None on a miss."""
        data = self._read(self.root / "tables" / f"{table_id}.json")
        digest = data.get("digest") if isinstance(data, dict) and data.get("format") == FORMAT else None
        return digest if isinstance(digest, str) else None

    def put_table(self, table_id: str, digest: str) -> None:
        self._write(self.root / "tables" / f"{table_id}.json", {"format": FORMAT, "digest": digest})

    # --- module checks and code ------------------------------------------------------

    def check(self, key: str, files: Mapping[str, str]) -> ModuleCheck | None:
        """What checking the module of ``key`` found; ``files``: module -> the path its spans show now."""
        data = self._read(self.root / "checks" / f"{key}.json")
        found = None
        if isinstance(data, dict) and data.get("format") == FORMAT:
            try:
                found = ModuleCheck(tuple(_diag_from_json(d, files) for d in data["diagnostics"]),
                                    frozenset(map(str, data["routes"])), frozenset(map(str, data["emitted"])),
                                    tuple(_robot_from_json(r) for r in data["robots"]))
            except (KeyError, TypeError, ValueError):
                found = None
        self._count(found)
        return found

    def put_check(self, key: str, files: Mapping[str, str], check: ModuleCheck) -> None:
        modules = {path: name for name, path in files.items()}
        data = {"format": FORMAT, "diagnostics": [_diag_to_json(d, modules) for d in check.diagnostics],
                "routes": sorted(check.routes), "emitted": sorted(check.emitted),
                "robots": [_robot_to_json(r) for r in check.robots]}
        self._write(self.root / "checks" / f"{key}.json", data)

    def get(self, key: str) -> Entry | None:
        """The generated code cached under a module key; None on a miss."""
        data = self._read(self.root / "modules" / f"{key}.json")
        entry = _entry_from_json(data) if isinstance(data, dict) else None
        self._count(entry)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        data = {"format": FORMAT, "code": entry.code, "linemap": {str(k): v for k, v in entry.linemap.items()}}
        self._write(self.root / "modules" / f"{key}.json", data)

    # --- files ---------------------------------------------------------------------

    def _count(self, found: object) -> None:
        if found is None:
            self.misses += 1
        else:
            self.hits += 1

    def folder(self, name: str) -> Path:
        """The sub-folder ``name`` of the cache, created (with the cache) private to the user; raises OSError."""
        self.root.parent.parent.mkdir(parents=True, exist_ok=True)
        for folder in (self.root.parent, self.root, self.root / name):  # private: see "Trust" above
            folder.mkdir(exist_ok=True, mode=0o700)
        return self.root / name

    def _read(self, path: Path) -> Any:
        """The entry at ``path`` if its digest verifies (and the folder is trusted), else None."""
        if self.refused is not None:
            return None
        try:
            with open(path, "rb") as f:
                if _writable_by_others(os.fstat(f.fileno())):
                    return None
                header = f.readline()
                body = f.read()
            if header.rstrip(b"\n") != ENTRY_MAGIC + _digest(path, body).encode("ascii"):
                return None
            return json.loads(body)
        except (OSError, ValueError):
            return None

    def _write(self, path: Path, data: Any) -> None:
        """Write atomically; a cache that cannot be written only makes the next build slower."""
        if self.refused is not None:
            return
        try:
            self.folder(path.parent.name)
            gitignore = self.root.parent / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", encoding="utf-8")
            body = json.dumps(data, ensure_ascii=False, sort_keys=True, allow_nan=False).encode("utf-8")
            import tempfile  # only when writing: it imports shutil, lzma, bz2 and random

            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "wb") as f:
                f.write(ENTRY_MAGIC + _digest(path, body).encode("ascii") + b"\n" + body)
            os.replace(tmp, path)
        except (OSError, ValueError):
            return


def _digest(path: Path, body: bytes) -> str:
    """The digest binding an entry's body to its kind (its folder) and key (its file name)."""
    h = hashlib.sha256(f"{FORMAT}\0{path.parent.name}\0{path.stem}\0".encode())
    h.update(body)
    return h.hexdigest()


def _writable_by_others(st: os.stat_result) -> bool:
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) or (hasattr(os, "getuid") and st.st_uid != os.getuid())


def untrusted(root: Path) -> str | None:
    """Why the cache folder ``root`` must not be used (another user could write to it), else None.

    Looks at ``root``, its sub-folders and the folder above it (``.bbflow``), those that exist.
    """
    folders = [root.parent, root]
    try:
        folders += [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        pass
    for folder in folders:
        try:
            st = folder.lstat()
        except OSError:
            continue
        if _writable_by_others(st):
            who = "writable by other users" if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) else "owned by another user"
            return f"cache folder {folder} is {who}; not using the cache (fix with: chmod go-w, or delete it)"
    return None


# --- (de)serialising entries --------------------------------------------------------


def _anonymous(site: SignalSite) -> SignalSite:
    return SignalSite(site.text, _moved(site.span, TEXT_FILE), _moved(site.type_span, TEXT_FILE))


def _moved(span: Span, file: str) -> Span:
    return Span(file, span.line, span.column, span.end_line, span.end_column)


def _position(span: Span) -> list[int]:
    return [span.line, span.column, span.end_line, span.end_column]


def _at(data: Sequence[Any]) -> Span:
    line, column, end_line, end_column = data
    return Span(TEXT_FILE, int(line), int(column), int(end_line), int(end_column))


def _scan_to_json(scan: Scan) -> dict[str, Any]:
    return {"format": FORMAT, "imports": list(scan.imports), "agents": list(scan.agents), "broken": scan.broken,
            "waits": scan.waits,
            "signals": [[s.text, _position(s.span), _position(s.type_span)] for s in scan.signals],
            "robots": [[r.name, list(r.commands), list(r.events), list(r.states)] for r in scan.robots]}


def _scan_from_json(data: dict[str, Any]) -> Scan | None:
    if data.get("format") != FORMAT:
        return None
    imports, agents, broken, waits = data["imports"], data["agents"], data["broken"], data["waits"]
    if not all(isinstance(m, str) for m in [*imports, *agents]) or not isinstance(broken, bool) \
            or not isinstance(waits, bool):
        return None
    signals = tuple(SignalSite(str(text), _at(span), _at(type_span)) for text, span, type_span in data["signals"])
    robots = tuple(RobotSite(str(name), tuple(map(str, commands)), tuple(map(str, events)), tuple(map(str, states)))
                   for name, commands, events, states in data["robots"])
    return Scan(tuple(imports), signals, tuple(agents), broken, robots, waits)


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


def _robot_to_json(robot: RobotTypes) -> list[Any]:
    return [robot.name, [[n, type_to_json(t)] for n, t in robot.results],
            [[n, type_to_json(t)] for n, t in robot.payloads]]


def _robot_from_json(data: Sequence[Any]) -> RobotTypes:
    name, results, payloads = data
    return RobotTypes(str(name), tuple((str(n), type_from_json(t)) for n, t in results),
                      tuple((str(n), type_from_json(t)) for n, t in payloads))


def _entry_from_json(data: dict[str, Any]) -> Entry | None:
    if data.get("format") != FORMAT or not isinstance(data.get("code"), str):
        return None
    try:
        linemap = {int(k): int(v) for k, v in data["linemap"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return Entry(data["code"], linemap)
