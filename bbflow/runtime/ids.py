"""Identifiers: UUIDv7 for signals and runs, so ids sort by creation time; keys naming folders."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from pathlib import Path

__all__ = ["folder_key", "uuid7"]


class _Uuid7:
    """RFC 9562 UUIDv7 with a 12-bit counter in ``rand_a`` (method 1): ids sort by creation.

    Within one millisecond the counter increments from a random start below
    2048; if it overflows, the timestamp is advanced by one millisecond, so ids
    from one process are strictly increasing even under a burst.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = -1
        self._counter = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._ms:
                self._ms = ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._ms += 1
                    self._counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
            ms, counter = self._ms, self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return str(uuid.UUID(int=value))


#: A new UUIDv7 as its canonical string.
uuid7 = _Uuid7()


def folder_key(path: Path | str) -> str:
    """Sixteen hex digits naming the folder or file ``path`` by its whole resolved path, for what is kept
    elsewhere on its behalf (a shared cache or journal folder, the owners of its robots). Hashed from the
    path's bytes as the file system has them, so a name that is not valid in the locale's encoding (any
    non-ASCII name under ``LC_ALL=C``) has a key, and the same key in every process whatever its locale."""
    return hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:16]
