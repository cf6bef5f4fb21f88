"""Membership signals: ``fleet.peer.up`` and ``fleet.peer.down`` for a process, its robots and its agents;
and claims: one process of the fleet runs each robot and each coordinator."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bbflow.runtime.fleet.keys import FLEET_PEER_UP, FLEET_SOURCE, ROBOT, Claim, Member
from bbflow.runtime.fleet.settings import BusOpenError, describe_process
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


class AlreadyRun(BusOpenError):
    """Another process on the bus runs a robot this process would open, or a coordinator it would run."""


def check_claims(prefix: str, mine: Iterable[Claim], claims: Iterable[Claim], *, at_start: bool = True) -> None:
    """Raise ``AlreadyRun`` when one of ``claims`` (those on the bus) is another process's claim on what one
    of ``mine`` claims. Made after this process declared its own: of two processes that start at once,
    each sees the other's, and both are refused rather than both driving the robot. ``at_start``: before this
    process opened any robot (the message says so, and what to do); otherwise its caller says what it does."""
    wanted = {(c.what, c.name): c.process for c in mine}
    for claim in sorted(claims):
        process = wanted.get((claim.what, claim.name))
        if process is not None and claim.process != process:
            twice = "drive one robot" if claim.what == ROBOT else "each handle every signal it routes"
            advice = ("; stop that one first (this one opened no robot; the claim of a process cut off from the bus "
                      "goes when Zenoh's lease expires, 10 s by default)") if at_start else ""
            raise AlreadyRun(f"{claim.what} {claim.name} is already run by {describe_process(claim.process)} on the "
                             f"bus {prefix!r}: two processes would {twice}{advice}")
