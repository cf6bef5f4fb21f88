"""The control plane's HTTP surface: a Starlette application over a ``Cell``.

Every answer that is not a success is JSON ``{"error": reason}`` with a 4xx
status (5xx only for a bug, logged, never a traceback to the client).
Mutating endpoints take POST only (any other method: 405). With a token, every
request needs ``Authorization: Bearer TOKEN`` or the dashboard's cookie (set
once by ``POST /login``, ``HttpOnly`` and ``SameSite=Strict``); without one the
answer is 401 (for ``GET /``, the login page). Two more guards keep a browser
on another site from driving the cell: a POST whose ``Origin`` is not this
server is refused (403), and on the loopback address a request naming another
``Host`` (DNS rebinding) is refused (403).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bbflow.runtime import jsonout
from bbflow.runtime.door import Refusal, StrictJsonError, loads_strict
from bbflow.runtime.ports import RuntimeFailure
from bbflow.runtime.signals import Envelope
from bbflow.serve.config import LOOPBACK_NAMES, ServeSettings, is_loopback

log = logging.getLogger("bbflow.serve")

MAX_BODY = 1 << 20  # 1 MiB: a larger signal is refused with 413
BODY_TIMEOUT = 30.0  # seconds a body has to arrive once the request's head has (else 408)
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
COOKIE = "bbflow_token"
_CE_ATTRS = ("specversion", "type", "id", "source", "time", "subject", "traceparent", "tracestate")


class Cell(Protocol):
    """What the HTTP surface needs of the running cell (``bbflow.serve.plane.ControlPlane``)."""

    settings: ServeSettings

    async def admit(self, raw: bytes | dict[str, Any]) -> Envelope | Refusal | Duplicate: ...  # through the door

    def state(self) -> dict[str, Any]: ...

    def schema(self) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...

    def healthy(self) -> tuple[bool, str]: ...

    def events(self, last_id: str | None) -> Any: ...  # an async iterator of SSE text; or Refused

    async def set_armed(self, robot: str, armed: bool) -> str: ...  # the new safety state

    def cancel_run(self, run: str) -> None: ...


class Refused(Exception):
    """A request refused before it reaches the door (or the door cannot take it now)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@attrs.frozen
class Duplicate:
    """A signal whose ``source`` and ``id`` the cell has taken in already: a sender's retry (its 202 was lost,
    or it timed out waiting). Answered 202 as the first was, and not handled again."""

    id: str


class JSON(JSONResponse):
    """A JSON answer that is standard JSON whatever the values: a non-finite float (a driver's result, an
    agent's arithmetic) is written as ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as everywhere in bbflow
    (Starlette's own refuses it, and ``GET /api/state`` was a 500 while such a run was among the last 50)."""

    def render(self, content: Any) -> bytes:
        return jsonout.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSON:
    return JSON({"error": reason}, status_code=status, headers=headers)


