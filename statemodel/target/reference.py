"""The embedded default target: the reference server and client over a fault-layer network."""

from __future__ import annotations

import random
from dataclasses import replace

import trio

from statemodel.model import InvariantViolation
from statemodel.net import faults as F
from statemodel.net.sim import SimNetwork
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app
from statemodel.target.base import FAST_TIMERS, scripted_chunks

# Timers scaled for simulation: recovery is fast in virtual time, expiry stays far away,
# so a reset in a run always has a cause the machine itself triggered.
SIM_CONFIG = Config(
    **FAST_TIMERS,
    backoff_max=1.0,
    fragment_size=16 * 1024,
    replay_max_bytes=1024 * 1024,
    server_max_buffered_bytes=2 * 1024 * 1024,
    replay_max_age=20.0,
    session_ttl=40.0,
)


# Links are never instantaneous: a few ms each way keeps frames and acks in flight across
# steps, so a drop can land on data the peer has not yet seen (where replay bugs live).
BASE_LATENCY = F.Latency(seconds=0.005)


class ReferenceTarget:
    can_restart = True
    max_advance = float("inf")  # virtual time is free

    def __init__(self, options, seed: int) -> None:
        if options.transport != "sim":
            raise ValueError(f"ReferenceTarget runs on transport 'sim'; got {options.transport!r} "
                             "(make_target picks LoopbackReferenceTarget for tcp and netns)")
        self.config = replace(SIM_CONFIG, mutants=frozenset(options.mutants))
        self.seed = seed
        self.net = SimNetwork(seed, record_bytes=options.record)
        self.generation = 0
        self.server: Server | None = None
        self._servers: list[Server] = []  # every incarnation, to tell which created a session
        self._nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self._stopped: trio.Event | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.net.apply(BASE_LATENCY)
        await self._start_server()

    def _listener(self) -> trio.abc.Listener:
        """Where the (next) server accepts: the network's listener."""
        return self.net.listener()

    async def _start_server(self) -> None:
        self.server = Server(script_app, self.config, rng=random.Random(self.seed * 1009 + self.generation))
        self._servers.append(self.server)
        scope, stopped = trio.CancelScope(), trio.Event()
        listener = self._listener()

        async def serve(task_status=trio.TASK_STATUS_IGNORED):
            try:
                with scope:
                    await self.server.serve(listener, task_status=task_status)
            finally:
                stopped.set()

        self._scope, self._stopped = scope, stopped
        await self._nursery.start(serve)

    async def _stop_server(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            await self._stopped.wait()

    async def stop(self) -> None:
        await self._stop_server()

    async def dial(self):
        stream = await self.net.connect()
        return stream, stream.link.id

    def new_client(self, dial, rng: random.Random) -> Client:
        return Client(dial, self.config, rng)

    def apply(self, fault: F.Fault, link: int | None) -> bool:
        if link is not None and link not in self.net.links:
            return False
        self.net.apply(fault, link)
        return True

    def heal(self) -> None:
        self.net.heal()
        self.net.apply(BASE_LATENCY)

    async def restart_server(self) -> None:
        """Like a crashed process: every connection is reset, all sessions are gone, a new epoch."""
        for link in self.net.links:
            self.net.apply(F.Abort(), link)
        await self._stop_server()
        self.generation += 1
        await self._start_server()

    def recovery_bound(self) -> float:
        c = self.config
        return c.dead_after + c.backoff_max + 2 * c.handshake_timeout + 2.0

    def expiry_after(self) -> float:
        """Seconds a client may be cut off before the server may evict its replay data.

        The server evicts items older than ``replay_max_age`` while it has no connection;
        it may notice a dead connection up to ``dead_after`` before the client does.
        """
        c = self.config
        return min(c.replay_max_age, c.session_ttl) - c.dead_after - c.handshake_timeout - 1.0

    def check_bounds(self, largest_message: int) -> None:
        stats = self.server.stats()
        c = self.config
        # A producer may push one whole message once its buffer has room: allow one per session;
        # the server-wide bound (shared pool + parked sessions) is the server's documented one.
        limit = min(
            stats["sessions"] * (c.replay_max_bytes + largest_message),
            c.server_buffer_bound(largest_message),
        )
        # Each session on its own: its producers wait once it holds replay_max_bytes, so it
        # holds at most that plus the one message that crossed it (the total above is blind
        # to one session overfilling while others hold little).
        own = c.replay_max_bytes + largest_message
        if stats["session_buffered_bytes_max"] > own:
            raise InvariantViolation(
                "replay buffers within bounds", "one session",
                f"at most replay_max_bytes + the largest message = {own} buffered bytes",
                f"{stats['session_buffered_bytes_max']} bytes",
            )
        if stats["buffered_bytes"] > limit:
            raise InvariantViolation(
                "replay buffers within bounds", "server",
                f"at most {limit} buffered bytes for {stats['sessions']} sessions",
                f"{stats['buffered_bytes']} bytes",
            )
        if stats["sessions"] > c.max_sessions:
            raise InvariantViolation("sessions within bounds", "server", f"<= {c.max_sessions}", str(stats["sessions"]))

    def evicted_under_pressure(self, session_id: str) -> bool:
        """The server shed this session to make room for others (PROTOCOL.md §6 "Pressure":
        its unacked data evicted, or the session ended), so its resume may be reset. Read
        from the servers themselves: the machine allows that reset for exactly these."""
        return any(session_id in server.proto.shed for server in self._servers)

    def generation_of(self, session_id: str) -> int:
        """Which server incarnation created this session (restarts count from 0)."""
        for generation in range(len(self._servers) - 1, -1, -1):
            if session_id in self._servers[generation].proto.sessions:
                return generation
        return self.generation  # already expired: the newest is the safe (strict) answer

    def session_context(self, session_id: str) -> dict | None:
        """The server's copy of a session's context (what the session's next request sees)."""
        if session_id not in self.server.proto.sessions:
            return None
        return dict(self.server.proto.context(session_id))

    @staticmethod
    def expected_chunks(command: dict) -> list[str | bytes]:
        return scripted_chunks(command)
