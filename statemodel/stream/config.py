"""Every limit and timer of the reference resumable stream, in one frozen dataclass.

One place so PROTOCOL.md, the tester's model and both shells agree on the numbers; the
defaults are what `statemodel serve` uses. Times are seconds (virtual under MockClock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class Config:
    handshake_timeout: float = 10.0  # WebSocket opening handshake + hello/welcome
    heartbeat_interval: float = 5.0  # a ping frame at least this often, both ways
    dead_after: float = 15.0  # no frame received for this long => connection is dead
    send_timeout: float = 15.0  # one WebSocket send may block at most this long
    close_timeout: float = 2.0  # bound on the WebSocket closing handshake
    ack_interval: float = 0.05  # send a pending cumulative ack at most this late
    ack_bytes: int = 256 * KiB  # ...or as soon as this many unacked bytes arrived
    fragment_size: int = 256 * KiB  # data payload bytes per fragment (fewer frames: 2 MiB in 8)
    max_frame_size: int = 1 * MiB  # one encoded frame (header + payload)
    max_header_size: int = 64 * KiB  # JSON header of one frame
    max_message_size: int = 16 * MiB  # one reassembled message; also unfinished ones per session
    # Unfinished inbound messages of all sessions together (never acked, so droppable):
    # beyond it the session with the oldest one is closed with 1013 and its client replays.
    server_max_partial_bytes: int = 64 * MiB
    replay_max_bytes: int = 4 * MiB  # unacked payload bytes kept per session and direction
    replay_max_count: int = 4096  # unacked items kept per session and direction
    # The shared pool of all sessions (see server_overdraft_sessions above either bound, and
    # parking below). Held payload stays within server_buffer_bound(M) for messages of at
    # most M bytes: 26 MiB for 2 MiB responses with the defaults.
    server_max_buffered_bytes: int = 2 * MiB
    server_max_buffered_items: int = 4096
    server_overdraft_sessions: int = 3  # above a bound, at most this many sessions hold items
    # Fair shares (PROTOCOL.md §6): a session that acked nothing for stall_after while the
    # server-wide bound is reached is *parked* (up to fair_stalled_sessions of them): it
    # keeps its buffer but gets no more until it is acked, and what it holds leaves the
    # shared pool, so sessions that stop reading delay the others by at most stall_after.
    stall_after: float = 1.0
    fair_stalled_sessions: int = 4
    # Pressure (PROTOCOL.md §6): while a connected session that holds nothing waits for the
    # full pool, the server sheds pool holders that stopped reading -- a session without a
    # connection for evict_grace (a quick reconnect keeps everything), or a connected one
    # that acked nothing for stall_after (cut with 1013) -- by evicting their unacked data
    # (reported on resume). So any number of them delays the others at most
    # honest_delay_bound().
    evict_grace: float = 1.0
    replay_max_age: float = 60.0  # while disconnected, older unacked items may be evicted
    session_ttl: float = 120.0  # a session with no connection for this long expires
    max_sessions: int = 10_000
    max_streams_per_session: int = 256  # concurrently open streams
    # Client messages a stream's app has not read yet (the server acks on receipt, so the
    # client's replay bound does not cover them). One message is always accepted; beyond it
    # the stream fails with error `app_backlog` instead of growing without bound.
    app_backlog_bytes: int = 16 * MiB
    backoff_base: float = 0.05
    backoff_max: float = 5.0
    backoff_jitter: float = 0.5  # fraction of the delay that is randomised away
    # A connection is *healthy* once it has been up (welcome received) this long; only a
    # healthy connection resets the backoff, so a server that closes right after welcome
    # (1001, 1011, 1013, 4008, a drop) sees delays grow to backoff_max (PROTOCOL.md §11).
    healthy_after: float = 5.0
    max_reconnect_attempts: int | None = None  # None = retry forever
    # Connections that have not completed hello, server-wide (PROTOCOL.md §9): beyond this
    # count the oldest is dropped; before hello a WebSocket message may be at most
    # prehello_message_size (a hello is header-only); handshake_timeout bounds the time.
    prehello_max_connections: int = 128
    ws_message_queue_size: int = 64  # trio-websocket's default of 1 stalls pongs/closes
    ws_receive_buffer_size: int = 64 * KiB  # trio-websocket's default is 4 KiB
    mutants: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        """Reject settings that could never work, with a message that says which and why."""
        for name in ("handshake_timeout", "heartbeat_interval", "dead_after", "send_timeout",
                     "close_timeout", "session_ttl", "replay_max_age", "backoff_base", "healthy_after",
                     "stall_after", "evict_grace"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Config.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("ack_bytes", "fragment_size", "max_frame_size", "max_message_size", "replay_max_bytes",
                     "replay_max_count", "server_max_buffered_bytes", "server_max_buffered_items",
                     "server_overdraft_sessions", "max_sessions", "prehello_max_connections", "fair_stalled_sessions",
                     "server_max_partial_bytes",
                     "max_streams_per_session", "app_backlog_bytes"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"Config.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.ack_interval < 0:
            raise ValueError("Config.ack_interval must be >= 0")
        if self.backoff_max < self.backoff_base:
            raise ValueError(f"Config.backoff_max ({self.backoff_max}) must be >= backoff_base ({self.backoff_base})")
        # jitter < 1 keeps every delay after the first >= (1 - jitter) x its nominal value:
        # the reconnect rate has a floor by construction (no retry storm).
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError(f"Config.backoff_jitter must be within [0, 1), got {self.backoff_jitter!r}")
        if self.fragment_size + 1024 > self.max_frame_size:
            raise ValueError(
                f"Config.fragment_size ({self.fragment_size}) + 1 KiB of header must fit in "
                f"max_frame_size ({self.max_frame_size})")
        if self.dead_after <= self.heartbeat_interval:
            raise ValueError(
                f"Config.dead_after ({self.dead_after}) must exceed heartbeat_interval "
                f"({self.heartbeat_interval}), or healthy idle connections would be declared dead")
        if not isinstance(self.mutants, frozenset):
            object.__setattr__(self, "mutants", frozenset(self.mutants))

    def honest_delay_bound(self) -> float:
        """The most that sessions which stop reading or vanish -- any number of them -- add
        to another session's request (PROTOCOL.md §6 "The fairness bound"): a stalled
        session is parked or shed `stall_after` after its oldest unacked item, one without
        a connection shed `evict_grace` after it lost it; after that what it held is out of
        the shared pool. Waiting for room behind other *reading* sessions, and behind
        requests other sessions made first, is load, not included."""
        return max(self.stall_after, self.evict_grace)

    def server_buffer_bound(self, largest_message: int) -> int:
        """Most payload bytes the reference server holds in replay buffers, all sessions
        together, when no message is larger than `largest_message` (PROTOCOL.md §6): the
        shared pool (server_max_buffered_bytes, overshot by one message and by one per
        overdraft slot) plus what each parked session held when it was parked (at most the
        pool plus one message)."""
        s, m = self.server_max_buffered_bytes, largest_message
        return s + (self.server_overdraft_sessions + 1) * m + self.fair_stalled_sessions * (s + m)

    @property
    def prehello_message_size(self) -> int:
        """Largest WebSocket message before the hello is accepted: one header-only frame
        (larger gets trio-websocket's 1009). With prehello_max_connections this bounds what
        connections that never say hello make the server buffer: 128 x 64 KiB = 8 MiB."""
        return 4 + self.max_header_size

    @property
    def ws_max_message_size(self) -> int:
        """trio-websocket closes 1009 above this; keep it above our own frame limit so
        oversized frames get *our* documented close code instead."""
        return self.max_frame_size + 64 * KiB
