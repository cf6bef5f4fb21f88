"""The schema of ``bbflow.toml``: every table and key a project file may hold, in one table (``SCHEMA``).

A feature that reads a new key adds it here, with its type and a line of
documentation; ``validate`` then checks it wherever it is written (unknown
keys and tables with a "did you mean", missing required keys, values of the
wrong type), for ``bbflow check`` (BBF701, at the key's line, found by
``key_lines``) and ``bbflow run`` alike. What needs the program (an
``interface`` naming no robot, an agent that does not exist) is checked by the
compiler against it; this module imports neither the compiler nor the runtime's
drivers.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from collections.abc import Mapping
from typing import Any

import attrs

from bbflow.runtime.durations import parse_duration, parse_retention

#: the entry-point group through which installed packages offer drivers by name
DRIVER_ENTRY_POINTS = "bbflow.drivers"
SIM_DRIVER = "sim"

KeyPath = tuple[str | int, ...]


@attrs.frozen(slots=True)
class Problem:
    """One thing wrong with the project file: where (the key's path), what, and how to fix it."""

    path: KeyPath
    message: str
    help: str | None = None

    @property
    def key(self) -> str:
        """The path as written in messages: ``robot.arm.sim.events[2].delay``."""
        return dotted(self.path)


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part + 1}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "bbflow.toml"


# --- kinds of values ----------------------------------------------------------------------


class Kind:
    """What a key's value must be. ``check`` appends a ``Problem`` per thing wrong with ``value``."""

    expected = "a value"

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not self.accepts(value):
            out.append(Problem(path, f"expected {self.expected}, found {kind_of(value)}"))

    def accepts(self, value: Any) -> bool:
        return True


class Anything(Kind):
    """Any value (a configured result, an event's payload: checked against the program's types at run)."""


@attrs.frozen
class Text(Kind):
    expected = "a non-empty string"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and bool(value)


#: the longest name of a file or folder (NAME_MAX) and the longest path (PATH_MAX less its NUL) Linux opens, in bytes
LONGEST_NAME, LONGEST_PATH = 255, 4095


@attrs.frozen
class FileName(Text):
    """A file or folder, relative to the project's folder (or absolute): one that a system can open, so
    that ``bbflow run`` does not fail on it later, far from the key."""

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not self.accepts(value):
            super().check(value, path, out)
            return
        data = value.encode("utf-8", "surrogatepass")
        why = ("it holds a NUL character" if "\0" in value else
               f"it is longer than {LONGEST_PATH} bytes" if len(data) > LONGEST_PATH else
               f"a name in it is longer than {LONGEST_NAME} bytes" if any(len(part) > LONGEST_NAME for part in data.split(b"/"))
               else None)
        if why is not None:
            out.append(Problem(path, f"{_shown(value)} is not a file name: {why}"))


#: where the control plane listens when ``[serve] listen`` or ``--serve`` names only a port
DEFAULT_HOST = "127.0.0.1"
LISTEN = "[HOST:]PORT, e.g. 8350 or 127.0.0.1:8350"


def listen_address(text: str) -> tuple[str, int] | None:
    """``"8350"``, ``"0.0.0.0:8350"`` or ``"[::1]:8350"`` as (host, port); None if it is none of these."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        return None
    return (host, port) if 0 <= port <= 65535 else None


class Listen(Kind):
    """``[serve] listen``: what ``bbflow run`` would refuse is a problem of the file (``listen_address``)."""

    expected = LISTEN

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and listen_address(value) is not None


#: what a chunk of a key on the bus may not hold: Zenoh's wildcards and separators
KEY_CHUNK_FORBIDDEN = re.compile(r"[*$?#/,\s]")


def bus_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot begin the keys on the bus (chunks without wildcards, no leading or trailing
    ``/``), or None if it can."""
    chunks = prefix.split("/")
    if not prefix or any(not c or KEY_CHUNK_FORBIDDEN.search(c) or c.startswith("@") for c in chunks):
        return (f"bus prefix {prefix!r}: expected chunks separated by '/', each non-empty, "
                "without '*', '$', '?', '#', ',', spaces or a leading '@'")
    return None


