"""The HTTP/1.1 protocol the control plane serves with: uvicorn's httptools parser, one send per answer,
and no connection held open without a request.

uvicorn writes an answer's head and its body in two ``transport.write``
calls, and each goes out at once as a ``send`` of its own (the listening
socket has ``TCP_NODELAY``, or the second part would wait ~40 ms for the
client's delayed ACK). Under load those sends were the server's largest cost.
``OneWrite`` stands between the protocol and its transport and gathers what
is written during one turn of the event loop into one ``send``.

uvicorn closes a connection idle between two requests (its keep-alive
timeout) but not one that never sends a request, nor one that sends its head a
byte at a time: each held a file descriptor for good, and enough of them would
leave none for the journal or a robot's connection. ``HttpProtocol`` closes a
connection whose request head is not complete ``HEAD_TIMEOUT`` seconds after
it opened or after its previous answer. Nor did uvicorn bound the head's size
(httptools keeps a header's value whole, and any number of headers): a client
sending one endless header line grew the process by what it sent, tens of
megabytes a second, for those seconds. A head past ``MAX_HEAD`` bytes gets 431
and the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT = 10.0  # seconds a connection has to send a request's head (the request line and headers)
MAX_HEAD = 64 * 1024  # bytes a request's head may take


class OneWrite:
    """A transport's stand-in: writes of one loop turn go out as one; everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            self._loop.call_soon(self._flush)
        self._parts.append(bytes(data))

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        if parts and not self._transport.is_closing():
            self._transport.write(b"".join(parts))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through ``OneWrite``, with a deadline on each request's head."""

    _head_timer: asyncio.TimerHandle | None = None  # set while a request's head is awaited
    _head_bytes = 0  # of it received so far

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, OneWrite(cast(asyncio.Transport, transport), self.loop)))
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is None:  # the head is complete (what follows is its body)
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD and not self.transport.is_closing():
            self._stop_waiting()
            body = f'{{"error":"the request head is larger than {MAX_HEAD} bytes"}}'.encode()
            self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                                 b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()  # the next request's

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_waiting()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._no_head)

    def _stop_waiting(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _no_head(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()
