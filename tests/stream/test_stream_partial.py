"""Unfinished inbound messages have bounds (issue 12, observation 4a).

One session sending 16 streams x 15 MB of fragments without `fin` parked 230 MiB in 3 s,
kept 120 s after disconnect, because every fragment was acked on arrival. Now a message is
acked with its last fragment (PROTOCOL.md §6), so an unfinished one is droppable: it
lives only with its connection, is bounded per session (4005) and server-wide (1013 for
the session holding the most), and the sender replays it whole. Sans-IO."""

from __future__ import annotations

import json
import random

from statemodel.stream import protocol as P
from statemodel.stream.config import Config, MiB
from statemodel.stream.errors import CloseCode
from statemodel.stream.frames import Frame, decode, encode

from test_stream_core import Pair


def data(sid: int, seq: int, payload: bytes, fin: bool) -> bytes:
    return encode(Frame("data", {"s": sid, "q": seq, "fin": fin, "k": "b"}, payload))


def session(proto: P.ServerProtocol, streams: int = 1) -> P.ServerConnection:
    conn = proto.connect(0.0)
    conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
    for sid in range(1, streams + 1):
        conn.receive(encode(Frame("open", {"s": sid, "q": 1, "k": "t"}, json.dumps({"op": "x"}).encode())), 0.0)
    conn.take()
    return conn


def test_unfinished_messages_of_one_session_are_bounded_by_max_message_size():
    cfg = Config(max_message_size=1 * MiB, fragment_size=64 * 1024)
    proto = P.ServerProtocol(cfg, random.Random(0))
    conn = session(proto, streams=16)
    chunk = bytes(64 * 1024)
    seq = {sid: 2 for sid in range(1, 17)}
    sent = 0
    while conn.close is None and sent < 16 * 15:  # 16 streams x 15 fragments, never a fin
        sid = 1 + sent % 16
        conn.receive(data(sid, seq[sid], chunk, False), 1.0)
        seq[sid] += 1
        sent += 1
        assert proto.budget.partial_bytes <= cfg.max_message_size
    assert conn.close is not None and conn.close[0] == CloseCode.MESSAGE_TOO_LARGE
    proto.disconnected(conn, 2.0)
    assert proto.sessions == {} and proto.budget.partial_bytes == 0  # bad input: ended, freed


def test_fragments_are_acked_only_with_their_message_and_dropped_with_the_connection():
    p = Pair(Config(fragment_size=4))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.client.send(sid, b"0123456789AB", p.now)  # 3 fragments
    frames = p.clink.take()
    for f in frames[:2]:  # the last fragment is lost with the connection
        p.conn.receive(f, p.now)
    p.conn.on_timer(p.now + 1)  # any ack due goes out
    acks = [decode(d) for d in p.conn.take()]
    assert all(f.h["a"].get(sid, 0) < 2 for f in acks if f.t in ("ack", "ping", "pong"))
    s = p.server.sessions[p.client.session]
    assert s.ep.partial_bytes == 8 and p.server.budget.partial_bytes == 8
    p.drop()
    assert s.ep.partial_bytes == 0 and p.server.budget.partial_bytes == 0  # nothing kept for 120 s
    p.connect()  # resume: the client replays the whole message
    assert [e.data for e in p.sevents if isinstance(e, P.Message)] == [b"0123456789AB"]


def test_the_server_wide_bound_closes_the_oldest_holder_1013_and_nothing_is_lost():
    """The session parking fragments longest is shed, not the one uploading now (even if
    it is the largest: otherwise many small parked partials could keep any large upload
    out)."""
    cfg = Config(fragment_size=64 * 1024, server_max_partial_bytes=1 * MiB)
    proto = P.ServerProtocol(cfg, random.Random(0))
    hog, honest = session(proto), session(proto)
    chunk = bytes(64 * 1024)
    for q in range(2, 8):  # 6 fragments: 384 KiB unfinished since t=1, no fin
        hog.receive(data(1, q, chunk, False), 1.0)
    for q in range(2, 13):  # the honest one's larger message pushes the total over the bound...
        honest.receive(data(1, q, chunk, False), 5.0)
    assert hog.close is not None and hog.close[0] == CloseCode.TRY_AGAIN_LATER
    assert honest.close is None and proto.budget.partial_bytes == 11 * len(chunk)
    honest.receive(data(1, 13, chunk, True), 5.0)  # ...and completes it
    messages = [e for e in proto.drain_events() if isinstance(e, P.Message)]
    assert [len(m.data) for m in messages] == [12 * len(chunk)]
    assert proto.budget.partial_bytes == 0
    # the hog's session lives (1013 is retryable): its resume replays from the first fragment
    s = hog.session
    proto.disconnected(hog, 2.0)
    assert s.id in proto.sessions and s.ep.recv.get(1) == 1
