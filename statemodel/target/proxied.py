"""The client side of every real-socket target: a loopback ``FaultProxy`` in front of the
server, and dials matched to the proxy's link ids.

``ExternalTarget`` (your server at a ws:// URL) and ``LoopbackReferenceTarget`` (the
reference server on ``--transport tcp``/``netns``) both put one in front of their server, so
the machine's clients meet the whole fault vocabulary on real sockets. Peers the machine
plays itself (forged resumes, take-overs) are not on the client's network path: they dial
the server directly (``dial_around``), so no fault meant for the client stalls them.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Iterator

import trio

from statemodel.net import faults as F
from statemodel.net.tcp import FaultProxy
from statemodel.stream.config import Config
from statemodel.target.base import FAST_TIMERS

# Real seconds, paid for by every rule that waits on a timer (outages wait for the dead-peer
# timer, reconnects for backoff and handshakes): a quarter of the sim's FAST_TIMERS, which
# took real-socket runs from ~3 to tens of steps/s. A loaded machine that stalls a loop past
# dead_after only causes a spurious reconnect, which the protocol must survive anyway;
# send_timeout stays long, or a bandwidth-capped 2 MiB message could never be sent.
# Backoff tops out at 20 ms: no connection in an example (~2 s) lives healthy_after (5 s), so
# most reconnects run at backoff_max, and a settle after a drop or restart waits for one; at
# 0.2 s that was 50 s of sleep in a 62 s profile of 30 tcp examples, at 50 ms ~8% of a run.
# The ladder (0, 10, 20 ms, jittered) is still walked; nothing checks its steps but the client's.
REAL_TIME_CONFIG = Config(**dict(FAST_TIMERS, handshake_timeout=1.0, heartbeat_interval=0.1, dead_after=0.4,
                                 close_timeout=0.5, backoff_base=0.01), backoff_max=0.02)
# The longest wait of one `advance`/`outage` rule on the real clock: past every timer above
# but the send timeout (a dead peer is noticed, a reconnect fails or gets through).
REAL_TIME_MAX_ADVANCE = 1.0

# Loopback delivers in microseconds, so an ack usually lands before the next rule can drop
# the link. A little latency keeps frames and acks in flight across rules, so drops land on
# data the peer has not yet seen or acknowledged (where replay and dedupe bugs live): the
# sim's 5 ms against the machine's 7 ms step, the same relation on the real clock.
REAL_TIME_BASE_LATENCY = F.Latency(seconds=0.005)

# Faults that parse WebSocket frames in the byte stream: meaningless on TLS records.
FRAME_AWARE = (F.SplitAtFrameBoundary, F.DropCloseFrame, F.DelayCloseFrame, F.SwallowPongs)


class ProxyFront:
    """A fault proxy on 127.0.0.1 (ephemeral port) forwarding to ``upstream``.

    ``base_latency`` is applied at start and after every heal; ``ssl_context`` (wss) wraps
    every dial in TLS to the server, end to end through the proxy."""

    def __init__(self, upstream: tuple[str, int], seed: int, *, record: bool, connect_timeout: float,
                 base_latency: F.Fault | None, ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None) -> None:
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.base_latency = base_latency
        self.net = FaultProxy(upstream=upstream, seed=seed, record_bytes=record, connect_timeout=connect_timeout)
        self.net.on_link = self._on_link
        self._ssl = ssl_context
        self._server_hostname = server_hostname or upstream[0]
        self._accepted: dict[tuple, int] = {}  # client address as the proxy sees it -> link id
        self._abandoned: set[tuple] = set()  # dials that gave up before the proxy took them
        self._accept_event = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None
        self._settling = False  # heal() leaves the base latency out (settling())

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, nursery: trio.Nursery) -> None:
        scope, stopped = trio.CancelScope(), trio.Event()

        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with scope:
                    await self.net.serve(task_status=task_status)
            finally:
                stopped.set()

        self._scope, self._stopped = scope, stopped
        with trio.fail_after(self.connect_timeout):
            await nursery.start(serve)
        if self.base_latency is not None:
            self.net.apply(self.base_latency)

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()

    # ---- connections ---------------------------------------------------------------------
    def _on_link(self, link_id: int, client: trio.SocketStream) -> None:
        """Proxy hook: remember which link an accepted connection became, by its address."""
        try:
            key = tuple(client.socket.getpeername()[:2])
        except OSError:  # the dialer already went away
            return
        if key in self._abandoned:
            self._abandoned.discard(key)
            return
        self._accepted[key] = link_id
        self._accept_event.set()
        self._accept_event = trio.Event()

    async def dial(self) -> tuple[trio.abc.Stream, int]:
        """A TCP connection to the proxy, and the proxy's link id for exactly that connection.

        The id is matched by our socket's local address (the proxy sees it as the peer), so
        concurrent dials never swap links. Waits while a network-wide partition stalls the
        proxy, like a SYN that cannot cross; bounded by ``connect_timeout``.
        """
        if self.net.port is None:
            raise RuntimeError("dial() before start()")
        stream = None
        key = None
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream("127.0.0.1", self.net.port)
                key = tuple(stream.socket.getsockname()[:2])
                while key not in self._accepted:
                    await self._accept_event.wait()
        except BaseException:
            if key is not None and key not in self._accepted:
                self._abandoned.add(key)
            self._accepted.pop(key, None)
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        link = self._accepted.pop(key)
        return self._wrap(stream), link

    async def dial_around(self) -> trio.abc.Stream:
        """A connection straight to the server, not through the proxy: for peers the machine
        plays (a forged resume, a second tab), which do not share the client's network path,
        so the client's faults (a partition above all) must not stall them."""
        with trio.fail_after(self.connect_timeout):
            stream = await trio.open_tcp_stream(*self.upstream)
        return self._wrap(stream)

    def _wrap(self, stream: trio.SocketStream) -> trio.abc.Stream:
        if self._ssl is None:
            return stream
        return trio.SSLStream(stream, self._ssl, server_hostname=self._server_hostname)

    # ---- faults --------------------------------------------------------------------------
    def apply(self, fault: F.Fault, link: int | None) -> bool:
        """Apply ``fault`` in the proxy; False if it cannot (a closed link, frames under TLS)."""
        if self._ssl is not None and isinstance(fault, FRAME_AWARE):
            return False  # the proxy sees TLS records, not WebSocket frames
        if link is not None and link not in self.net.links:
            return False
        self.net.apply(fault, link)
        return True

    def in_flight(self) -> bool:
        """Some live link holds bytes for delivery later (latency, a bandwidth cap): the world
        is not done moving. Bytes a clog or partition holds wait for a heal, not for time."""
        for link_id in self.net.links:
            link = self.net.link(link_id)
            if link.c2s.queue or link.s2c.queue:
                return True
        return False

    def heal(self) -> None:
        self.net.heal()
        if self.base_latency is not None and not self._settling:
            self.net.apply(self.base_latency)

    @contextlib.contextmanager
    def settling(self) -> Iterator[None]:
        """While the machine settles (every fault healed, waiting for recovery), heal without
        the base latency, and put it back at the end. It only keeps frames in flight across
        rules so that a drop lands on them, and no drop comes while settling; there every
        reconnect paid it on each of its round trips (7% of a tcp fuzz run)."""
        self._settling = True
        try:
            yield
        finally:
            self._settling = False
            if self.base_latency is not None:
                self.net.apply(self.base_latency)