class BusPrefix(Text):
    """``[bus] prefix``: the first chunks of every key on the bus; what ``bbflow run`` refuses is a problem."""

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not self.accepts(value):
            super().check(value, path, out)
            return
        problem = bus_prefix_problem(value)
        if problem is not None:
            out.append(Problem(path, problem))


class Flag(Kind):
    expected = "true or false"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


@attrs.frozen
class Integer(Kind):
    minimum: int = 0

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"an integer of at least {self.minimum}"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= self.minimum


@attrs.frozen
class Duration(Kind):
    positive: bool = False  # "0s" refused

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f'a duration{" above 0" if self.positive else ""} like "20ms", "1.5s", "2m" or "1h"'

    def accepts(self, value: Any) -> bool:
        try:
            seconds = parse_duration(value)
        except ValueError:
            return False
        return seconds > 0 or not self.positive


class Retention(Kind):
    expected = 'a duration like "7d", "12h" or "30m"'

    def accepts(self, value: Any) -> bool:
        try:
            parse_retention(value)
        except ValueError:
            return False
        return True


@attrs.frozen
class Choice(Kind):
    values: tuple[str, ...]

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if value not in self.values:
            shown = " or ".join(f'"{v}"' for v in self.values)
            out.append(Problem(path, f"expected {shown}, found {_shown(value)}", suggest(value, self.values)))


class Texts(Kind):
    expected = "a list of non-empty strings"

    def accepts(self, value: Any) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


class Driver(Kind):
    """``"sim"``, ``"package.module:Class"``, or the name of an installed ``bbflow.drivers`` entry point."""

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not isinstance(value, str) or not value:
            out.append(Problem(path, f"expected a driver name (a string), found {kind_of(value)}"))
            return
        if value == SIM_DRIVER or value in installed_drivers():
            return
        module, colon, cls = value.partition(":")
        if colon and module and cls and ":" not in cls:
            return
        known = sorted({SIM_DRIVER, *installed_drivers()})
        out.append(Problem(
            path, f'driver "{value}" is neither "sim", "package.module:Class" nor an installed driver '
                  f"(installed: {', '.join(known)})",
            suggest(value, known) or 'write "package.module:Class" for a driver in your own code'))


@functools.cache
def installed_drivers() -> frozenset[str]:
    """The names of the installed ``bbflow.drivers`` entry points (read once per process)."""
    import importlib.metadata  # only when a driver name is not a module path: it is slow to import

    return frozenset(p.name for p in importlib.metadata.entry_points(group=DRIVER_ENTRY_POINTS))


@attrs.frozen
class Table(Kind):
    """A table with known keys; ``open``: any other key is allowed too (a driver's own options)."""

    keys: Mapping[str, Kind] = attrs.Factory(dict)
    required: tuple[str, ...] = ()
    open: bool = False

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(Problem(path, f"expected a table, found {kind_of(value)}"))
            return
        misspelt = {suggest(key, self.keys) for key in value if key not in self.keys}
        for key in self.required:
            if key not in value and f"did you mean `{key}`?" not in misspelt:  # one mistake, one problem
                out.append(Problem((*path, key), f"missing (required in [{dotted(path)}])", f"add {key} = ..."))
        for key, item in value.items():
            kind = self.keys.get(key)
            if kind is not None:
                kind.check(item, (*path, key), out)
            elif not self.open:
                where = f"[{dotted(path)}]" if path else "bbflow.toml"
                known = ", ".join(self.keys) or "none"
                out.append(Problem((*path, key), f"unknown key (the keys of {where}: {known})",
                                   suggest(key, list(self.keys))))


#: A robot instance's name: it names files (``journal.left+right.db``), bus keys and HTTP paths.
INSTANCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@attrs.frozen
class Each(Kind):
    """A table of tables named by the user: ``[robot.NAME]``, ``[agent.NAME]``; ``names``: what a NAME may
    be (a pattern it must match in full, and that pattern in words), or anything."""

    item: Kind
    names: tuple[re.Pattern[str], str] | None = None

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(Problem(path, f"expected a table, found {kind_of(value)}"))
            return
        for name, item in value.items():
            if self.names is not None and not self.names[0].fullmatch(name):
                tidy = re.sub(r"[^A-Za-z0-9_-]", "_", name)
                tidy = base = tidy if self.names[0].fullmatch(tidy) else f"_{tidy}"
                for n in itertools.count(2):  # not a name the file has already
                    if tidy not in value:
                        break
                    tidy = f"{base}_{n}"
                out.append(Problem((*path, name), f"{name!r} is {self.names[1]}",
                                   f"rename it, for example [{dotted(path)}.{tidy}]"))
            self.item.check(item, (*path, name), out)


