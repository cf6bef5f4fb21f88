"""The journal's side of one agent instance: its state, the signals it has still to handle, its schedules.

An agent server with a journal records each signal it takes into its mailbox
(*accepted*: it has still to handle it), its state after each turn together
with the signal that turn handled (no longer pending), and each signal it
schedules with its due time (until it fires). All of it is queued to the
journal's writer in order, so whatever a later commit holds (a run's intent,
say), the turn that led to it is committed too.

At start, ``restore`` gives the state last journaled, ``pending`` the signals
accepted and not yet handled (handled again, once), and ``schedules`` the
signals still to fire (at their due time, or at once if it has passed).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bbflow.runtime.ids import uuid7
from bbflow.runtime.journal.journal import Journal, Origin
from bbflow.runtime.journal.store import loads
from bbflow.runtime.signals import Envelope, is_robot_bound


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    return envelope.binding()


def envelope_of(data: Mapping[str, Any]) -> Envelope:
    return Envelope(type=data["type"], source=data["source"], id=data["id"], time=data["time"],
                    data=data.get("data"), subject=data.get("subject"))


class AgentJournal:
    """What one agent instance (``key``: ``Picker`` or ``Picker/left``) journals and restores."""

    def __init__(self, journal: Journal, key: str) -> None:
        self.journal = journal
        self.key = key

    async def room(self) -> None:
        """Return when the journal has room for more input (its writer's backpressure)."""
        await self.journal.room()

    def accepted(self, envelope: Envelope) -> None:
        """A signal taken into the mailbox (a robot's own signals are not: they are about the moment)."""
        if not is_robot_bound(envelope.type):
            self.journal.accepted(envelope_json(envelope), [self.key])

    def begin_turn(self) -> None:
        self.journal.begin_turn()

    def turned(self, state: Mapping[str, Any], handled: Envelope | None, outcome_of: str | None = None) -> None:
        """End the turn: everything it journaled is committed as one, with the state."""
        self.journal.agent_turn(self.key, state, None if handled is None or is_robot_bound(handled.type)
                                else handled.id, outcome_of)

    def end_atomic(self) -> None:
        self.journal.end_atomic()

    def run_allotted(self, reactor: str, inputs: Any, origin: Origin) -> None:
        self.journal.run_allotted(reactor, inputs, origin)

    def scheduled(self, envelope: Envelope, delay: float) -> str:
        key = uuid7()
        self.journal.scheduled(key, self.key, envelope_json(envelope), time.time() + delay)
        return key

    def fired(self, key: str) -> None:
        self.journal.fired(key)

    # --- at start ---------------------------------------------------------------------

    def restore(self) -> dict[str, Any] | None:
        """The state journaled after the last turn, or None."""
        row = self.journal.read.execute("SELECT state FROM agents WHERE agent = ? AND instance = ''",
                                        (self.key,)).fetchone()
        return None if row is None else loads(row[0])

    def pending(self) -> list[Envelope]:
        """Signals accepted and not yet handled by this agent, in the order they were accepted."""
        rows = self.journal.read.execute(
            "SELECT coalesce(p.envelope, s.envelope) FROM pending p JOIN signals s ON s.id = p.signal "
            "WHERE p.agent = ? ORDER BY s.accepted, s.id", (self.key,)).fetchall()  # (its own: see ``accepted``)
        return [envelope_of(loads(r[0])) for r in rows]

    def schedules(self) -> list[tuple[str, Envelope, float]]:
        """Scheduled signals still to fire: key, envelope, seconds from now (0 if overdue)."""
        now = time.time()
        rows = self.journal.read.execute("SELECT id, envelope, due FROM schedules WHERE agent = ? ORDER BY due",
                                         (self.key,)).fetchall()
        return [(key, envelope_of(loads(env)), max(0.0, due - now)) for key, env, due in rows]
