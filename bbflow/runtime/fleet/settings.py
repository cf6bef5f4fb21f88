"""The bus one process uses: ``[bus]`` of bbflow.toml with ``--bus-listen``/``--bus-connect`` over it."""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Sequence
from pathlib import Path

import attrs

from bbflow.project import BusConfig, Project
from bbflow.runtime.durations import parse_duration
from bbflow.runtime.fleet.keys import BusKeyError, check_prefix

LOCAL = "local"
ZENOH = "zenoh"


class BusSettingsError(ValueError):
    """A ``[bus]`` value or bus option that cannot be used (the message names which)."""


class BusOpenError(Exception):
    """The bus cannot be joined (a bad Zenoh configuration file, an endpoint that cannot be bound)."""


@attrs.frozen
class BusSettings:
    kind: str = LOCAL
    prefix: str = "bbflow"
    connect: tuple[str, ...] | None = None
    listen: tuple[str, ...] | None = None
    mode: str | None = None
    config: Path | None = None
    catch_up: float = 0.0  # seconds

    @property
    def networked(self) -> bool:
        return self.kind != LOCAL


def bus_settings(project: Project, *, listen: Sequence[str] = (), connect: Sequence[str] = (),
                 claims_only: bool = False) -> BusSettings:
    """The settings for one process of ``project``; raises ``BusSettingsError``. ``claims_only``: a process that
    only claims a robot (a reactor run, a recovery) listens on a free port of ``[bus] listen``'s addresses, not on
    its ports: the robot's process of this machine, started from the same bbflow.toml, listens there."""
    bus: BusConfig = project.bus
    where = f"{project.file}: bus"
    if bus.kind == LOCAL:
        if listen or connect:
            raise BusSettingsError(f"--bus-listen and --bus-connect need a network bus: set kind = \"zenoh\" in [bus] of {project.file}")
        return BusSettings()
    try:
        prefix = check_prefix(bus.prefix if bus.prefix is not None else f"bbflow/{_chunk(project.name)}")
    except BusKeyError as exc:
        raise BusSettingsError(f"{where}.prefix: {exc}") from None
    try:
        catch_up = parse_duration(bus.catch_up)
    except ValueError as exc:
        raise BusSettingsError(f"{where}.catch_up: {exc}") from None
    if listen:
        listening: tuple[str, ...] | None = tuple(listen)
    elif claims_only:
        listening = tuple(map(_any_port, bus.listen or ())) or None
    else:
        listening = bus.listen
    settings = BusSettings(
        kind=bus.kind,
        prefix=prefix,
        connect=tuple(connect) if connect else bus.connect,
        listen=listening,
        mode=bus.mode,
        config=bus.config,
        catch_up=catch_up,
    )
    _check_ports(settings.listen or (), "--bus-listen" if listen else f"{where}.listen", listening=True)
    _check_ports(settings.connect or (), "--bus-connect" if connect else f"{where}.connect", listening=False)
    return settings


#: Zenoh's protocols whose address is ``HOST:PORT``
_HOST_PORT = frozenset({"tcp", "udp", "tls", "quic", "ws"})
#: ``HOST:PORT``: a name or an IPv4 address, or an IPv6 one in brackets
_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.%\w]+\]|[^:\[\]/]+):(?P<port>\d+)")


def _endpoint(endpoint: str) -> tuple[str, str, str, re.Match[str] | None]:
    """``PROTOCOL/ADDRESS?…#…`` in parts: the protocol, the address, what follows it, the address as
    ``HOST:PORT`` (None if it is not)."""
    protocol, _, rest = endpoint.partition("/")
    cut = re.search(r"[?#]", rest)
    address, tail = (rest[:cut.start()], rest[cut.start():]) if cut is not None else (rest, "")
    return protocol, address, tail, _ADDRESS.fullmatch(address)


def _any_port(endpoint: str) -> str:
    """``endpoint`` on port 0 (any free one), when its protocol takes ``HOST:PORT``."""
    protocol, address, tail, match = _endpoint(endpoint)
    if protocol not in _HOST_PORT or match is None:
        return endpoint
    return f"{protocol}/{address[:match.start('port')]}0{tail}"


def _check_ports(endpoints: Sequence[str], given: str, *, listening: bool) -> None:
    """An endpoint with no port, or one that is none, is said at the start: Zenoh refuses it to listen on, but
    keeps trying to connect to it for ever, and the process runs alone."""
    for endpoint in endpoints:
        protocol, _, _, match = _endpoint(endpoint)
        if protocol not in _HOST_PORT:
            continue  # unixsock-stream/PATH, serial/..., or no protocol at all: Zenoh says what is wrong
        port = int(match["port"]) if match is not None else None
        if port is None:
            why = f"no port: give HOST:PORT, e.g. {protocol}/127.0.0.1:7447"
        elif port > 65535:
            why = f"port {port} is not one (1 to 65535)"
        elif port == 0 and not listening:
            why = "port 0 is for listening (on a free port): connect to a port another process listens on"
        else:
            continue
        raise BusSettingsError(f"{given} {endpoint}: {why}")


def process_name() -> str:
    """This process's name in the fleet: ``HOST-PID-XXXXXX`` (``fleet.peer.up``'s ``process``). A host name
    and a PID do not tell processes apart: robots made from one image share their host name and may start
    bbflow with the same PID, and containers (with the host's network) each run it as their PID 1; two
    such processes each took the other's membership for its own, and never saw it."""
    return f"{_chunk(socket.gethostname()) or 'host'}-{os.getpid()}-{secrets.token_hex(3)}"


def process_parts(name: str) -> tuple[str, int, str] | None:
    """The host, PID and random tag of a name ``process_name`` made; None for a name of another form (a
    process of another program on the bus)."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not re.fullmatch(r"[0-9a-f]{6}", parts[2]):
        return None
    return parts[0], int(parts[1]), parts[2]


def describe_process(name: str) -> str:
    """``HOST-PID-XXXXXX`` as a person reads it: ``process HOST-PID-XXXXXX (host HOST, pid PID)``; a name
    of another form as it is."""
    parts = process_parts(name)
    return f"process {name}" if parts is None else f"process {name} (host {parts[0]}, pid {parts[1]})"


def _chunk(text: str) -> str:
    """``text`` usable as one key chunk: no ``/``, wildcards, commas or spaces."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)
