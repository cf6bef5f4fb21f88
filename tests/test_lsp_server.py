"""`bbflow lsp` facing a careless or hostile client: raw JSON-RPC over the standard input and output of a subprocess.

These tests need messages no well-behaved client sends (params of the wrong
type, a NUL in a URI, requests after shutdown, input closed without exit),
so they frame JSON-RPC by hand; a session as an editor drives it is in
tests/test_lsp_client.py (pytest-lsp).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from codegen_helpers import flows_project

pytest.importorskip("pygls", reason="bbflow lsp needs the optional `lsp` extra")

WAIT = 30.0  # seconds: only a guard against a hung server, never a measurement

FLOW = """\
type Pose = {x: float, y: float, z: float}

robot Arm {
    command move_to(target: Pose) -> Pose category motion
    command home() -> Pose category motion
}

reactor Go(pick: Pose) -> Pose on Arm {
    step ready = home() irreversible "parking"
    step there = mvoe_to(target: pick) after ready undo home()
    return there
}
"""


class Client:
    """A minimal LSP client: framed JSON-RPC messages, responses matched by id."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "bbflow", "lsp"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers = {}
            while (line := out.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            if not line:
                self.inbox.put(None)
                return
            self.inbox.put(json.loads(out.read(int(headers["content-length"]))))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self.send({"method": method, **({"params": params} if params is not None else {})})

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        ident = self.next_id
        self.send({"id": ident, "method": method, **({"params": params} if params is not None else {})})
        reply = self.wait_for(lambda m: m.get("id") == ident and "method" not in m)
        assert "error" not in reply, reply
        return reply["result"]

    def wait_for(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for message in self.seen:
            if match(message):
                self.seen.remove(message)
                return message
        while True:
            message = self.inbox.get(timeout=WAIT)
            assert message is not None, f"the server closed its output: {self.stderr()}"
            if match(message):
                return message
            self.seen.append(message)

    def diagnostics(self, uri: str, match: Callable[[list[dict[str, Any]]], bool] = lambda d: True) -> list[dict]:
        return self.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                             and m["params"]["uri"] == uri and match(m["params"]["diagnostics"]))["params"]["diagnostics"]

    def stderr(self) -> str:
        self.proc.kill()
        return self.proc.communicate()[1].decode("utf-8", "replace")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return flows_project(tmp_path, {"cell.flow": FLOW})


@pytest.fixture
def client(project: Path):
    c = Client(project)
    yield c
    if c.proc.poll() is None:
        c.proc.kill()
        c.proc.communicate()


def position(text: str, word: str, nth: int = 0) -> dict[str, int]:
    """The LSP position of the ``nth`` occurrence of ``word``."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(word, at + 1)
    line = text.count("\n", 0, at)
    return {"line": line, "character": at - (text.rfind("\n", 0, at) + 1)}


def test_without_pygls_the_command_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['pygls'] = None  # not installed\n",
                                               encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "bbflow", "lsp"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=WAIT)
    assert done.returncode == 2
    assert "pip install 'bbflow[lsp]'" in done.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _framed(message: dict[str, Any]) -> bytes:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _tcp_session(project: Path) -> tuple[subprocess.Popen[bytes], Any]:
    """``bbflow lsp --tcp`` started in ``project``, and a connection to it once it listens."""
    import socket
    import time

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bbflow", "lsp", "--tcp", str(port)], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return proc, socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        except OSError:
            if proc.poll() is not None or time.monotonic() >= deadline:
                proc.kill()
                raise AssertionError(proc.communicate()[1].decode("utf-8", "replace")) from None
            time.sleep(0.1)


def test_tcp_transport_serves_one_client_on_loopback(project: Path) -> None:
    proc, conn = _tcp_session(project)
    try:
        with conn:
            conn.sendall(_framed({"id": 1, "method": "initialize",
                                  "params": {"processId": None, "rootUri": project.as_uri(), "capabilities": {}}}))
            data = b""
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                    data.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0]):
                chunk = conn.recv(65536)
                assert chunk, "the server closed the connection"
                data += chunk
            reply = json.loads(data.split(b"\r\n\r\n", 1)[1])
            assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "bbflow"
            conn.sendall(_framed({"id": 2, "method": "shutdown"}) + _framed({"method": "exit"}))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_tcp_transport_ends_when_its_client_disconnects(project: Path) -> None:
    # the docs said "one client at a time": the server serves one client, then ends (status 0)
    proc, conn = _tcp_session(project)
    try:
        conn.close()  # gone without shutdown or exit (an editor window closed)
        assert proc.wait(timeout=WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_stdio_and_tcp_together_are_a_usage_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "bbflow", "lsp", "--stdio", "--tcp", "4000"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 2 and "give one" in out.stderr


# --- robustness: hostile or careless clients ---------------------------------------------------------------


def started(client: Client, project: Path) -> str:
    client.request("initialize", {"processId": os.getpid(), "rootUri": project.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    return (project / "flows" / "cell.flow").as_uri()


def error_of(client: Client, method: str, params: Any = None, *, omit: bool = False) -> dict[str, Any]:
    client.next_id += 1
    ident = client.next_id
    client.send({"id": ident, "method": method, **({} if omit else {"params": params})})
    reply = client.wait_for(lambda m: m.get("id") == ident and "method" not in m)
    assert "error" in reply, reply
    return reply["error"]


def test_a_nul_in_a_uri_does_not_break_later_requests(client: Client, project: Path) -> None:
    uri = started(client, project)
    client.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///%00.flow", "languageId": "flow",
                                                            "version": 1, "text": "reactor"}})
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "flow", "version": 1,
                                                            "text": FLOW}})
    assert [d["code"] for d in client.diagnostics(uri)] == ["BBF101"]
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in symbols] == ["Pose", "Arm", "Go"]


def test_a_request_on_a_file_never_opened_is_answered_from_disk(client: Client, project: Path) -> None:
    uri = started(client, project)
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in symbols] == ["Pose", "Arm", "Go"]
    missing = (project / "flows" / "nowhere.flow").as_uri()
    assert client.request("textDocument/documentSymbol", {"textDocument": {"uri": missing}}) is None


def test_bad_params_get_invalid_params_and_the_server_goes_on(client: Client, project: Path) -> None:
    uri = started(client, project)
    doc = {"textDocument": {"uri": uri}}
    assert error_of(client, "textDocument/hover", {**doc, "position": {"line": -1, "character": -5}})["code"] == -32602
    assert error_of(client, "textDocument/hover", omit=True)["code"] == -32602
    assert error_of(client, "textDocument/hover", {"textDocument": 3, "position": "here"})["code"] == -32602
    assert error_of(client, "textDocument/documentSymbol", {"textDocument": {"uri": 42}})["code"] == -32602
    # an unknown method is -32601 (method not found) with params or without (it was "invalid params" without)
    assert error_of(client, "bbflow/noSuchMethod", omit=True)["code"] == -32601
    assert error_of(client, "bbflow/noSuchMethod", {})["code"] == -32601
    far = client.request("textDocument/hover", {**doc, "position": {"line": 999, "character": 999}})
    assert far is None  # beyond the end is not an error: nothing is there
    assert [s["name"] for s in client.request("textDocument/documentSymbol", doc)] == ["Pose", "Arm", "Go"]


def test_after_shutdown_requests_are_refused_and_exit_ends_with_0(client: Client, project: Path) -> None:
    uri = started(client, project)
    assert client.request("shutdown") is None
    assert error_of(client, "textDocument/documentSymbol", {"textDocument": {"uri": uri}})["code"] == -32600
    client.notify("exit")
    assert client.proc.wait(timeout=WAIT) == 0


def test_a_refused_rename_is_an_answer_not_a_traceback_in_the_log(client: Client, project: Path) -> None:
    # pygls logged the error raised to refuse the rename with its traceback, which the editor's log showed
    uri = started(client, project)
    at = {"textDocument": {"uri": uri}, "position": position(FLOW, "reactor")}
    refused = error_of(client, "textDocument/rename", {**at, "newName": "x"})
    assert refused["code"] == -32602 and "nothing to rename here" in refused["message"]
    assert client.request("shutdown") is None
    client.notify("exit")
    assert client.proc.wait(timeout=WAIT) == 0
    assert client.proc.stderr is not None and "Traceback" not in client.proc.stderr.read().decode()


def test_exit_without_shutdown_ends_with_1(client: Client, project: Path) -> None:
    started(client, project)
    client.notify("exit")
    assert client.proc.wait(timeout=WAIT) == 1


def test_the_server_exits_when_the_client_closes_its_input(client: Client, project: Path) -> None:
    started(client, project)
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    assert client.proc.wait(timeout=WAIT) != 0  # the client went away without shutdown


def test_exit_while_a_check_runs_ends_the_server_at_once(project: Path, tmp_path: Path) -> None:
    # the interpreter's exit joined the worker's thread: `exit` waited for the check running (seconds on a
    # big project; here a check that never ends)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import threading\nimport bbflow.lsp.worker as worker\n"
        "def never_done(*args, **kwargs):\n    threading.Event().wait()\n"
        "worker.compile_program = never_done\n", encoding="utf-8")
    client = Client(project, {"PYTHONPATH": os.pathsep.join([str(hooks), *sys.path])})
    try:
        uri = started(client, project)
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "flow", "version": 1,
                                                                "text": FLOW}})
        assert client.request("shutdown") is None
        client.notify("exit")
        assert client.proc.wait(timeout=WAIT) == 0
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
        client.proc.communicate()
