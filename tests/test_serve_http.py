"""The control plane over real HTTP: every endpoint, status code and the token rule.

Each test runs a live cell (``serve_helpers.live_cell``: the session and its
control plane on their own loop, on 127.0.0.1 and a free port) and talks to it
with httpx, as an operator's tools would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jsonschema
import pytest
from run_helpers import PICK, PLACE, arm_table, write_project
from serve_helpers import LiveCell, live_cell, memory_tracing

CE = {"content-type": "application/cloudevents+json"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REQUEST = {"type": "pick.requested", "source": "/test", "data": {"pick": PICK, "place": PLACE}}


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture(scope="module")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCell]:
    root = write_project(tmp_path_factory.mktemp("cell"))
    with live_cell(root) as live:
        yield live


@pytest.fixture()
def client(cell: LiveCell) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cell.url, timeout=10) as c:
        yield c


def state(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/state")
    assert response.status_code == 200
    return response.json()


def finished(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    return wait_for(lambda: (lambda r: r if len(r) >= count else None)(state(client)["runs"]["recent"]))


# --- POST /signals --------------------------------------------------------------------------


def test_a_structured_signal_is_taken_and_its_run_finishes(client: httpx.Client) -> None:
    before = len(state(client)["runs"]["recent"])
    response = client.post("/signals", content=json.dumps(REQUEST), headers=CE)
    assert response.status_code == 202
    signal_id = response.json()["id"]
    assert len(signal_id) == 36
    run = finished(client, before + 1)[0]
    assert run["reactor"] == "PickAndPlace" and run["status"] == "ok"
    assert run["events"][0]["event"] == "run.start"


def test_a_binary_mode_signal_is_taken_with_its_ce_headers(client: httpx.Client) -> None:
    headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-type": "pick.rejected",
               "ce-id": "binary-1", "ce-source": "/test%2Fbinary"}
    response = client.post("/signals", content=json.dumps({"reason": "busy"}), headers=headers)
    assert response.status_code == 202
    assert response.json() == {"id": "binary-1"}


def test_a_signal_sent_again_with_its_source_and_id_is_answered_202_and_not_taken_twice(client: httpx.Client) -> None:
    """A client that retries (its 202 lost in a crash, or it gave up waiting for it) made the cell handle the
    signal twice: a second pick. CloudEvents names an event by its source and id: the retry is a drop."""
    signal = json.dumps({"type": "pick.rejected", "id": "retry-1", "source": "/test/retry", "data": {"reason": "x"}})
    before = state(client)["counters"]
    first = client.post("/signals", content=signal, headers=CE)
    assert (first.status_code, first.json()) == (202, {"id": "retry-1"})
    again = client.post("/signals", content=signal, headers=CE)
    assert (again.status_code, again.json()) == (202, {"id": "retry-1", "duplicate": True})
    counters = state(client)["counters"]
    assert counters.get("signal.in", 0) - before.get("signal.in", 0) == 1
    assert counters.get("signal.dropped", 0) - before.get("signal.dropped", 0) == 1


@pytest.mark.parametrize(("body", "headers", "status", "says"), [
    (json.dumps({"type": "pick.requested", "data": {"pick": PICK}}), CE, 400, "data.place"),
    (json.dumps({"type": "no.such", "data": {}}), CE, 400, "undeclared signal type 'no.such'"),
    (json.dumps({"data": {}}), CE, 400, "no string 'type'"),
    (json.dumps([1, 2]), CE, 400, "JSON object"),
    ('"x"', {**CE, "traceparent": TRACEPARENT}, 400, 'not a JSON object: "x"'),
    ('{"type": "pick.requested", ', CE, 400, "not JSON"),
    (b"\xff\xfe{}", CE, 400, "UTF-8"),
    ('{"type": "pick.rejected", "data": {"reason": "\\ud800"}}', CE, 400, "surrogate"),  # it broke /events
    ("[" * 100_000 + "]" * 100_000, CE, 400, ""),
    (json.dumps({"type": "pick.rejected", "specversion": "0.3", "data": {"reason": "x"}}), CE, 400, "specversion"),
    (json.dumps(REQUEST), {"content-type": "text/plain"}, 415, "text/plain"),
    (json.dumps(REQUEST), {}, 415, "application/cloudevents+json"),
    (json.dumps([REQUEST]), {"content-type": "application/cloudevents-batch+json"}, 415, "batched"),
    ("x", {"content-type": "application/xml", "ce-type": "pick.rejected", "ce-specversion": "1.0"}, 415, "JSON"),
    ("{}", {"content-type": "application/json", "ce-specversion": "1.0"}, 400, "type"),
    ("{", {"content-type": "application/json", "ce-type": "pick.rejected", "ce-specversion": "1.0"}, 400, "not JSON"),
])
def test_a_bad_signal_gets_a_4xx_with_the_reason(client: httpx.Client, body: Any, headers: dict[str, str],
                                                 status: int, says: str) -> None:
    response = client.post("/signals", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]


def test_a_refused_signal_with_a_type_is_reported_as_dropped(cell: LiveCell, client: httpx.Client) -> None:
    before = state(client)["counters"].get("signal.dropped", 0)
    assert client.post("/signals", content=json.dumps({"type": "pick.failed", "data": {}}), headers=CE).status_code == 400
    assert wait_for(lambda: state(client)["counters"].get("signal.dropped", 0) == before + 1)


def test_a_robot_signal_from_outside_is_refused(client: httpx.Client) -> None:
    forged = {"type": "robot.safety.changed", "source": "/robot/arm", "data": {"from": "armed", "to": "fault"}}
    response = client.post("/signals", content=json.dumps(forged), headers=CE)
    assert response.status_code == 400
    assert "robot" in response.json()["error"]


def test_a_body_over_one_mebibyte_is_refused_with_413(client: httpx.Client) -> None:
    big = json.dumps({"type": "pick.failed", "data": {"reason": "x" * (1 << 20)}})
    assert client.post("/signals", content=big, headers=CE).status_code == 413


def test_an_oversized_chunked_body_is_refused_while_it_is_read(cell: LiveCell) -> None:
    """No Content-Length: the limit is enforced on the bytes as they come, not after reading them all."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"type": "pick.failed", "data": {"reason": "'
        for _ in range(64):  # 4 MiB offered; the server stops reading after 1 MiB
            sent += 1
            yield b"x" * 65536
        yield b'"}}'

    with httpx.Client(base_url=cell.url, timeout=10) as c:
        try:
            response = c.post("/signals", content=chunks(), headers=CE)
        except httpx.HTTPError:  # the server may close the connection before all is sent
            return
    assert response.status_code == 413


