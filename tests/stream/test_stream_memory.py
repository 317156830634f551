"""The server-wide replay budget bounds what a server holds for clients that do not ack,
counted in what is actually resident (encoded frames, items), not only payload bytes.
Sans-IO: clients are raw frames in, outboxes discarded (nothing is ever acked)."""

from __future__ import annotations

import random

from statemodel.stream import protocol as P
from statemodel.stream.config import Config, MiB
from statemodel.stream.frames import VERSION, Frame, encode


def open_sessions(server: P.ServerProtocol, n: int) -> list[tuple[P.ServerConnection, str]]:
    """`n` connected sessions, each with stream 1 open; their output is never acked."""
    out = []
    for _ in range(n):
        conn = server.connect(0.0)
        conn.receive(encode(Frame("hello", {"v": VERSION})), 0.0)
        conn.receive(encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, b"{}")), 0.0)
        assert conn.close is None, conn.close
        out.append((conn, conn.session.id))
    server.drain_events()
    return out


def fill(server: P.ServerProtocol, sessions, chunk: bytes, per_session: int) -> int:
    """Every session emits `chunk` while the server says it has capacity (as server.py does)."""
    emitted = 0
    for _ in range(per_session):
        for conn, sid in sessions:
            if server.has_capacity(sid):
                assert server.emit(sid, 1, chunk, 0.0)
                emitted += 1
            conn.take()  # written to a peer that never acks
    return emitted


def held(server: P.ServerProtocol) -> tuple[int, int]:
    """(encoded frame bytes, items) in all replay buffers: what the server keeps resident."""
    items = [it for s in server.sessions.values() for st in s.ep.out.values() for it in st.buf]
    return sum(len(it.data) for it in items), len(items)


def test_payload_less_items_are_bounded_server_wide_not_only_per_session():
    # Empty messages carry no payload bytes, so the byte bound alone never stops them: each
    # session would keep replay_max_count frames, times max_sessions.
    loose = Config(replay_max_count=50, server_max_buffered_items=10**6, server_overdraft_sessions=2)
    server = P.ServerProtocol(loose, random.Random(0))
    assert fill(server, open_sessions(server, 8), b"", 100) == 8 * 50
    assert server.budget.bytes == 0 and held(server)[1] == 8 * 50

    tight = Config(replay_max_count=50, server_max_buffered_items=60, server_overdraft_sessions=2)
    server = P.ServerProtocol(tight, random.Random(0))
    fill(server, open_sessions(server, 8), b"", 100)
    _, items = held(server)
    # Up to the bound, then at most one more message by sessions under the overdraft rule.
    assert 60 <= items <= 60 + tight.server_overdraft_sessions
    assert server.budget.items == items


def test_budget_items_are_released_by_acks_and_session_end():
    cfg = Config(replay_max_count=50, server_max_buffered_items=20, session_ttl=5)
    server = P.ServerProtocol(cfg, random.Random(0))
    sessions = open_sessions(server, 3)
    fill(server, sessions, b"x", 100)
    assert server.budget.items == held(server)[1] >= 20
    (conn, sid), rest = sessions[0], sessions[1:]
    top = server.sessions[sid].ep.out[1].next_seq - 1
    conn.receive(encode(Frame("ack", {"a": {"1": top}})), 0.0)  # the first client acks all
    assert server.budget.items == held(server)[1]
    assert server.sessions[sid].ep.buffered_items == 0
    for c, _ in rest:
        server.disconnected(c, 0.0)
    server.on_timer(10.0)  # the others expire and release their share
    assert server.budget.items == held(server)[1] == 0
    assert server.budget.bytes == 0 and server.budget.sessions == 0


def test_default_budget_bounds_encoded_frames_for_100_sessions_of_2_mib():
    # The memory figure's load (100 concurrent 2 MiB responses, nobody acks yet): the encoded
    # frames held stay below the byte bound + overdraft x one message, not 100 x 2 MiB.
    cfg = Config()
    server = P.ServerProtocol(cfg, random.Random(0))
    message = bytes(2 * MiB)
    fill(server, open_sessions(server, 100), message, 2)
    frame_bytes, items = held(server)
    per_message = len(message) + 64 * (len(message) // cfg.fragment_size)  # payload + headers
    assert frame_bytes <= cfg.server_max_buffered_bytes + cfg.server_overdraft_sessions * per_message
    # One message per session here: exactly `overdraft` sessions got theirs out, the rest wait.
    assert items == cfg.server_overdraft_sessions * (len(message) // cfg.fragment_size)
    assert server.budget.sessions <= cfg.server_overdraft_sessions
    assert server.budget.bytes <= frame_bytes  # the budget counts payload, frames add headers