def create_app(cell: Cell) -> Starlette:
    """The ASGI application serving ``cell``."""
    token = cell.settings.token

    async def dashboard(request: Request) -> Response:
        return HTMLResponse(_asset("dashboard.html"))

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("dashboard.js", "dashboard.css"):
            return error(404, f"no asset {name!r}")
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return Response(_asset(name), media_type=media, headers={"Cache-Control": "no-cache"})

    async def login(request: Request) -> Response:
        body = (await _read_body(request)).decode("utf-8", "replace")
        given = _form_field(body, "token")
        if token is None:
            return RedirectResponse("/", status_code=303)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return HTMLResponse(_login_page("That token is not the one this cell was started with."), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, quote(token, safe=""), httponly=True, samesite="strict", path="/")
        return response

    async def signals(request: Request) -> Response:
        admitted = await cell.admit(_cloudevent(request.headers, await _read_body(request)))
        if isinstance(admitted, Refusal):
            return JSON({"error": admitted.reason, "type": admitted.type}, status_code=400)
        if isinstance(admitted, Duplicate):
            return JSON({"id": admitted.id, "duplicate": True}, status_code=202)
        return JSON({"id": admitted.id}, status_code=202)

    async def events(request: Request) -> Response:
        last_id = request.headers.get("last-event-id") or request.query_params.get("after")
        return StreamingResponse(cell.events(last_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def state(request: Request) -> Response:
        return JSON(cell.state())

    async def schema(request: Request) -> Response:
        return JSON(cell.schema())

    async def metrics(request: Request) -> Response:
        from bbflow.serve.metrics import CONTENT_TYPE

        return Response(cell.metrics(), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        up, status = cell.healthy()
        return JSON({"status": status}, status_code=200 if up else 503)

    def arming(armed: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            robot = request.path_params["name"]
            try:
                safety = await cell.set_armed(robot, armed)
            except KeyError:
                return error(404, f"no robot {robot!r} in this process")
            except RuntimeFailure as failure:
                return error(409, f"robot {robot}: {failure.message}")
            return JSON({"robot": robot, "safety": safety})

        return endpoint

    async def cancel(request: Request) -> Response:
        run = request.path_params["run"]
        try:
            cell.cancel_run(run)
        except KeyError:
            return error(404, f"no run {run!r} in flight (a composed run is cancelled through its top-level run)")
        return JSON({"run": run, "status": "cancelling"}, status_code=202)

    routes = [
        Route("/", dashboard, methods=["GET"]),
        Route("/assets/{name}", asset, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/signals", signals, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/schema", schema, methods=["GET"]),
        Route("/api/robots/{name}/arm", arming(True), methods=["POST"]),
        Route("/api/robots/{name}/disarm", arming(False), methods=["POST"]),
        Route("/api/runs/{run}/cancel", cancel, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        return error(exc.status_code, str(exc.detail), headers)

    async def refused(request: Request, exc: Exception) -> Response:  # by any handler (POST /login's body too)
        assert isinstance(exc, Refused)
        return error(exc.status, exc.reason, exc.headers)

    async def disconnected(request: Request, exc: Exception) -> Response:
        return error(400, "the client went away before its request was complete")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("control plane: %s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error: {type(exc).__name__} (a bbflow bug; see the log)")

    app = Starlette(routes=routes, exception_handlers={
        HTTPException: http_error, Refused: refused, ClientDisconnect: disconnected, Exception: crashed,
    })
    return Guard(app, cell.settings)  # type: ignore[return-value]


class Guard:
    """ASGI middleware: the token, the ``Origin`` of POSTs, the ``Host`` on loopback."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self.token = settings.token.encode() if settings.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope["method"], scope["path"], headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> Response | None:
        host = headers.get("host", "")
        if self.settings.loopback and _hostname(host) not in (*LOOPBACK_NAMES, self.settings.host) \
                and not is_loopback(_hostname(host)):
            return error(403, f"Host {host!r} is not this cell's loopback address")
        origin = headers.get("origin")
        if method == "POST" and origin is not None and _netloc(origin) != host.lower():
            return error(403, f"a POST from another origin ({origin}) is refused")
        if self.token is None or self.authorised(headers):
            return None
        if (path == "/login" and method == "POST") or (path.startswith("/assets/") and method == "GET"):
            return None  # signing in, and the page's style and script (no secrets there)
        if path == "/" and method == "GET":
            return HTMLResponse(_login_page(), status_code=401)
        return error(401, "this cell needs Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"})

    def authorised(self, headers: dict[str, str]) -> bool:
        """The bearer token as the client sent its bytes (headers were read as Latin-1), or the cookie:
        the token percent-encoded, since a cookie cannot carry every character a token may have (a
        base64 token's ``/`` and ``=`` had it quoted, and it never matched again)."""
        assert self.token is not None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("latin-1"), self.token):
            return True
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        return cookie is not None and hmac.compare_digest(unquote(cookie).encode(), self.token)


# --- the CloudEvents HTTP binding ---------------------------------------------------


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``MAX_BODY`` (never read further)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY:
                raise Refused(413, f"the body is larger than {MAX_BODY} bytes (1 MiB)")
        except ValueError:
            raise Refused(400, f"bad Content-Length {declared!r}") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):  # a body sent a byte at a time must not hold the handler for good
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise Refused(413, f"the body is larger than {MAX_BODY} bytes (1 MiB)")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, f"the body did not arrive within {BODY_TIMEOUT:g}s", {"Connection": "close"}) from None
    return b"".join(chunks)


def _cloudevent(headers: Any, body: bytes) -> bytes | dict[str, Any]:
    """A CloudEvent sent in structured or binary mode, for the door: the structured body as it
    came (the door parses it), or the structured form built from ``ce-*`` headers; ``Refused``
    (415) for any other content type."""
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == STRUCTURED:
        if "traceparent" not in headers:
            return body
        obj = _json(body)  # the W3C traceparent header travels as the event's attribute
        if not isinstance(obj, dict):
            return body  # the door says what it is instead of an event
        obj.setdefault("traceparent", headers["traceparent"])
        return obj
    if media == BATCH:
        raise Refused(415, "batched CloudEvents are not taken: send one event per request")
    if "ce-specversion" not in headers and "ce-type" not in headers:
        raise Refused(415, f"Content-Type {media or 'none'!r}: send {STRUCTURED} (structured mode) "
                           "or ce-* headers with application/json data (binary mode)")
    if media not in ("application/json", "") and not media.endswith("+json"):
        raise Refused(415, f"Content-Type {media!r}: the data of a signal is JSON (application/json)")
    obj = {attr: unquote(headers[f"ce-{attr}"]) for attr in _CE_ATTRS if f"ce-{attr}" in headers}
    if "traceparent" not in obj and "traceparent" in headers:
        obj["traceparent"] = headers["traceparent"]
    if body.strip():
        obj["data"] = _json(body)
    return obj


def _json(body: bytes) -> Any:
    try:
        return loads_strict(body)
    except StrictJsonError as exc:
        raise Refused(400, str(exc)) from None


# --- small helpers --------------------------------------------------------------------


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _netloc(url: str) -> str | None:
    """The ``host[:port]`` of ``url`` in lower case; ``None`` when it cannot be read (``http://[zz``)."""
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:
        return None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _form_field(body: str, name: str) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(body).get(name)
    return values[0] if values else None


def _asset(name: str) -> str:
    return resources.files("bbflow.serve").joinpath("static", name).read_text(encoding="utf-8")


def _login_page(message: str = "") -> str:
    note = f'<p class="bad">{message}</p>' if message else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bbflow cell: sign in</title>
<link rel="stylesheet" href="/assets/dashboard.css"></head><body class="login">
<form method="post" action="/login"><h1>bbflow cell</h1><p>This cell needs its token.</p>{note}
<input type="password" name="token" autofocus placeholder="token" aria-label="token">
<button type="submit">Open the dashboard</button></form></body></html>"""