def test_a_sign_in_over_one_mebibyte_is_a_413_too(client: httpx.Client) -> None:  # it was a 500
    response = client.post("/login", content=b"token=" + b"x" * (1 << 20))
    assert response.status_code == 413 and response.json() == {"error": "the body is larger than 1048576 bytes (1 MiB)"}


def test_a_bad_content_length_is_a_400(cell: LiveCell) -> None:
    host, port = cell.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /signals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cloudevents+json\r\n"
                     b"Content-Length: banana\r\n\r\n{}")
        reply = sock.recv(4096)
    assert reply.split(b" ")[1].startswith(b"4")


# --- methods, state, schema, health, metrics --------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/signals"), ("POST", "/api/state"), ("GET", "/api/robots/arm/arm"), ("GET", "/api/runs/x/cancel"),
    ("PUT", "/signals"), ("DELETE", "/api/robots/arm/disarm"),
])
def test_mutating_endpoints_take_post_only(client: httpx.Client, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert "error" in response.json()


def test_an_unknown_path_is_a_json_404(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and "error" in response.json()


def test_the_state_shows_robots_agents_runs_and_counters(client: httpx.Client) -> None:
    body = state(client)
    assert body["robots"] == [{"name": "arm", "interface": "Arm", "safety": "armed", "state": "idle",
                               "runs": body["robots"][0]["runs"], "queue": 0}]
    picker = body["agents"][0]
    assert picker["name"] == "Picker" and picker["robot"] == "arm" and set(picker["state"]) == {"busy", "done"}
    assert set(body["runs"]) == {"running", "recent"}
    assert "PickAndPlace" in body["reactors"] and body["reactors"]["PickAndPlace"][0] == "ready"
    assert body["health"] == "ok" and isinstance(body["last_event"], int)


def test_healthz_is_200_while_the_supervisor_is_up(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_schema_describes_every_signal_an_outsider_may_send(client: httpx.Client) -> None:
    body = client.get("/api/schema").json()
    schemas = body["signals"]
    assert "pick.requested" in schemas and not any(t.startswith("robot.") for t in schemas)
    jsonschema.validate({"pick": PICK, "place": PLACE}, schemas["pick.requested"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"pick": PICK}, schemas["pick.requested"])
    doc = body["asyncapi"]
    assert doc["asyncapi"] == "3.0.0"
    channel = doc["channels"]["pick-requested"]
    assert channel["address"] == "pick.requested"
    message = doc["components"]["messages"]["pick-requested"]
    assert message["contentType"] == "application/cloudevents+json"
    jsonschema.validate(REQUEST, message["payload"])
    assert doc["operations"]["receive_pick-requested"]["action"] == "receive"


def test_metrics_count_signals_and_runs(client: httpx.Client) -> None:
    client.post("/signals", content=json.dumps(REQUEST), headers=CE)
    wait_for(lambda: 'bbflow_runs_total{outcome="ok"}' in client.get("/metrics").text
             and _metric(client.get("/metrics").text, 'bbflow_runs_total{outcome="ok"}') >= 1)
    text = client.get("/metrics").text
    assert _metric(text, 'bbflow_signals_total{kind="in"}') >= 1
    assert _metric(text, 'bbflow_step_duration_seconds_count{outcome="ok"}') >= 1
    assert 'bbflow_agent_queue_depth{agent="Picker",robot="arm"}' in text
    assert _metric(text, 'bbflow_robot_queue_depth{robot="arm"}') == 0.0
    assert _metric(text, 'bbflow_robot_armed{robot="arm"}') == 1.0


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return -1.0


# --- operator controls ----------------------------------------------------------------------


def test_disarm_and_arm_a_robot(client: httpx.Client) -> None:
    assert client.post("/api/robots/arm/disarm").json() == {"robot": "arm", "safety": "disarmed"}
    assert state(client)["robots"][0]["safety"] == "disarmed"
    assert client.post("/api/robots/arm/arm").json() == {"robot": "arm", "safety": "armed"}


def test_an_unknown_robot_or_run_is_a_404(client: httpx.Client) -> None:
    assert client.post("/api/robots/nope/arm").status_code == 404
    assert client.post("/api/runs/nope/cancel").status_code == 404


def test_a_cancelled_run_rolls_back_and_its_agent_hears_of_it(tmp_path: Path) -> None:
    root = write_project(tmp_path, arm_table(duration="300ms"))
    with live_cell(root) as cell, httpx.Client(base_url=cell.url, timeout=10) as c:
        assert c.post("/signals", content=json.dumps(REQUEST), headers=CE).status_code == 202
        run = wait_for(lambda: next((r for r in state(c)["runs"]["running"]
                                     if any(e["event"] == "step.ok" and e["step"] == "approach" for e in r["events"])),
                                    None))
        assert c.post(f"/api/runs/{run['id']}/cancel").status_code == 202
        done = finished(c, 1)[0]
        assert done["id"] == run["id"] and done["status"] == "failed"
        events = [(e["event"], e["step"]) for e in done["events"]]
        assert ("undo.ok", "approach") in events
        # a step the cancel cut off at the driver (grip, most likely) is undone first: it may have moved
        cut = [e["step"] for e in done["events"] if e["event"] == "step.error" and e.get("in_doubt")]
        assert [step for event, step in events if event == "undo.ok"][:len(cut) + 1] == [*cut, "approach"]
        ending = done["events"][-1]
        assert ending["event"] == "run.failed" and ending["error"]["code"] == "cancelled"
        picker = wait_for(lambda: (lambda a: a if not a["state"]["busy"] else None)(state(c)["agents"][0]))
        assert picker["state"] == {"busy": False, "done": 0}  # its else turn ran
        assert c.post(f"/api/runs/{run['id']}/cancel").status_code == 404  # over already


def test_a_run_started_by_a_signal_is_traced_under_the_signals_traceparent(tmp_path: Path) -> None:
    """POST with a W3C ``traceparent``: ``run.start`` carries it, the run's span is its child, steps are
    under the run, and the rollback of the cancelled run (with its undos) too."""
    tracing, exporter = memory_tracing()
    trace_id, signal_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{signal_span}-01"
    root = write_project(tmp_path, arm_table(duration="300ms"))
    with live_cell(root, tracer=tracing) as cell, httpx.Client(base_url=cell.url, timeout=10) as c:
        posted = c.post("/signals", content=json.dumps(REQUEST), headers={**CE, "traceparent": traceparent})
        assert posted.status_code == 202
        run = wait_for(lambda: next((r for r in state(c)["runs"]["running"]
                                     if any(e["event"] == "step.ok" and e["step"] == "approach" for e in r["events"])),
                                    None))
        assert run["events"][0]["event"] == "run.start" and run["events"][0]["traceparent"] == traceparent
        assert c.post(f"/api/runs/{run['id']}/cancel").status_code == 202
        assert finished(c, 1)[0]["status"] == "failed"
        spans = wait_for(lambda: (lambda s: s if "run PickAndPlace" in s else None)(
            {span.name: span for span in exporter.get_finished_spans()}))
    top = spans["run PickAndPlace"]
    assert format(top.context.trace_id, "032x") == trace_id
    assert top.parent is not None and format(top.parent.span_id, "016x") == signal_span
    assert top.attributes is not None and top.attributes["bbflow.run"] == run["id"]
    assert all(span.context.trace_id == top.context.trace_id for span in spans.values())
    assert spans["step approach"].parent.span_id == top.context.span_id
    assert spans["rollback"].parent.span_id == top.context.span_id
    assert spans["undo approach"].parent.span_id == spans["rollback"].context.span_id


# --- the token rule and the browser guards --------------------------------------------------


#: a token as `openssl rand -base64` makes them: "/" and "=" are no characters of a plain cookie value
TOKEN = "s3cret+tok/en=="


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCell]:
    root = write_project(tmp_path_factory.mktemp("guarded"))
    with live_cell(root, token=TOKEN) as live:
        yield live


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/state"), ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/api/schema"), ("GET", "/events"),
    ("POST", "/signals"), ("POST", "/api/robots/arm/disarm"), ("POST", "/api/runs/x/cancel"),
])
def test_with_a_token_every_request_needs_it(guarded: LiveCell, method: str, path: str) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        assert c.request(method, path).status_code == 401
        assert c.request(method, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.call(lambda: guarded.session.robot("arm").safety) == "armed"  # nothing was disarmed


def test_the_right_bearer_token_opens_every_endpoint(guarded: LiveCell) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=guarded.url, timeout=10, headers=headers) as c:
        assert c.get("/api/state").status_code == 200
        assert c.post("/signals", content=json.dumps(REQUEST), headers=CE).status_code == 202