@attrs.frozen
class Tables(Kind):
    """An array of tables: ``[[robot.NAME.sim.events]]``."""

    item: Kind

    def check(self, value: Any, path: KeyPath, out: list[Problem]) -> None:
        if not isinstance(value, list):
            out.append(Problem(path, f"expected an array of tables, found {kind_of(value)}",
                               f"write each entry as a [[{dotted(path)}]] table"))
            return
        for i, item in enumerate(value):
            self.item.check(item, (*path, i), out)


# --- the schema -----------------------------------------------------------------------------

SIM = Table({
    "duration": Duration(),  # how long each command takes (default 20ms)
    "busy_state": Text(),  # the state reported while an effectful command runs
    "record": FileName(),  # append what the simulated world saw, one JSON line per command
    "commands": Each(Table({"duration": Duration(), "result": Anything()})),
    "events": Tables(Table({"after": Text(), "event": Text(), "data": Anything(), "delay": Duration()},
                           required=("after", "event"))),
})

#: The supervision strategies (bbflow.runtime.supervisor.Strategy).
STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")

SCHEMA = Table({
    "project": Table({
        "name": Text(),  # default: the folder's name
        "source": FileName(),  # where the .flow files are (default ".")
    }),
    "robot": Each(Table({
        "interface": Text(),  # the robot interface, dotted: "cell.arm.Arm"
        "driver": Driver(),  # "sim" (default), "package.module:Class" or an installed driver's name
        "arm": Flag(),  # arm a real robot before work starts
        "queue": Integer(1),  # how many runs may wait for this robot (default 16)
        "connect_timeout": Duration(positive=True),  # how long the driver's connect may take (default 30s)
        "sim": SIM,  # the simulated driver's options
        "options": Table(open=True),  # a Python driver's own settings, as written
    }, required=("interface",)), (INSTANCE_NAME, "not a robot instance's name: letters, digits, `_` and `-`, not starting "
                                                 "with a digit or `-` (it names the robot's journal, bus keys and "
                                                 "URLs)")),
    "agent": Each(Table({
        "robot": Text(),  # the robot instance the agent is bound to (with several)
        "robots": Texts(),  # one agent instance per robot instance
    })),
    "run": Table({
        "agents": Texts(),  # what `bbflow run` starts when no --agent/--reactor is given
    }),
    "journal": Table({
        "path": FileName(),  # default .bbflow/journal.db
        "sync": Choice(("full", "normal")),  # full: every commit survives a power cut (default)
        "recovery": Choice(("rollback", "hold")),  # what a restart does with unfinished runs
        "keep": Retention(),  # how long finished runs stay (default 7d)
    }),
    "bus": Table({
        "kind": Choice(("local", "zenoh")),
        "prefix": BusPrefix(),  # default "bbflow/<project name>"
        "connect": Texts(),  # peers and routers to reach
        "listen": Texts(),
        "mode": Choice(("peer", "client")),
        "config": FileName(),  # a Zenoh configuration file
        "catch_up": Duration(),  # how far back a starting process asks for what it missed (default "0s")
    }),
    "serve": Table({
        "listen": Listen(),  # "[HOST:]PORT"
        "token_env": Text(),  # the environment variable holding the bearer token
    }),
    "supervision": Table({
        "max_restarts": Integer(0),
        "within": Duration(),
        "strategy": Choice(STRATEGIES),
    }),
})


def validate(data: Mapping[str, Any]) -> list[Problem]:
    """Every problem of the parsed project file against ``SCHEMA``, in file order of the tables."""
    out: list[Problem] = []
    SCHEMA.check(dict(data), (), out)
    return out


# --- helpers -------------------------------------------------------------------------------


