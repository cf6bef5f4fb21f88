"""The HTTP/1.1 protocol the control plane serves with: uvicorn's httptools parser, one send per answer.

uvicorn writes an answer's head and its body in two ``transport.write``
calls, and each goes out at once as a ``send`` of its own (the listening
socket has ``TCP_NODELAY``, or the second part would wait ~40 ms for the
client's delayed ACK). Under load those sends were the server's largest cost.
``OneWrite`` stands between the protocol and its transport and gathers what
is written during one turn of the event loop into one ``send``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
    """uvicorn's httptools protocol writing through ``OneWrite``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, OneWrite(cast(asyncio.Transport, transport), self.loop)))
