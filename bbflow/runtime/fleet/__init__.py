"""The fleet bus: one process per robot (or cell) and coordinators beside them, joined by Zenoh.

``open_link`` imports the Zenoh adapter only when a project asks for it, so
the ``bus`` extra (``eclipse-zenoh``) is needed only then. See docs/fleet.md.
"""

from __future__ import annotations

from collections.abc import Iterable
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

if TYPE_CHECKING:
    from bbflow.runtime.fleet.zenoh_link import ZenohLink

__all__ = [
    "FLEET_PEER_DOWN", "FLEET_PEER_UP", "FLEET_SIGNALS", "AlreadyRun", "BusDoor", "BusOpenError", "BusSettings", "BusSettingsError",
    "MissingExtra", "SeenIds", "bus_settings", "make_link", "peer_envelope", "process_name", "self_announcement", "signal_key", "stays_local", "waited_signals",
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