def test_the_dashboard_gets_the_token_once_and_keeps_it_in_a_strict_cookie(guarded: LiveCell) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as c:
        page = c.get("/")
        assert page.status_code == 401 and 'name="token"' in page.text
        assert c.post("/login", data={"token": "wrong"}).status_code == 401
        signed_in = c.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/").status_code == 200  # the cookie, from now on
        assert c.get("/api/state").status_code == 200


def test_a_token_that_is_not_ascii_works_in_the_header_and_the_cookie() -> None:
    """The header was compared as text read as Latin-1 (never equal), and signing in was a 500: the cookie
    could not be written."""
    from bbflow.serve.config import ServeSettings
    from bbflow.serve.http import create_app

    fake = FakeCell()
    fake.settings = ServeSettings("127.0.0.1", 8350, "s3cr€t/=")

    async def talk() -> None:
        transport = httpx.ASGITransport(app=create_app(fake))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8350") as c:
            assert (await c.get("/healthz", headers={"Authorization": "Bearer s3cr€t/=".encode()})).status_code == 200
            assert (await c.get("/healthz", headers={"Authorization": "Bearer s3cr/="})).status_code == 401
            assert (await c.post("/login", data={"token": "s3cr€t/="})).status_code == 303
            assert (await c.get("/healthz")).status_code == 200  # the cookie

    asyncio.run(talk())


