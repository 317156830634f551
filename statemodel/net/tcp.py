"""``tcp`` backend: a real loopback TCP fault proxy in trio.

Each accepted connection becomes a link (the same ``link.Link`` the sim uses): two
pump tasks read the real sockets into the link's pipes and two write the pipes' output
to the other socket, so every fault in the vocabulary behaves as on the sim, on live
connections. ``Abort`` becomes a real RST (``SO_LINGER`` 0); ``CleanClose`` a FIN then
close. Use ``async with proxy.running(): ... proxy.port`` or
``await nursery.start(proxy.serve)``; ``statemodel proxy`` runs it standalone with the
JSON control API (``control``).
"""

from __future__ import annotations

import socket
import struct
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

import trio

from .link import Link, LinkNetwork, Pipe

READ_SIZE = 256 * 1024


def _rst(stream: trio.SocketStream) -> None:
    """Make the next close send RST instead of FIN."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class FaultProxy(LinkNetwork):
    """Proxy ``listen`` -> ``upstream`` applying faults; same ``apply/heal/links/trace``
    as ``SimNetwork``. ``connect_timeout`` bounds the upstream connect."""

    def __init__(
        self,
        upstream: tuple[str, int],
        listen: tuple[str, int] = ("127.0.0.1", 0),
        seed: int = 0,
        *,
        record_bytes: bool = True,
        buffer_limit: int | None = 1 << 20,
        connect_timeout: float = 10.0,
    ) -> None:
        super().__init__(seed, record_bytes=record_bytes, buffer_limit=buffer_limit)
        self.upstream = upstream
        self.listen = listen
        self.connect_timeout = connect_timeout
        self.port: int | None = None
        self._streams: dict[int, tuple[trio.SocketStream, trio.SocketStream]] = {}
        #: Called as ``on_link(link_id, client_stream)`` when an accepted connection becomes a
        #: link, before its upstream connect: lets a dialer learn which link is its own (match
        #: ``client_stream.socket.getpeername()`` with its local address).
        self.on_link: Callable[[int, trio.SocketStream], None] | None = None
        #: Opens link ``link_id``'s upstream connection (default: ``open_tcp_stream(*upstream)``):
        #: lets a backend with its own per-connection faults (netns) own the upstream leg.
        self.open_upstream: Callable[[int], Awaitable[trio.SocketStream]] | None = None

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        host, port = self.listen
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    @asynccontextmanager
    async def running(self) -> AsyncIterator["FaultProxy"]:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.serve)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()

    async def connect(self) -> trio.SocketStream:
        """A client connection through the proxy (the ``Network`` shape)."""
        if self.port is None:
            raise RuntimeError("FaultProxy is not serving yet; use `async with proxy.running():`")
        with trio.fail_after(self.connect_timeout):
            return await trio.open_tcp_stream(self.listen[0], self.port)

    async def _handle(self, client: trio.SocketStream) -> None:
        try:
            await self.wait_connectable()
            link = self._new_link()
            self.trace.add(trio.current_time(), link.id, "both", "connect", 0, "")
            if self.on_link is not None:
                self.on_link(link.id, client)
            try:
                with trio.fail_after(self.connect_timeout):
                    if self.open_upstream is not None:
                        upstream = await self.open_upstream(link.id)
                    else:
                        upstream = await trio.open_tcp_stream(*self.upstream)
            except (OSError, trio.TooSlowError) as exc:
                self.trace.add(trio.current_time(), link.id, "c2s", "refused", 0, f"upstream: {exc}")
                link.done = True
                _rst(client)
                return
            self._streams[link.id] = (client, upstream)
            try:
                await self._pump_link(link, client, upstream)
            finally:
                self._streams.pop(link.id, None)
                if link.c2s.aborted or link.s2c.aborted:
                    _rst(client)
                    _rst(upstream)
                link.done = True
                with trio.CancelScope(shield=True):
                    await upstream.aclose()
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()

    async def _pump_link(self, link: Link, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            outs_done = [0]
            ins_done = [0]

            async def pump_out(pipe: Pipe, dst: trio.SocketStream) -> None:
                try:
                    while data := await pipe.read():
                        await dst.send_all(data)
                    await dst.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    link.abort(link.reason or "peer reset")
                    nursery.cancel_scope.cancel()
                    return
                outs_done[0] += 1
                if outs_done[0] == 2 or link.done:
                    nursery.cancel_scope.cancel()

            async def pump_in(src: trio.SocketStream, pipe: Pipe) -> None:
                try:
                    while True:
                        data = await src.receive_some(READ_SIZE)
                        if pipe.broken or pipe.aborted:
                            return
                        if not data:
                            pipe.write_eof()
                            return
                        pipe.write(data)
                        await pipe.wait_writable()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    link.abort("peer reset")
                finally:
                    ins_done[0] += 1
                    # a half-open direction swallows its FIN, so its writer would wait
                    # forever: once both ends have finished sending, the link is over
                    if ins_done[0] == 2 and (link.c2s.dead or link.s2c.dead):
                        nursery.cancel_scope.cancel()

            nursery.start_soon(pump_out, link.c2s, upstream)
            nursery.start_soon(pump_out, link.s2c, client)
            nursery.start_soon(pump_in, client, link.c2s)
            nursery.start_soon(pump_in, upstream, link.s2c)
