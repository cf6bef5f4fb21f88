"""The fleet bus: one process per robot (or cell) and coordinators beside them, joined by Zenoh.

``open_link`` imports the Zenoh adapter only when a project asks for it, so
the ``bus`` extra (``eclipse-zenoh``) is needed only then. See docs/fleet.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bbflow.runtime.fleet.door import BusDoor, SeenIds
from bbflow.runtime.fleet.keys import (
    FLEET_PEER_DOWN,
    FLEET_PEER_UP,
    FLEET_SIGNALS,
    signal_key,
    stays_local,
    waited_signals,
)
from bbflow.runtime.fleet.membership import AlreadyRun, peer_envelope, self_announcement
from bbflow.runtime.fleet.settings import BusOpenError, BusSettings, BusSettingsError, bus_settings, process_name
from bbflow.runtime.fleet.threads import threads_in_zenoh

if TYPE_CHECKING:
    from bbflow.runtime.fleet.zenoh_link import ZenohLink

__all__ = [
    "FLEET_PEER_DOWN", "FLEET_PEER_UP", "FLEET_SIGNALS", "AlreadyRun", "BusDoor", "BusOpenError", "BusSettings", "BusSettingsError",
    "MissingExtra", "SeenIds", "bus_settings", "hold_claims", "join_bus", "make_link", "peer_envelope", "process_name",
    "self_announcement", "signal_key", "stays_local", "threads_in_zenoh", "waited_signals",
]

INSTALL_HINT = "the zenoh bus needs the optional `bus` extra: pip install 'bbflow[bus]'"


class MissingExtra(RuntimeError):
    """The configured bus needs a package that is not installed; the message is one line saying what to install."""


def make_link(settings: BusSettings, *, process: str, robots: Iterable[str], agents: Iterable[str],
              coordinators: Iterable[str] = ()) -> ZenohLink:
    """The link for a networked ``settings`` (``kind = "zenoh"``); raises ``MissingExtra``. ``coordinators``:
    those of ``agents`` bound to no robot (each runs in one process of the fleet)."""
    try:
        from bbflow.runtime.fleet.zenoh_link import ZenohLink
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "zenoh":
            raise
        raise MissingExtra(INSTALL_HINT) from None
    return ZenohLink(settings, process=process, robots=robots, agents=agents, coordinators=coordinators)


async def join_bus(settings: BusSettings, *, process: str, robots: Iterable[str], agents: Iterable[str] = (),
                   coordinators: Iterable[str] = (), note: Callable[[str], None]) -> ZenohLink:
    """A link that has joined the bus and claimed ``robots`` and ``coordinators``, before any robot is opened;
    ``note``: says when no other process was reached at the ``connect`` endpoints. Raises ``MissingExtra``, and
    ``BusOpenError`` (``AlreadyRun`` when another process on the bus runs one of them)."""
    link = make_link(settings, process=process, robots=robots, agents=agents, coordinators=coordinators)
    try:
        await link.join()
    except BaseException:  # refused, or interrupted meanwhile: its claims and session go
        await asyncio.shield(link.close())
        raise
    unreached = link.unreached()
    if unreached:  # a typo in an address would leave it alone for good, and say nothing
        note(f"bus: no other process reached at {', '.join(unreached)} (Zenoh keeps trying): until one is, this "
             "process runs alone, and its claims were checked against no other")
    return link


async def hold_claims(link: ZenohLink, note: Callable[[str], None]) -> AlreadyRun:
    """Keep the claims of a process that moves robots without serving agents (a reactor run, a recovery): a
    lost session is opened again, its claims checked again. Returns once another process has taken one of
    them (seen while this one runs, or while its session was lost): the caller stops its robots. Runs until
    cancelled otherwise; a session that cannot be opened again leaves the claims gone, and says so."""
    while True:
        reason = await link.wait_lost()
        try:
            await link.reopen()
        except AlreadyRun as taken:
            return taken
        except BusOpenError as exc:
            note(f"bus: {reason}, and a new session cannot be opened ({exc}): this process's claims on its robots "
                 "went with it")
            await asyncio.Future()  # nothing more to watch: until cancelled
        note("bus: the Zenoh session was lost; a new one is open")
