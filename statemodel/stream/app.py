"""What a server application sees: one `Request` per stream.

An app is ``async def app(request) -> AsyncIterator[str | bytes]``: each yielded chunk is one
message to the client; returning ends the stream (`end`); raising `StreamError(reason)` (or any
exception) fails it (`error`); a message above `Config.max_message_size` fails it with
`message_too_large` (the client would refuse it). Backpressure: the generator is not resumed
while the session's replay buffer is full. An app that makes messages from request
parameters should refuse oversized requests before producing anything (see `demo_app`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

import trio

if TYPE_CHECKING:
    from .server import Server

App = Callable[["Request"], AsyncIterator["str | bytes"]]


def _size(msg: str | bytes) -> int:
    return len(msg) if isinstance(msg, (bytes, bytearray, memoryview)) else len(msg.encode("utf-8"))




class Request:
    def __init__(self, server: "Server", session_id: str, stream_id: int, payload: str | bytes,
                 backlogs: dict[str, int] | None = None) -> None:
        self._server = server
        self.session_id = session_id
        self.stream_id = stream_id
        self.payload = payload
        # Bounded by bytes in `_queue`, not by the channel: one message is always accepted.
        self._send, self._recv = trio.open_memory_channel[Any](math.inf)
        self._backlog = 0  # bytes queued for the app, not yet read
        self._backlogs = backlogs if backlogs is not None else {}  # per session, all its streams
        self.overflowed = False  # the app fell more than Config.app_backlog_bytes behind

    def _queue(self, msg: str | bytes, limit: int) -> bool:
        """Hand a client message to the app; False (and nothing queued) past the backlog
        bound, which holds per stream and per session (all its streams together): one
        message is accepted only while both are empty."""
        size = _size(msg)
        total = self._backlogs.get(self.session_id, 0)
        if (self._backlog or total) and (self._backlog + size > limit or total + size > limit):
            self.overflowed = True
            return False
        self._backlog += size
        self._backlogs[self.session_id] = total + size
        self._send.send_nowait((size, msg))  # the size travels along: text is encoded once
        return True

    def _read(self, size: int) -> None:
        self._backlog -= size
        left = self._backlogs.get(self.session_id, 0) - size
        if left > 0:
            self._backlogs[self.session_id] = left
        else:
            self._backlogs.pop(self.session_id, None)

    def _release(self) -> None:
        """The app is over: what it never read no longer counts (the channel goes with it)."""
        if self._backlog:
            self._read(self._backlog)

    @property
    def context(self) -> dict[str, Any]:
        """The session context (set by either side; survives resume). Read-only view."""
        return dict(self._server.proto.context(self.session_id))

    async def set_context(self, key: str, value: Any) -> None:
        self._server._set_context(self.session_id, key, value)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        """Next client message on this stream, each delivered exactly once."""
        size, msg = await self._recv.receive()
        self._read(size)
        return msg

    async def messages(self) -> AsyncIterator[str | bytes]:
        async for size, msg in self._recv:
            self._read(size)
            yield msg