def test_a_non_finite_number_in_a_run_is_written_as_standard_json(tmp_path: Path) -> None:
    """A driver's result of NaN (here the simulator's) made GET /api/state a 500 while the run was among the
    last 50, and the dashboard could not open."""
    robots = arm_table() + "\n[robot.arm.sim.commands.move_to]\nresult = {x = nan, y = 0.0, z = inf}\n"
    with live_cell(write_project(tmp_path / "cell", robots)) as cell, \
            httpx.Client(base_url=cell.url, timeout=10) as c:
        assert c.post("/signals", content=json.dumps(REQUEST), headers=CE).status_code == 202
        run = finished(c, 1)[0]
        ending = run["events"][-1]
        assert ending["event"] == "run.ok" and ending["result"] == {"x": "NaN", "y": 0.0, "z": "Infinity"}


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://[zz"])  # the last: no URL (it was a 500)
def test_a_post_from_another_origin_is_refused(client: httpx.Client, origin: str) -> None:
    response = client.post("/api/robots/arm/disarm", headers={"Origin": origin})
    assert response.status_code == 403
    assert response.json() == {"error": f"a POST from another origin ({origin}) is refused"}
    assert state(client)["robots"][0]["safety"] == "armed"


def test_another_host_name_on_loopback_is_refused(client: httpx.Client) -> None:
    assert client.get("/api/state", headers={"Host": "evil.example"}).status_code == 403


