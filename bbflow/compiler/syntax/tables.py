"""The parser's tables, built once per grammar version and loaded at every later start.

Building lark's LALR tables for ``flow.lark`` takes a large part of a short
``bbflow check``; loading them takes a few milliseconds. They are kept in the
user's cache folder (``platformdirs.user_cache_dir("bbflow")``, or
``$BBFLOW_PARSER_CACHE``) in a file named by a hash of the grammar text, lark's
version and this module's format, so an edited grammar or another lark version
never loads stale tables.

Loading uses pickle, so a file is loaded only from a place no one else could have
written: the folder and the file must belong to the current user and must not be
writable by group or others. Anything else (a read-only, shared or foreign
folder, a damaged file) falls back to building the tables in memory; a cache
never makes the parser fail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import lark
from lark import Lark

__all__ = ["load_or_build", "private"]

#: bump when what is saved changes shape (options, post-lexer)
_FORMAT = "1"
CACHE_ENV = "BBFLOW_PARSER_CACHE"


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    import platformdirs  # only on a cold start, when the tables are first looked for

    return Path(platformdirs.user_cache_dir("bbflow"))


def private(path: Path) -> bool:
    """Whether ``path`` belongs to this user and is writable by no one else (as pip and ccache require)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode) or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return False
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def load_or_build(grammar: str, build: Callable[[], Lark]) -> Lark:
    """The parser of ``grammar``: loaded from the cache when a trusted copy is there, else ``build()`` (then saved)."""
    key = hashlib.sha256(f"{_FORMAT}\0{lark.__version__}\0{grammar}".encode()).hexdigest()[:32]
    folder = cache_dir()
    path = folder / f"parser-{key}.lark"
    if private(folder) and private(path):
        with contextlib.suppress(Exception), path.open("rb") as f:  # a damaged file: build instead
            return Lark.load(f)
    parser = build()
    with contextlib.suppress(OSError):
        _save(parser, folder, path)
    return parser


def _save(parser: Lark, folder: Path, path: Path) -> None:
    """Write atomically (a concurrent reader sees the old file or the whole new one), only into a private folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not private(folder):
        return
    import tempfile  # only when saving: it imports shutil, lzma, bz2 and random

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".parser-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            parser.save(f)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
