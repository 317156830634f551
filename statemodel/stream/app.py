"""What a server application sees: one `Request` per stream.

An app is ``async def app(request) -> AsyncIterator[str | bytes]``: each yielded chunk is one
message to the client; returning ends the stream (`end`); raising `StreamError(reason)` (or any
exception) fails it (`error`). Backpressure: the generator is not resumed while the session's
replay buffer is full.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import trio

if TYPE_CHECKING:
    from .server import Server

App = Callable[["Request"], AsyncIterator["str | bytes"]]


class Request:
    def __init__(self, server: "Server", session_id: str, stream_id: int, payload: str | bytes) -> None:
        self._server = server
        self.session_id = session_id
        self.stream_id = stream_id
        self.payload = payload
        # Unbounded on purpose: the client's replay buffer bounds what can be in flight.
        self._send, self._recv = trio.open_memory_channel[Any](math.inf)

    @property
    def context(self) -> dict[str, Any]:
        """The session context (set by either side; survives resume). Read-only view."""
        return dict(self._server.proto.context(self.session_id))

    async def set_context(self, key: str, value: Any) -> None:
        self._server._set_context(self.session_id, key, value)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        """Next client message on this stream, each delivered exactly once."""
        return await self._recv.receive()

    async def messages(self) -> AsyncIterator[str | bytes]:
        async for msg in self._recv:
            yield msg

