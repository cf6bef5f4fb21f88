"""The door on the bus: every event that arrives from other processes passes here.

The runtime's one door (``bbflow.runtime.door.Door``, source ``/bus``) checks
it as it checks a line of standard input: size, UTF-8, JSON, depth, finite
numbers, the declared type and payload, and no standard robot signal (only a
robot speaks for itself). On top of that, the bus refuses an event published
on a key that is not its type's, a membership signal (each process makes its
own), and an ``id`` already seen: Zenoh's catch-up may deliver one twice (the last ``SEEN_IDS`` are
remembered, each as a digest of 16 bytes however long it is). A
refusal is reported as ``signal.dropped`` with a reason, never a crash; what
passes is delivered to this process's agents only: it is not published again.
"""

from __future__ import annotations

import hashlib

from bbflow.runtime.bus import Bus
from bbflow.runtime.door import Door, Refusal
from bbflow.runtime.fleet.keys import FLEET_SIGNALS, key_signal

#: How many event ids the door remembers to drop duplicates (oldest forgotten first).
SEEN_IDS = 100_000
BUS_SOURCE = "/bus"


def digest(*parts: str) -> bytes:
    """16 bytes that stand for ``parts`` in a memory of ids: an id may be as long as a signal (1 MiB), and
    100,000 such ids remembered as they are took 50 GB."""
    return hashlib.blake2b("\0".join(parts).encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SeenIds:
    """A bounded set of recently seen ids, each remembered as its ``digest`` however long it is: ``add`` says
    whether an id (one or more strings, such as a source and an id) is new."""

    def __init__(self, capacity: int = SEEN_IDS) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: dict[bytes, None] = {}  # insertion order: the oldest first

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: str) -> bool:
        return self.seen(key)

    def seen(self, *parts: str) -> bool:
        return digest(*parts) in self._ids

    def add(self, *parts: str) -> bool:
        key = digest(*parts)
        if key in self._ids:
            return False
        if len(self._ids) >= self.capacity:
            del self._ids[next(iter(self._ids))]
        self._ids[key] = None
        return True


class BusDoor:
    """Checks events from the bus and hands the good ones to ``bus`` (see the module docstring)."""

    def __init__(self, bus: Bus, prefix: str, *, memory: int = SEEN_IDS) -> None:
        self.bus = bus
        self.prefix = prefix
        self.door = Door(bus.catalog, source=BUS_SOURCE, needs_id=True)
        self.seen = SeenIds(memory)
        self._keyed: dict[str, str] = {}  # key -> the signal type it carries

    def arrive(self, key: str, payload: bytes) -> None:
        """One event published on ``key`` by another process."""
        keyed = self._keyed.get(key)
        if keyed is None:
            keyed = key_signal(self.prefix, key)
            if keyed is not None and keyed in self.bus.catalog:  # remembered for declared types only: bounded
                self._keyed[key] = keyed
        admitted = self.door.admit(payload)
        if isinstance(admitted, Refusal):
            self._drop(admitted.type or keyed, admitted.reason)
        elif admitted.type != keyed:
            self._drop(admitted.type, f"published on key {key!r}, which is not the key of its type")
        elif admitted.type in FLEET_SIGNALS:
            self._drop(admitted.type, "membership signals are made by each process itself, not taken from the bus")
        elif not self.seen.add(admitted.id):
            shown = admitted.id if len(admitted.id) <= 100 else admitted.id[:97] + "..."
            self._drop(admitted.type, f"duplicate id {shown}")
        else:
            self.bus.receive(admitted, remote=True)

    def deleted(self, key: str) -> None:
        """A Zenoh delete on ``key`` (someone's ``session.delete``, say): no event, and reported as what it is."""
        self._drop(key_signal(self.prefix, key), f"a Zenoh delete on key {key!r}, not an event (bbflow publishes "
                                                 "events only)")

    def _drop(self, signal_type: str | None, reason: str) -> None:
        self.bus.dropped += 1
        self.bus.report("signal.dropped", type=signal_type, reason=reason, source=BUS_SOURCE)
