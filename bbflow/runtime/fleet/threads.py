"""The threads the Zenoh link calls into Zenoh on, by name: a process that stops may leave one behind, in a put
or a close that a peer which reads nothing holds."""

from __future__ import annotations

import threading

#: the outbox's thread (its puts) and the threads of the session's closes (``zenoh_link``)
OUTBOX_THREAD, CLOSE_THREAD = "bbflow-bus-out", "bbflow-bus-close"


def threads_in_zenoh() -> bool:
    """Whether a thread of the link is still alive: in a put or a close that a peer which reads nothing holds
    (a process stopping leaves them behind after a few seconds)."""
    return any(thread.name in (OUTBOX_THREAD, CLOSE_THREAD) and thread.is_alive() for thread in threading.enumerate())
