"""``sim`` backend: a deterministic in-memory network on trio's (virtual) clock.

``SimNetwork(seed)`` gives the server a ``trio.abc.Listener`` and the client
``await net.connect()``; each connection is a link (ids 0, 1, 2... in creation order)
whose two directions apply the fault vocabulary (see ``link``). Under
``trio.testing.MockClock`` every delivery happens at an exact virtual time and all
randomness comes from the seed, so the same seed gives the same bytes at the same times.

Streams follow trio's contract: ``receive_some`` returns ``b""`` at a clean EOF, raises
``BrokenResourceError`` after an abort and ``ClosedResourceError`` after a local close.
"""

from __future__ import annotations

import errno

import trio

from .link import Link, LinkNetwork, Pipe


class SimStream(trio.abc.HalfCloseableStream):
    """One end of a sim link."""

    def __init__(self, link: Link, inbound: Pipe, outbound: Pipe, side: str) -> None:
        self.link = link
        self.side = side
        self._in = inbound
        self._out = outbound
        self._closed = False
        self._sending = False
        self._receiving = False

    def __repr__(self) -> str:
        return f"<SimStream link={self.link.id} {self.side}>"

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint()
            if self._closed:
                raise trio.ClosedResourceError("this stream was closed")
            out = self._out
            if out.eof_written and not out.broken:
                raise trio.ClosedResourceError("send_eof() was already called")
            err = out.writable_error()
            if err is not None:
                raise err(f"link {self.link.id} is down ({self.link.reason or 'peer closed'})")
            if not isinstance(data, bytes):
                data = bytes(data)
            if data:
                out.write(data)
                await out.wait_writable()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        self._out.write_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        if self._closed:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("this stream was closed")
        self._receiving = True
        try:
            return await self._in.read(max_bytes)
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if not self._out.broken:
                self._out.write_eof()
            self._in.close_reader()
            self.link.trace.add(trio.current_time(), self.link.id, self.side, "close", 0, "")
            self.link.end_closed()
        await trio.lowlevel.checkpoint()


class SimListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self, network: "SimNetwork") -> None:
        self.network = network
        self._send, self._receive = trio.open_memory_channel[SimStream](float("inf"))
        self.closed = False

    async def accept(self) -> SimStream:
        if self.closed:
            raise trio.ClosedResourceError("listener closed")
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:  # pragma: no cover - we never close the send side first
            raise trio.ClosedResourceError("listener closed") from None

    async def aclose(self) -> None:
        self.closed = True
        await self._receive.aclose()
        await trio.lowlevel.checkpoint()


class SimNetwork(LinkNetwork):
    """In-memory network. ``record_bytes=False`` keeps only fault/connection events in
    the trace (faster); ``buffer_limit`` bytes per direction before ``send_all`` waits
    (like a socket buffer; ``None`` = unbounded)."""

    def __init__(self, seed: int = 0, *, record_bytes: bool = True, buffer_limit: int | None = 1 << 20) -> None:
        super().__init__(seed, record_bytes=record_bytes, buffer_limit=buffer_limit)
        self._listener: SimListener | None = None

    def listener(self) -> SimListener:
        """The server's listener; a new one once the previous was closed (restart)."""
        if self._listener is None or self._listener.closed:
            self._listener = SimListener(self)
        return self._listener

    async def connect(self) -> SimStream:
        """Open a link to the listener; refused (``OSError`` ECONNREFUSED) when nobody
        listens; stalls during a network-wide partition (bound it with a timeout)."""
        await trio.lowlevel.checkpoint()
        await self.wait_connectable()
        listener = self._listener
        if listener is None or listener.closed:
            self.trace.add(trio.current_time(), None, "c2s", "refused", 0, "no listener")
            raise OSError(errno.ECONNREFUSED, "sim: connection refused (no listener)")
        self._forget_done_links()
        link = self._new_link()
        client = SimStream(link, inbound=link.s2c, outbound=link.c2s, side="c2s")
        server = SimStream(link, inbound=link.c2s, outbound=link.s2c, side="s2c")
        self.trace.add(trio.current_time(), link.id, "both", "connect", 0, "")
        listener._send.send_nowait(server)
        return client
