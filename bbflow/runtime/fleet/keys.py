"""Signals on Zenoh key expressions, and which signals stay in their process.

A signal of type ``a.b.c`` travels on key ``PREFIX/a/b/c``; a route pattern
becomes a key expression the same way (``*`` and ``**`` mean in Zenoh what
they mean in a route: one chunk, zero or more chunks). Membership tokens live
under ``PREFIX/@fleet/PROCESS/ROBOTS/AGENTS``: a chunk starting with ``@`` is
verbatim in Zenoh, so no signal subscription (not even ``PREFIX/**``) sees them; a process's claim on
each robot it runs lives under ``PREFIX/@claim/robot/ROBOT/PROCESS``, and on each coordinator under
``PREFIX/@claim/agent/AGENT/PROCESS``.

This module does not import zenoh: it is plain string work, tested without the extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from bbflow.project_schema import KEY_CHUNK_FORBIDDEN, bus_prefix_problem
from bbflow.runtime import model
from bbflow.runtime.router import GLOBSTAR, split_pattern
from bbflow.runtime.signals import is_robot_bound

#: The membership signals: made by each process from Zenoh liveliness, never taken from the bus.
FLEET_PEER_UP = "fleet.peer.up"
FLEET_PEER_DOWN = "fleet.peer.down"
FLEET_SIGNALS = frozenset({FLEET_PEER_UP, FLEET_PEER_DOWN})
FLEET_SOURCE = "/fleet"

_NONE = "-"  # an empty list in a membership key (a key chunk cannot be empty)


class BusKeyError(ValueError):
    """A prefix or name that cannot be part of a Zenoh key."""


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid key prefix (chunks without wildcards, no leading or trailing ``/``)."""
    problem = bus_prefix_problem(prefix)
    if problem is not None:
        raise BusKeyError(problem)
    return prefix


def stays_local(signal_type: str) -> bool:
    """The standard robot signals stay in the process owning the robot; membership signals are per process."""
    return is_robot_bound(signal_type) or signal_type in FLEET_SIGNALS


def signal_key(prefix: str, signal_type: str) -> str:
    """``a.b.c`` -> ``PREFIX/a/b/c``."""
    return f"{prefix}/{signal_type.replace('.', '/')}"


def key_signal(prefix: str, key: str) -> str | None:
    """The signal type a key carries (``PREFIX/a/b/c`` -> ``a.b.c``), or ``None`` if it is not under ``prefix``."""
    head = prefix + "/"
    if not key.startswith(head) or len(key) == len(head):
        return None
    return key[len(head):].replace("/", ".")


def pattern_key(prefix: str, pattern: str) -> str:
    """A route pattern as a key expression, in Zenoh's canonical form (``a.**.*`` -> ``PREFIX/a/*/**``)."""
    segments = split_pattern(pattern)
    # Zenoh's canonical form puts `*` before an adjacent `**` (the two match the same keys either way).
    out: list[str] = []
    for seg in segments:
        if out and seg == "*" and out[-1] == GLOBSTAR:
            out.insert(len(out) - 1, seg)
        else:
            out.append(seg)
    return f"{prefix}/{'/'.join(out)}"


def subscriptions(prefix: str, patterns: Iterable[str]) -> list[str]:
    """The key expressions a process subscribes to for its agents' route (and ``wait_signal``) patterns.

    Patterns that can only match signals that stay local are left out; duplicates once.
    """
    keys: dict[str, None] = {}
    for pattern in patterns:
        if "*" not in pattern and stays_local(pattern):
            continue
        if pattern.startswith(("robot.event.", "fleet.peer.")):
            continue  # robot.event.** and the like: robot-bound only
        keys[pattern_key(prefix, pattern)] = None
    return list(keys)


def waited_signals(program: model.Program) -> list[str]:
    """The signal types the ``wait_signal`` steps of the program's reactors wait for: a process subscribes
    to them too, since any reactor may run in it."""
    found: dict[str, None] = {}

    def body(b: model.Body) -> None:
        for node in b.nodes:
            if isinstance(node, model.Step) and isinstance(node.call, model.WaitSignal):
                found[node.call.signal] = None
            elif isinstance(node, model.Switch):
                for case in node.cases:
                    body(case.body)
                if node.default is not None:
                    body(node.default)
            elif isinstance(node, model.Map):
                body(node.body)

    for reactor in program.reactors.values():
        body(reactor.body)
    return list(found)


# --- membership ------------------------------------------------------------------------


class Member(NamedTuple):
    """One process of the fleet: its name, the robot instances it opened and the agents it runs."""

    process: str
    robots: tuple[str, ...]
    agents: tuple[str, ...]


def member_key(prefix: str, process: str, robots: Iterable[str], agents: Iterable[str]) -> str:
    """The liveliness key announcing one process, its robots and its agents."""
    robots, agents = list(robots), list(agents)
    _check_names("membership", process, *robots, *agents)
    parts = [process, ",".join(robots) or _NONE, ",".join(agents) or _NONE]
    return f"{prefix}/@fleet/{'/'.join(parts)}"


def _check_names(kind: str, *names: str) -> None:
    """Refuse a name that cannot be a chunk of a liveliness key (nor one of its lists, nor the empty list)."""
    for name in names:
        if not name or name == _NONE or name.startswith("@") or KEY_CHUNK_FORBIDDEN.search(name):
            raise BusKeyError(f"{name!r} cannot be part of a {kind} key")


def members_key(prefix: str) -> str:
    """The key expression matching every membership token under ``prefix``."""
    return f"{prefix}/@fleet/*/*/*"


def member_of_key(prefix: str, key: str) -> Member | None:
    """The member a membership key announces, or ``None`` if it is not one."""
    parts = _three_chunks(prefix, "@fleet", key)
    if parts is None:
        return None

    def names(chunk: str) -> tuple[str, ...]:
        return () if chunk == _NONE else tuple(n for n in chunk.split(",") if n)

    return Member(parts[0], names(parts[1]), names(parts[2]))


# --- claims on robots and coordinators --------------------------------------------------

ROBOT = "robot"
AGENT = "agent"


class Claim(NamedTuple):
    """A process's claim on a robot instance (``what`` is ``ROBOT``) or on a coordinator, an agent bound to
    no robot (``AGENT``): one process of the fleet runs each. (An agent bound to a robot runs where the
    robot does: the robot's claim is its.)"""

    what: str
    name: str
    process: str


def claim_key(prefix: str, claim: Claim) -> str:
    """The liveliness key of a process's claim (names checked as for ``member_key``)."""
    _check_names("claim", claim.process, claim.name)
    return f"{prefix}/@claim/{claim.what}/{claim.name}/{claim.process}"


def claims_key(prefix: str) -> str:
    """The key expression matching every claim under ``prefix``."""
    return f"{prefix}/@claim/*/*/*"


def claim_of_key(prefix: str, key: str) -> Claim | None:
    """The claim a claim key makes, or ``None`` if it is not one."""
    parts = _three_chunks(prefix, "@claim", key)
    if parts is None or parts[0] not in (ROBOT, AGENT):
        return None
    return Claim(*parts)


def _three_chunks(prefix: str, section: str, key: str) -> list[str] | None:
    """The three chunks after ``PREFIX/SECTION/`` of a liveliness key, or ``None`` if it has not three, all
    non-empty, there (the shape of the membership and claim keys)."""
    head = f"{prefix}/{section}/"
    if not key.startswith(head):
        return None
    parts = key[len(head):].split("/")
    return parts if len(parts) == 3 and all(parts) else None