# --- the event stream ------------------------------------------------------------------------


def sse_events(lines: Iterator[str], count: int) -> list[tuple[int | None, dict[str, Any]]]:
    out: list[tuple[int | None, dict[str, Any]]] = []
    current: int | None = None
    for line in lines:
        if line.startswith("id: "):
            current = int(line[4:])
        elif line.startswith("data: "):
            out.append((current, json.loads(line[6:])))
            current = None
            if len(out) >= count:
                break
    return out


def test_events_stream_and_resume_from_last_event_id(cell: LiveCell, client: httpx.Client) -> None:
    client.post("/signals", content=json.dumps({"type": "pick.rejected", "data": {"reason": "a"}}), headers=CE)
    last = wait_for(lambda: state(client)["last_event"])
    with client.stream("GET", "/events", params={"after": 0}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        first = sse_events(response.iter_lines(), 3)
    ids = [i for i, _ in first]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2] and ids[0] > 1_000_000  # above any earlier start's
    with client.stream("GET", "/events", headers={"Last-Event-ID": str(last - 1)}) as response:
        resumed = sse_events(response.iter_lines(), 1)
    assert resumed[0][0] == last


def test_past_the_limit_of_event_streams_a_reader_gets_503_until_one_leaves(cell: LiveCell, client: httpx.Client,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event wakes every stream: 3,000 of them made a 1.5 s run take 4.2 s."""
    from bbflow.serve import plane

    monkeypatch.setattr(plane, "MAX_STREAMS", 2)

    def streams() -> float:
        return _metric(client.get("/metrics").text, "bbflow_event_stream_clients")

    with client.stream("GET", "/events") as first, client.stream("GET", "/events") as second:
        assert first.status_code == second.status_code == 200
        wait_for(lambda: streams() == 2)
        refused = client.get("/events")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert refused.json() == {"error": "2 clients already read the event stream: try again later"}
    wait_for(lambda: streams() == 0)
    with client.stream("GET", "/events") as again:
        assert again.status_code == 200


def test_a_connection_without_a_request_or_with_a_body_that_does_not_come_is_not_held(
        cell: LiveCell, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each held a file descriptor for good: no request at all, a head sent a byte at a time, a body never sent."""
    from bbflow.serve import http, wire

    monkeypatch.setattr(wire, "HEAD_TIMEOUT", 0.2)
    monkeypatch.setattr(http, "BODY_TIMEOUT", 0.2)
    host, port = cell.url.removeprefix("http://").split(":")
    heads = [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"]
    for sent in heads:
        with socket.create_connection((host, int(port)), timeout=10) as s:  # (a guard, not a measurement)
            s.sendall(sent)
            assert s.recv(100) == b""  # closed, without an answer
    with socket.create_connection((host, int(port)), timeout=10) as s:  # a complete head, then the next one late
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
        assert s.recv(100) == b""
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /signals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cloudevents+json\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        answer = b""
        while chunk := s.recv(1000):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and answer.endswith(b'{"error":"the body did not arrive within 0.2s"}')


def test_a_request_head_past_64_kib_gets_431_and_is_not_kept(cell: LiveCell, monkeypatch: pytest.MonkeyPatch) -> None:
    """One endless header line was kept whole until the head's deadline: the process grew by what the client
    sent (tens of megabytes a second). A head larger than any real one gets 431 and the connection closes."""
    from bbflow.serve import wire

    monkeypatch.setattr(wire, "HEAD_TIMEOUT", 1.0)  # (without the bound: b"" at this deadline, all of it kept)
    host, port = cell.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        answer = b""
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (wire.MAX_HEAD + 1024))
            while chunk := s.recv(1000):
                answer += chunk
        except ConnectionResetError:  # the server closed with some of it unread: the answer may be lost
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431")
        else:
            assert answer.startswith(b"HTTP/1.1 431") and answer.endswith(b"larger than 65536 bytes\"}"), answer
    cookie = "x" * 8000  # a large head that is not too large
    assert httpx.get(cell.url + "/healthz", headers={"Cookie": cookie}, timeout=10).status_code == 200


def test_past_the_limit_of_connections_a_request_gets_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bbflow.serve import plane

    monkeypatch.setattr(plane, "MAX_CONNECTIONS", 3)
    with live_cell(write_project(tmp_path / "cell")) as cell:
        host, port = cell.url.removeprefix("http://").split(":")
        held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
        try:
            assert httpx.get(cell.url + "/healthz", timeout=10).status_code == 503
        finally:
            for s in held:
                s.close()
        wait_for(lambda: httpx.get(cell.url + "/healthz", timeout=10).status_code == 200)


def test_a_slow_reader_neither_slows_the_runtime_nor_grows_memory(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    with live_cell(root, capacity=64) as cell:
        host, port = cell.url.removeprefix("http://").split(":")
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect((host, int(port)))
        reader.sendall(b"GET /events?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and read nothing for now
        with httpx.Client(base_url=cell.url, timeout=10) as c:
            reason = "x" * 50_000  # 200 signals of 50 kB: more than the sockets between them hold
            started = time.monotonic()
            for _ in range(200):
                posted = c.post("/signals", content=json.dumps({"type": "pick.rejected", "data": {"reason": reason}}),
                                headers=CE)
                assert posted.status_code == 202
            took = time.monotonic() - started
            assert cell.call(lambda: len(cell.plane.hub._ring)) <= 64
        assert took < 30  # generous: the point is that it finished at all with a reader stuck
        reader.settimeout(5)
        seen, total = b"", 0
        while b"stream.skipped" not in seen and total < 50_000_000:
            chunk = reader.recv(65536)
            if not chunk:
                break
            total += len(chunk)
            seen = seen[-100:] + chunk
        reader.close()
        assert b"stream.skipped" in seen


def test_a_hundred_concurrent_posters(cell: LiveCell, client: httpx.Client) -> None:
    before = state(client)["counters"].get("signal.in", 0)

    async def post_all() -> list[int]:
        async with httpx.AsyncClient(base_url=cell.url, timeout=30,
                                     limits=httpx.Limits(max_connections=100)) as ac:
            async def one(i: int) -> int:
                body = json.dumps({"type": "pick.rejected", "data": {"reason": f"poster {i}"}})
                return (await ac.post("/signals", content=body, headers=CE)).status_code

            return await asyncio.gather(*(one(i) for i in range(100)))

    statuses = asyncio.run(post_all())
    assert statuses == [202] * 100
    assert wait_for(lambda: state(client)["counters"].get("signal.in", 0) >= before + 100)


# --- answers a healthy live cell does not give: a fake cell behind the same application -----------------


class FakeCell:
    """A ``Cell`` whose answers a test chooses (``bbflow.serve.http.Cell``)."""

    def __init__(self) -> None:
        from bbflow.serve.config import ServeSettings

        self.settings = ServeSettings("127.0.0.1", 0)
        self.health = (True, "ok")
        self.refusal: Exception | None = None

    async def admit(self, raw: Any) -> Any:
        assert self.refusal is not None
        raise self.refusal

    def state(self) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    def schema(self) -> dict[str, Any]:
        return {}

    def metrics(self) -> bytes:
        return b""

    def healthy(self) -> tuple[bool, str]:
        return self.health

    def events(self, last_id: str | None) -> Any:
        raise NotImplementedError

    async def set_armed(self, robot: str, armed: bool) -> str:
        from bbflow.runtime.ports import RuntimeFailure

        raise RuntimeFailure("the driver refused: e-stop pressed", "command")

    def cancel_run(self, run: str) -> None:
        raise KeyError(run)


def test_refusals_a_healthy_cell_does_not_give_are_json_with_their_status() -> None:
    from bbflow.serve.http import Refused, create_app

    fake = FakeCell()

    async def talk() -> None:
        transport = httpx.ASGITransport(app=create_app(fake), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8350") as c:
            refused = await c.post("/api/robots/arm/arm")
            assert refused.status_code == 409
            assert refused.json() == {"error": "robot arm: the driver refused: e-stop pressed"}
            fake.refusal = Refused(503, "the agents have had no room", {"Retry-After": "1"})
            busy = await c.post("/signals", content=json.dumps(REQUEST), headers=CE)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "no room" in busy.json()["error"]
            fake.health = (False, "supervisor down")
            down = await c.get("/healthz")
            assert down.status_code == 503 and down.json() == {"status": "supervisor down"}
            crashed = await c.get("/api/state")
            assert crashed.status_code == 500
            assert crashed.json() == {"error": "internal error: ZeroDivisionError (a bbflow bug; see the log)"}

    asyncio.run(talk())


def test_a_signal_waits_for_room_then_gets_503_and_without_agents_503_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from bbflow.runtime import model
    from bbflow.serve import plane as plane_module
    from bbflow.serve.config import ServeSettings
    from bbflow.serve.http import Refused

    class FullBus:
        async def room(self) -> None:
            await asyncio.Event().wait()  # never

    class Session:  # a process that runs no agent (a reactor, say), past its start
        bus: Any = None
        stopping = False
        plan = SimpleNamespace(agents=())
        servers = ()
        gave_up = None

    monkeypatch.setattr(plane_module, "ROOM_WAIT", 0.05)
    plane = plane_module.ControlPlane(ServeSettings("127.0.0.1", 0), model.Program(), tracer=None)
    session = Session()
    plane.session = session  # type: ignore[assignment]
    with pytest.raises(Refused) as no_agents:
        asyncio.run(plane.admit(b"{}"))
    assert no_agents.value.status == 503 and "no agents are running" in no_agents.value.reason
    session.bus = FullBus()
    with pytest.raises(Refused) as full:
        asyncio.run(plane.admit(b"{}"))
    assert full.value.status == 503 and full.value.headers == {"Retry-After": "1"}


def test_once_the_cell_is_stopping_a_signal_gets_503_not_a_202_no_agent_would_see(tmp_path: Path) -> None:
    from bbflow.serve.http import Refused

    with live_cell(write_project(tmp_path / "cell")) as cell:
        async def interrupt_then_post() -> tuple[int, str, tuple[bool, str]]:
            cell.session.interrupt()  # SIGINT: the agents stop; the server is up until the robots are safe
            try:
                await cell.plane.admit(json.dumps(REQUEST).encode())
            except Refused as refused:
                return refused.status, refused.reason, cell.plane.healthy()
            raise AssertionError("a signal was taken in by a stopping cell")

        status, reason, health = asyncio.run_coroutine_threadsafe(interrupt_then_post(), cell.loop).result(10)
    assert status == 503 and reason == "the cell is stopping: signals are no longer taken"
    assert health == (False, "stopping")
    assert cell.session.bus is None  # and once the agents are gone, none is taken either
    taken = [e.event for e in cell.plane.hub._ring if e.event["event"] == "signal.in"]
    assert not any(e["type"] == "pick.requested" for e in taken), taken


def test_an_unknown_asset_is_a_404_and_the_dashboards_are_served(client: httpx.Client) -> None:
    assert client.get("/assets/secrets.txt").status_code == 404
    assert client.get("/assets/../bbflow.toml").status_code == 404
    for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        response = client.get(f"/assets/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media)
    assert client.get("/").headers["content-type"].startswith("text/html")


# --- the real command ------------------------------------------------------------------------------


def test_bbflow_run_serve_in_a_real_process_and_sigint_stays_the_runtimes(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    root = write_project(tmp_path / "cell", arm_table(duration="300ms"))
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(root), "--serve", "127.0.0.1:0"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, text=True)
    try:
        url = wait_for(lambda: next((line.removeprefix("control plane: ").rstrip("/")
                                     for line in log.read_text().splitlines()
                                     if line.startswith("control plane: ")), None), timeout=60)
        with httpx.Client(base_url=url, timeout=10) as c:
            assert c.post("/signals", content=json.dumps(REQUEST), headers=CE).status_code == 202
            wait_for(lambda: any(e["event"] == "step.ok" and e["step"] == "approach"
                                 for r in state(c)["runs"]["running"] for e in r["events"]), timeout=30)
        proc.send_signal(signal.SIGINT)  # uvicorn must not have taken SIGINT: the runtime rolls back and exits 130
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "interrupted: agents stopped" in text and "1 runs (0 ok, 1 failed" in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=2)
