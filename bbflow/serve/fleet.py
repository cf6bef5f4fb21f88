"""The fleet as this process sees it: the processes on the bus, up or gone, with their robots and agents.

``FleetView`` is an observer, like the run log: it reads the ``fleet.peer.up``
and ``fleet.peer.down`` signals each process makes from the bus's membership
(and this process's own ``up``, when one of its agents routes it), so that
``GET /api/state`` and ``/metrics`` can say which robots are up elsewhere
and which process went away, without asking the bus. A process restarted
is a new process (its name is ``HOST-PID-XXXXXX``): the one it replaced stays in the
view as gone, among the last ``KEEP_GONE`` gone.
"""

from __future__ import annotations

from typing import Any

import attrs

KEEP_GONE = 20  # gone processes kept in the view (the oldest forgotten first)
UP, DOWN = "fleet.peer.up", "fleet.peer.down"


@attrs.define
class Peer:
    process: str
    robots: list[str]
    agents: list[str]
    up: bool
    since: float | None  # the event's time (the cell's clock)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class FleetView:
    """The processes seen on the bus, by name: those up, and the last ``KEEP_GONE`` gone."""

    def __init__(self, keep_gone: int = KEEP_GONE) -> None:
        self.keep_gone = keep_gone
        self.peers: dict[str, Peer] = {}  # in the order they last changed

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("event") != "signal.in" or event.get("type") not in (UP, DOWN):
            return
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("process"), str):
            return
        process = data["process"]
        self.peers.pop(process, None)
        self.peers[process] = Peer(process, list(data.get("robots") or []), list(data.get("agents") or []),
                                   event["type"] == UP, event.get("time"))
        gone = [p.process for p in self.peers.values() if not p.up]
        for name in gone[:max(0, len(gone) - self.keep_gone)]:
            del self.peers[name]

    def robots(self) -> dict[str, bool]:
        """Each robot instance seen: whether a process that has it is up."""
        out: dict[str, bool] = {}
        for peer in self.peers.values():
            for robot in peer.robots:
                out[robot] = out.get(robot, False) or peer.up
        return out

    def to_json(self, process: str | None) -> list[dict[str, Any]]:
        """The peers, those up first; ``process``: this one's name (marked ``self``)."""
        peers = sorted(self.peers.values(), key=lambda p: not p.up)
        return [{**p.to_json(), "self": p.process == process} for p in peers]
