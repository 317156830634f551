"""Switchable, realistic bugs in the reference implementation (DESIGN.md §6).

Each name switches on one `if "name" in config.mutants:` at the precise place in
`protocol.py`. A tester that misses one of these would miss the same bug in a real server.
name -> (bug class, real-world precedent).
"""

from __future__ import annotations

MUTANTS: dict[str, tuple[str, str]] = {
    "replay_skips_first": (
        "off-by-one at the replay boundary: the first unacked item is never resent",
        "resume offset computed as last_acked+1 instead of last_acked (classic offset bugs in Kafka consumers / SignalR stateful reconnect sequence handling)",
    ),
    "no_dedupe": (
        "duplicates after resume: sender replays from its last ack instead of the peer's position and the receiver does not drop seq <= last seen",
        "at-least-once redelivery surfacing as duplicates (MQTT QoS1 without packet-id dedupe; Socket.IO recovery resending missed packets)",
    ),
    "inflight_per_connection": (
        "in-flight state tied to the connection, not the session: the replay buffer is dropped on disconnect",
        "per-socket send queues lost on reconnect (Socket.IO before connection-state recovery; many hand-rolled WS servers)",
    ),
    "evict_without_reset": (
        "buffer eviction without reset: aged-out items vanish and resume still claims the gap is covered (silent loss)",
        "Centrifugo/Ably-style history trimming must report 'recovered: false'; bugs where trimmed history was not detected",
    ),
    "seq_restart_per_connection": (
        "sequence counters restart per connection, so new data after resume is deduped away as 'already seen'",
        "RSocket resumption implementations resetting positions; per-connection counters in custom protocols",
    ),
    "recovered_despite_loss": (
        "'recovered' reported although streams were lost",
        "success flag computed before the loss check (Socket.IO socket.recovered edge cases)",
    ),
    "ack_wrong_stream": (
        "cumulative ack attributed to the wrong streams: every stream is acked up to the highest seq seen on any stream",
        "multiplexing bugs mixing per-stream and per-connection offsets (HTTP/2 / QUIC flow-control accounting bugs)",
    ),
    "context_not_restored": (
        "session context not restored on resume",
        "auth/subscription state kept per connection and lost on reconnect (GraphQL-WS subscriptions, Phoenix channels rejoin bugs)",
    ),
    "cancel_lost_on_resume": (
        "a cancel issued while disconnected is dropped instead of being queued",
        "AbortController/cancellation sent only when the socket is open (gRPC-web / fetch streaming client bugs)",
    ),
    "split_inside_char": (
        "text fragmented inside a UTF-8 character",
        "byte-based chunking of text breaking multi-byte characters (well-known in streaming LLM/SSE proxies)",
    ),
    "partial_per_connection": (
        "fragments of an unfinished message acked, yet the reassembly buffer is tied to the connection: after a mid-message resume the message loses its start",
        "reassembly state kept on the socket object (WebSocket continuation frames handled per connection)",
    ),
    "no_fencing": (
        "no fencing: the connection that last sent a frame owns the session, so a stale half-open connection steals new data",
        "two live connections for one session (MQTT session takeover bugs; Ably duplicate connection handling)",
    ),
    "end_not_replayed": (
        "end-of-stream not kept in the replay buffer, so a drop right before it leaves the stream open forever",
        "terminal frames sent out-of-band (Vercel resumable-stream / SSE 'done' event not persisted)",
    ),
    "no_backpressure": (
        "no backpressure: producers keep emitting into an unbounded replay buffer (memory grows without bound)",
        "unbounded per-client queues (Socket.IO buffer growth, trio-websocket message_queue_size misuse)",
    ),
    "token_not_checked": (
        "resume token not verified: anyone knowing a session id can take it over",
        "session fixation / missing HMAC comparison on resume (various WebSocket resume implementations)",
    ),
}
