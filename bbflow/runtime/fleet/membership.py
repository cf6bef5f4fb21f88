"""Membership signals: ``fleet.peer.up`` and ``fleet.peer.down`` for a process, its robots and its agents."""

from __future__ import annotations

from collections.abc import Sequence

from bbflow.runtime.fleet.keys import FLEET_PEER_UP, FLEET_SOURCE, Member
from bbflow.runtime.signals import Envelope, SignalCatalog


def peer_envelope(catalog: SignalCatalog, signal_type: str, member: Member) -> Envelope | None:
    """The membership signal, or ``None`` when the program does not declare it (a prelude of its own)."""
    if signal_type not in catalog:
        return None
    data = catalog.conform(signal_type, {"process": member.process, "robots": list(member.robots),
                                         "agents": list(member.agents)})
    return Envelope(type=signal_type, source=FLEET_SOURCE, data=data)


def self_announcement(catalog: SignalCatalog, process: str, robots: Sequence[str],
                      agents: Sequence[str]) -> Envelope | None:
    """``fleet.peer.up`` for this process itself, for its own agents as it starts, on any bus: a
    coordinator learns of the robots beside it the way it learns of the others' (and the same
    ``.flow`` files work in one process on the local bus)."""
    return peer_envelope(catalog, FLEET_PEER_UP, Member(process, tuple(robots), tuple(agents)))
