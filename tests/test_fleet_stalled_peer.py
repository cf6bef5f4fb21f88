"""A peer that stops reading (SIGSTOP) while a process sends it more than its outbox holds: real processes on
127.0.0.1, the sender's robot working on. Zenoh is told to wait an hour before it drops a peer that reads
nothing, so that the sender's event loop, had it waited for the network, would stay stopped for the test."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("zenoh", reason="the bus extra (eclipse-zenoh) is not installed")

from fleet_helpers import FLOW, fleet, free_port, of, write_fleet_project

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

ZENOH_CONFIG = """\
{ mode: "peer", scouting: { multicast: { enabled: false } }, listen: { endpoints: ["tcp/127.0.0.1:0"] },
  transport: { link: { tx: { queue: { congestion_control: { block: { wait_before_close: 3600000000 } } } } } } }
"""

RELAY = """
signal blob.requested: {text: str}
signal blob.sent: {text: str}

agent Relay {
    on blob.requested as b { emit blob.sent {text: b.data.text} }
}

agent Sink {
    on blob.sent { }
    on fleet.peer.** { }
}
"""

#: blobs of 20 KB: more than the sender's outbox holds (16 MiB) and the sockets and Zenoh's queues take
BLOBS, BLOB = 2_500, 20_000


class Log:
    """A process's event log read as it grows (it reaches 100 MB: read whole at each look, it would be slow)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.events = path, 0, []

    def __call__(self) -> list[dict[str, Any]]:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            whole = chunk[:chunk.rfind(b"\n") + 1]
            self.offset += len(whole)
            self.events += [json.loads(line) for line in whole.splitlines() if line]
        return self.events


def test_a_peer_that_reads_nothing_never_stops_the_senders_loop_and_what_it_cannot_take_is_reported(
        tmp_path: Path) -> None:
    # past 1,000 events queued behind a peer stopped with SIGSTOP, sending waited for room on the event loop:
    # the sender's robot, agents and timers stopped until Zenoh dropped the peer (5 s by default; here, never)
    project = write_fleet_project(tmp_path / "fleet")
    (project / "zenoh.json5").write_text(ZENOH_CONFIG)
    (project / "flows" / "cell.flow").write_text(FLOW + RELAY)
    endpoint = f"tcp/127.0.0.1:{free_port()}"
    with fleet(project, tmp_path) as start:
        sender = start("sender", "--agent", "Relay", "--agent", "Boss", "--agent", "Picker", "--robot", "left",
                       "--no-journal", "--bus-listen", endpoint, stdin=True)
        peer = start("peer", "--agent", "Sink", "--no-journal", "--bus-connect", endpoint)
        sender.events = Log(sender.events_file)  # type: ignore[method-assign]
        peer.wait_for("fleet.peer.up of the sender", lambda events: any(
            "Relay" in e["data"]["agents"] for e in of(events, "signal.in", type="fleet.peer.up")))
        sender.wait_for("fleet.peer.up of the peer", lambda events: any(
            e["data"]["agents"] == ["Sink"] for e in of(events, "signal.in", type="fleet.peer.up")))
        peer.popen.send_signal(signal.SIGSTOP)
        try:
            blob = {"type": "blob.requested", "data": {"text": "x" * BLOB}}
            job = {"type": "job.requested", "data": {"job": 1, "to": {"x": 0.1, "y": 0.0, "z": 0.2}}}
            # from a thread: a sender whose loop stopped would stop reading, and the pipe would hold this one
            writer = threading.Thread(target=sender.send, args=(*[blob] * BLOBS, job), daemon=True)
            writer.start()
            events = sender.wait_for("job 1 done with the peer stopped", lambda events: bool(
                of(events, "signal.routed", type="job.done")))
            assert of(events, "run.ok"), "the robot's run"
            dropped = of(events, "signal.dropped", type="blob.sent")
            assert dropped, "the outbox held every blob: send more, or larger ones"
            assert {e["reason"] for e in dropped} == {
                "not sent to the other processes: 1,000 events or 16 MiB wait to go out already, held by a peer "
                "that reads nothing (a process stopped, a machine asleep)"}
        finally:
            peer.popen.send_signal(signal.SIGCONT)
        events = sender.wait_for(f"{BLOBS} blobs relayed", lambda events: len(
            of(events, "signal.routed", type="blob.requested")) == BLOBS)
        emitted, dropped = len(of(events, "signal.emit", type="blob.sent")), len(of(events, "signal.dropped",
                                                                                     type="blob.sent"))
        assert emitted == BLOBS and 0 < dropped < BLOBS
        peer.wait_for("a blob at the peer once it reads again", lambda events: bool(
            of(events, "signal.in", type="blob.sent")))
        assert {p.name: p.stop() for p in (sender, peer)} == {"sender": 130, "peer": 130}
        # its agents had them: counted as not sent, not as refused at the door (which the summary said)
        unsent = len(of(sender.events(), "signal.dropped", unsent=True))
        assert unsent >= dropped and f" dropped ({unsent} not sent on the bus)" in sender.stderr(), sender.stderr()
