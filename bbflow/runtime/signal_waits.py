"""``wait_signal`` steps: every signal that enters the runtime is offered to the steps waiting for one.

The bus offers each signal it publishes (from standard input, a robot, an
agent's ``emit`` or ``schedule``; later the fleet bus and the HTTP ingress,
which publish through the same bus) to ``SignalWaits.offer`` before it
delivers it to the agents, who get it as usual. A waiting step is done with
the first signal of its type, published after it began to wait, that
satisfies its ``where``. A signal addressed to a robot instance (its
``subject``) satisfies only the waits of runs on that robot, and of runs
bound to no robot: an approval sent to the right arm does not release the
left one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bbflow.runtime.signals import Envelope

__all__ = ["SignalWaits"]

#: ``where`` over the envelope as a route binds it; raises to fail the wait
Predicate = Callable[[dict[str, Any]], bool]


class _Waiter:
    __slots__ = ("predicate", "robot", "future")

    def __init__(self, predicate: Predicate | None, robot: str | None, future: asyncio.Future[dict[str, Any]]) -> None:
        self.predicate = predicate
        self.robot = robot
        self.future = future


class SignalWaits:
    """The steps waiting for a signal, by signal type."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[_Waiter]] = {}

    def __len__(self) -> int:
        return sum(len(ws) for ws in self._waiting.values())

    async def wait(self, signal_type: str, predicate: Predicate | None = None, *,
                   robot: str | None = None) -> dict[str, Any]:
        """The binding (``type source id time subject data``) of the first matching signal offered from now on.

        An exception raised by ``predicate`` is raised here (the wait fails).
        """
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(predicate, robot, future)
        self._waiting.setdefault(signal_type, []).append(waiter)
        try:
            return await future
        finally:
            waiters = self._waiting.get(signal_type)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiting[signal_type]

    def offer(self, envelope: Envelope) -> bool:
        """A signal entered the runtime: it completes every wait it satisfies; whether it satisfied one
        (a signal a waiting step took is no drop, whether or not an agent routes it)."""
        waiters = self._waiting.get(envelope.type)
        if not waiters:
            return False
        taken = False
        binding = envelope.binding()
        for waiter in list(waiters):
            if waiter.future.done():
                continue
            if envelope.subject is not None and waiter.robot is not None and waiter.robot != envelope.subject:
                continue
            if waiter.predicate is not None:
                try:
                    if not waiter.predicate(binding):
                        continue
                except Exception as exc:  # the step's failure, not the bus's
                    waiter.future.set_exception(exc)
                    continue
            waiter.future.set_result(binding)
            taken = True
        return taken
