"""Switchable, realistic bugs in the reference implementation (DESIGN.md §6).

Each name switches on one `if "name" in config.mutants:` at the precise place in
`protocol.py`. A tester that misses one of these would miss the same bug in a real server.
name -> (bug class, real-world precedent).

The second group was written after the first 15 were all caught, from the classes the
machine had never reached (issue 15) and from the trackers of real resumable streams; the
precedent names the thread each one follows.
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
    # -- issue 15: classes the first 15 did not cover -------------------------------------
    "dedupe_last_only": (
        "receiver-side dedupe compares a sequenced item only with the last one received: an older copy is accepted and delivered again",
        "SignalR stateful reconnect: after a reconnect either side may resend messages the peer already has and the receiver must skip every sequence id it has seen, not only the latest (dotnet/aspnetcore#50409, #55575; the Ack/Sequence rule quoted in mandrewcito/signalrcore#140)",
    ),
    "client_context_offline_dropped": (
        "session context the client sets while disconnected is applied locally but never sent, so the two copies disagree after the resume",
        "client state changed while offline never reaches the server: Socket.IO connection state recovery replays server->client packets only, users resync client state by hand (socketio/socket.io#5363); volatile emits are dropped while disconnected",
    ),
    "empty_resume_is_new": (
        "a resume whose recv map is empty (the client has received nothing yet) is treated as a brand-new connection: the live session is replaced",
        "Socket.IO connection state recovery fails when the client reconnects before the server emitted anything: the client's offset is undefined and the server's `typeof offset === \"string\"` check skips restoreSession (socketio/socket.io#5538)",
    ),
    "stale_connection_ends_session": (
        "when an older connection of a session finally closes (fenced, or timed out after the client already resumed elsewhere) its cleanup removes the session the newer connection is using: the next resume finds nothing",
        "Socket.IO 'socket recovery works only once': the old transport's ping timeout, firing after the client had recovered on a new one, breaks every later recovery (socketio/socket.io#4880)",
    ),
    "recovered_after_restart": (
        "a restarted server accepts a resume token it can still verify, rebuilds the session empty under the client's id and answers 'recovered'",
        "Centrifugo: an in-memory restart drops history and epoch, so clients must get recovered: false (centrifugal/centrifugo#798); centrifuge-go#160: a stale stream position accepted while reporting a successful recovery",
    ),
    "lost_ignored_by_client": (
        "the client ignores the streams a welcome reports lost (looked up by JSON's string keys in an int-keyed table): they stay open forever",
        "Centrifugo SDKs kept requesting recovery from a stale position instead of telling the app the state was lost (centrifugal/centrifuge-js#385, centrifuge-go#130); type confusion at a protocol boundary as in socketio/socket.io#5538",
    ),
    "fin_by_short_fragment": (
        "a binary message's last fragment is recognised by being short: a message of exactly k x fragment_size never ends and merges with the next one",
        "TFTP (RFC 1350 section 6): a block shorter than 512 bytes ends the transfer, so a file of an exact multiple needs a final empty block; implementations that forget it hang at exact multiples",
    ),
    "ttl_from_last_resume": (
        "the session's time-to-live is counted from when a connection last attached, not from the disconnect: a session connected longer than session_ttl expires the moment it drops",
        "Socket.IO connection state recovery failing for long-lived connections and for drops more than ~10 s after connecting (socketio/socket.io#5282, socketio/socket.io-redis-streams-adapter#48)",
    ),
    "trim_when_full": (
        "the replay buffer is a ring: above its bound the oldest unacknowledged item is dropped silently instead of making the producer wait",
        "Centrifugo history is a bounded stream (history_size): trimmed publications must yield recovered: false (centrifugal/centrifugo#798); SignalR's StatefulReconnectBufferSize exists because an unbounded resend buffer was not an option (dotnet/aspnetcore#49977)",
    ),
}
