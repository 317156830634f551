"""A raw WebSocket peer that speaks -- or mangles -- PROTOCOL.md on purpose.

The reference `Client` refuses to misbehave, so attacks need their own connection: any
bytes, any frame, at any time, and a record of how the server ended it. Works over any dial
function (`() -> trio.abc.Stream`): the sim network, a fault proxy or a real server, on
virtual or real time. Every await is bounded (trio-websocket 0.12.2's `wrap_client_stream`
and `aclose()` have no timeouts of their own).
"""

from __future__ import annotations

import json
import struct
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from statemodel.stream.errors import CloseCode, ProtocolError
from statemodel.stream.frames import Frame, decode, encode

Dial = Callable[[], Awaitable[trio.abc.Stream]]

ABNORMAL = 1006  # no close frame: the transport just ended
#: A peer's own receive limit: far above any frame a PROTOCOL.md server may send (1 MiB),
#: so an oversized message from the server is *its* bug, not a 1009 from us.
PEER_MAX_MESSAGE = 4 << 20


class PeerClosed(Exception):
    """The server ended the connection (``code`` is its close code, 1006 without one)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


def raw_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """Encode a header of any shape (the frames module only encodes well-formed frames)."""
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(h)) + h + payload


class RawPeer:
    """One established WebSocket connection. ``close_code`` is set once the server ended it."""

    def __init__(self, ws, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout
        self.close_code: int | None = None
        self.close_reason = ""
        self.welcome: dict[str, Any] | None = None
        self.frames: list[Frame] = []  # every frame received, in order

    def _closed(self, exc: ConnectionClosed) -> PeerClosed:
        r = exc.reason
        self.close_code = int(r.code) if r is not None and r.code is not None else ABNORMAL
        self.close_reason = (r.reason if r is not None else None) or ""
        return PeerClosed(self.close_code, self.close_reason)

    async def send(self, message: bytes | str) -> None:
        """Send one WebSocket message; raise ``PeerClosed`` if the server already closed."""
        try:
            with trio.fail_after(self.timeout):
                await self.ws.send_message(message)
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def send_frame(self, t: str, payload: bytes = b"", **header: Any) -> None:
        await self.send(encode(Frame(t, header, payload)))

    async def receive(self) -> Frame:
        """The next protocol frame (bounded by ``timeout``: ``trio.TooSlowError``)."""
        try:
            with trio.fail_after(self.timeout):
                msg = await self.ws.get_message()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        if isinstance(msg, str):
            raise ProtocolError(CloseCode.MALFORMED_FRAME, "server sent a text WebSocket message")
        frame = decode(msg, max_frame_size=PEER_MAX_MESSAGE, max_header_size=PEER_MAX_MESSAGE)
        self.frames.append(frame)
        return frame

    async def receive_until(self, predicate: Callable[[Frame], bool], *, ack: bool = True) -> Frame:
        """Frames until one matches (pings, acks and others are kept in ``frames``).

        With ``ack`` every item is acknowledged at once, as an honest client would: a busy
        server lets a session with unacked data produce only one message at a time."""
        while True:
            frame = await self.receive()
            if ack and frame.t in ("data", "end", "error", "ctx"):
                await self.send_frame("ack", a={str(frame.h["s"]): frame.h["q"]})
            if predicate(frame):
                return frame

    async def hello(self, resume: dict[str, Any] | None = None, version: int = 1) -> dict[str, Any]:
        """Send hello; return the welcome header."""
        header: dict[str, Any] = {"v": version}
        if resume is not None:
            header["resume"] = resume
        await self.send_frame("hello", **header)
        frame = await self.receive_until(lambda f: f.t == "welcome")
        self.welcome = frame.h
        return frame.h

    async def close(self, code: int = 1000, reason: str = "bye") -> None:
        """Close politely (1000 ends the session on a PROTOCOL.md server, freeing its slot);
        bounded, since trio-websocket's aclose() waits for the peer's close frame forever."""
        with trio.move_on_after(self.timeout):
            await self.ws.aclose(code, reason)

    async def wait_closed(self) -> int | None:
        """Read (and drop) until the server closes; its code, or None if it did not within
        ``timeout``. This is how an attack learns the documented close code."""
        if self.close_code is not None:
            return self.close_code
        with trio.move_on_after(self.timeout):
            try:
                while True:
                    await self.ws.get_message()
            except ConnectionClosed as exc:
                return self._closed(exc).code
        return None


@asynccontextmanager
async def open_peer(dial: Dial, timeout: float, *, queue: int = 64) -> AsyncIterator[RawPeer]:
    """Dial, open a WebSocket (bounded) and yield a ``RawPeer``; the transport is always
    closed forcefully at exit (a hostile peer owes the server no closing handshake)."""
    with trio.fail_after(timeout):
        stream = await dial()
    try:
        async with trio.open_nursery() as nursery:
            with trio.fail_after(timeout):  # wrap_client_stream has no timeout (upstream)
                ws = await wrap_client_stream(nursery, stream, "statemodel", "/",
                                              message_queue_size=queue, max_message_size=PEER_MAX_MESSAGE)
            try:
                yield RawPeer(ws, timeout)
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body ran inside a nursery: report its one error as is
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)


async def trickle(stream: trio.abc.Stream, data: bytes, gap: float) -> None:
    """Slowloris: send ``data`` one byte at a time, ``gap`` seconds apart, until the server
    drops us (then return quietly)."""
    for i in range(len(data)):
        try:
            await stream.send_all(data[i:i + 1])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        await trio.sleep(gap)