def kind_of(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    name = names.get(type(value), type(value).__name__)
    return f"{name} ({_shown(value)})" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else name


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def suggest(word: Any, choices: Any) -> str | None:
    """``did you mean `x`?`` for the closest of ``choices``, or None."""
    if not isinstance(word, str):
        return None
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


# --- where keys are written ----------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def toml_lines(text: str) -> list[str]:
    """The lines of a TOML text, without their ends: a line ends at LF or CRLF only (``str.splitlines``
    would also end one at U+2028 or U+0085, which TOML allows in comments and strings, and every line
    after it would be counted wrong)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def key_lines(text: str) -> dict[KeyPath, tuple[int, int]]:
    """Where each key and table of a TOML text is written: path -> (line, column), 1-based.

    Headers (``[a.b]``, ``[[a.b]]``, entries numbered from 0) and ``key = value``
    lines are found; keys inside inline tables and multi-line arrays are not
    (``locate`` falls back to the enclosing key). Enough for pointing at the
    line of a problem; tomllib has already read the text.
    """
    found: dict[KeyPath, tuple[int, int]] = {}
    counts: dict[KeyPath, int] = {}
    table: KeyPath = ()
    depth = 0
    closing: str | None = None  # the delimiter of the multi-line string we are in
    for number, line in enumerate(toml_lines(text), 1):
        at = 0
        if closing is not None:
            end = line.find(closing)
            if end < 0:
                continue
            at, closing = end + 3, None
        elif depth == 0:
            stripped = line.lstrip()
            column = len(line) - len(stripped) + 1
            if stripped.startswith("["):
                array = stripped.startswith("[[")
                parts, _ = _key(stripped, 2 if array else 1)
                table = _header_path(parts, counts)
                if array:
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                    found.setdefault(table, (number, column))
                    table = (*table, index)
                found.setdefault(table, (number, column))
                continue
            if stripped and not stripped.startswith("#"):
                parts, after = _key(stripped, 0)
                if parts:
                    path = (*table, *parts)
                    for n in range(len(table) + 1, len(path) + 1):
                        found.setdefault(path[:n], (number, column))
                    at = len(line) - len(stripped) + after
        depth, closing = _scan_value(line, at, depth)
    return found


def _header_path(parts: list[str], arrays: Mapping[KeyPath, int]) -> KeyPath:
    """The path of a ``[header]``, in the last entry of each array of tables it is under: ``[a.b]``
    after ``[[a]]`` is ``a[last].b`` (``arrays``: how many entries each array has so far)."""
    path: KeyPath = ()
    for i, part in enumerate(parts):
        path = (*path, part)
        if i < len(parts) - 1 and path in arrays:
            path = (*path, arrays[path] - 1)
    return path


def _key(text: str, at: int) -> tuple[list[str], int]:
    """The dotted key starting at ``text[at]``, and where it ends."""
    parts: list[str] = []
    while at < len(text):
        while at < len(text) and text[at] in " \t":
            at += 1
        if at < len(text) and text[at] in "\"'":
            quote = text[at]
            end = text.find(quote, at + 1)
            if end < 0:
                return parts, len(text)
            parts.append(text[at + 1:end])
            at = end + 1
        else:
            m = _BARE.match(text, at)
            if not m:
                break
            parts.append(m.group())
            at = m.end()
        while at < len(text) and text[at] in " \t":
            at += 1
        if at < len(text) and text[at] == ".":
            at += 1
            continue
        break
    return parts, at


def _scan_value(line: str, at: int, depth: int) -> tuple[int, str | None]:
    """Bracket depth after the rest of ``line``, and the delimiter of a multi-line string left open."""
    i = at
    while i < len(line):
        c = line[i]
        if c == "#":
            break
        if c in "\"'":
            triple = line[i:i + 3]
            if triple in ('"""', "'''"):
                end = line.find(triple, i + 3)
                if end < 0:
                    return depth, triple
                i = end + 3
                continue
            i += 1
            while i < len(line) and line[i] != c:
                i += 2 if c == '"' and line[i] == "\\" else 1
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return depth, None


def locate(path: KeyPath, lines: Mapping[KeyPath, tuple[int, int]]) -> tuple[int, int]:
    """The line and column of ``path``, or of the nearest enclosing key written; (1, 1) if none."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1, 1
