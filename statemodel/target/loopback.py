"""The reference target on real sockets: ``--target reference --transport tcp`` or ``netns``.

The reference server runs in the machine's trio run on a real listener; the machine's
clients reach it through a loopback ``FaultProxy`` (``ProxyFront``), so every fault of the
vocabulary applies on live connections, exactly as for a ws:// target, while the tester still
sees inside the server (restarts, buffer bounds, server-side context).

- ``tcp``: the server listens on 127.0.0.1 (ephemeral port); the proxy forwards to it.
- ``netns``: the server listens inside a private network namespace (``NetnsNetwork``); the
  proxy's upstream legs cross the veth pair, and the faults the kernel can express
  (partition, clog, packet loss, half-open, reset, failed handshake) are iptables rules on
  that leg; the rest (latency, bandwidth, slicing, clean closes, truncation, frame-aware) stay
  in the proxy. Needs root (``netns.unavailable_reason()``).

A restart is a new ``Server`` on the same listening socket, like the sim's: every link is
reset, sessions and epoch are gone, connections queued meanwhile reach the new server.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import replace

import trio

from statemodel.net import faults as F
from statemodel.net import netns
from statemodel.stream.client import Client
from statemodel.target.proxied import REAL_TIME_BASE_LATENCY, REAL_TIME_CONFIG, REAL_TIME_MAX_ADVANCE, ProxyFront
from statemodel.target.reference import SIM_CONFIG, ReferenceTarget

# The sim's buffers and expiry with the real-time timers (short, for loopback).
LOOPBACK_CONFIG = replace(SIM_CONFIG, **{
    name: getattr(REAL_TIME_CONFIG, name)
    for name in ("handshake_timeout", "heartbeat_interval", "dead_after", "send_timeout",
                 "close_timeout", "backoff_base", "backoff_max")
})

# What iptables can do on the netns leg (the proxy does the rest).
KERNEL_FAULTS = (F.Partition, F.Clog, F.PacketLoss, F.HalfOpen, F.Abort, F.DropDuringHandshake)


class _KeptOpen(trio.abc.Listener):
    """The server's listening socket, kept open across restarts: ``Server.serve`` closes its
    listener when cancelled; the next server accepts on the same one."""

    def __init__(self, inner: trio.SocketListener) -> None:
        self.inner = inner

    async def accept(self) -> trio.abc.Stream:
        return await self.inner.accept()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class LoopbackReferenceTarget(ReferenceTarget):
    """The reference server on a real listener behind a loopback fault proxy (tcp, netns)."""

    can_restart = True
    max_advance = REAL_TIME_MAX_ADVANCE  # real seconds per `advance` rule

    def __init__(self, options, seed: int, *, connect_timeout: float = 5.0) -> None:
        if options.transport not in ("tcp", "netns"):
            raise ValueError(f"LoopbackReferenceTarget runs on tcp or netns; got {options.transport!r}")
        if options.transport == "netns":
            reason = netns.unavailable_reason()
            if reason:
                raise ValueError(f"the reference target on transport 'netns': {reason}")
        self.transport = options.transport
        self.config = replace(LOOPBACK_CONFIG, mutants=frozenset(options.mutants))
        self.seed = seed
        self.record = options.record
        self.connect_timeout = connect_timeout
        self.generation = 0
        self.server = None
        self._servers = []
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None
        self._listening: trio.SocketListener | None = None
        self.kernel: netns.NetnsNetwork | None = None
        self.front: ProxyFront | None = None
        self.net = None  # the proxy, once started

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        if self.transport == "netns":
            self.kernel = netns.NetnsNetwork(self.seed)
            await trio.to_thread.run_sync(self.kernel.open)
            self._listening = self.kernel.listener()
            upstream = (self.kernel.ns_addr, self.kernel.port)
        else:
            self._listening = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
            upstream = ("127.0.0.1", self._listening.socket.getsockname()[1])
        self.front = ProxyFront(upstream, self.seed, record=self.record, connect_timeout=self.connect_timeout,
                                base_latency=REAL_TIME_BASE_LATENCY)
        self.net = self.front.net
        if self.kernel is not None:
            self.kernel.trace = self.net.trace  # kernel faults show in the same recording
            self.net.open_upstream = self._open_kernel_leg
        await self._start_server()
        await self.front.start(nursery)

    def _listener(self) -> trio.abc.Listener:
        return _KeptOpen(self._listening)

    async def _open_kernel_leg(self, link_id: int) -> trio.SocketStream:
        return await self.kernel.connect(timeout=self.connect_timeout, link=link_id)

    async def stop(self) -> None:
        try:
            if self.front is not None:
                await self.front.stop()
            await self._stop_server()
        finally:
            if self._listening is not None:
                with trio.CancelScope(shield=True):
                    await self._listening.aclose()
            if self.kernel is not None:
                self.kernel.close()

    # ---- connections ---------------------------------------------------------------------
    async def dial(self) -> tuple[trio.abc.Stream, int]:
        return await self.front.dial()

    async def dial_around(self) -> trio.abc.Stream:
        """Peers the machine plays reach the server past the client's faults: straight to its
        port (tcp), or from inside the namespace, never crossing the faulted veth (netns)."""
        if self.kernel is not None:
            return await self.kernel.connect_inside(timeout=self.connect_timeout)
        return await self.front.dial_around()

    def new_client(self, dial, rng: random.Random) -> Client:
        return Client(dial, self.config, rng)

    # ---- faults --------------------------------------------------------------------------
    def apply(self, fault: F.Fault, link: int | None) -> bool:
        if self.kernel is not None and isinstance(fault, KERNEL_FAULTS):
            if link is not None and link not in self.kernel.links:
                return False
            self.kernel.apply(fault, link)
            return True
        return self.front.apply(fault, link)

    def heal(self) -> None:
        if self.front is None:  # start failed: teardown's settle must not hide why
            return
        self.front.heal()
        if self.kernel is not None:
            self.kernel.heal()

    def in_flight(self) -> bool:
        """Optional (``Target``, quiet.py): bytes the proxy delays, or a segment netns lost that TCP resends."""
        return (self.front is not None and self.front.in_flight()) or (self.kernel is not None and self.kernel.losing())

    def settling(self) -> contextlib.AbstractContextManager:
        """The network while the machine settles (ProxyFront.settling); the sim's stays as it is."""
        return self.front.settling() if self.front is not None else contextlib.nullcontext()

    async def restart_server(self) -> None:
        """Like a crashed process: every connection is reset, all sessions are gone, a new epoch."""
        for link in self.net.links:
            self.net.apply(F.Abort(), link)
        await self._stop_server()
        self.generation += 1
        await self._start_server()
