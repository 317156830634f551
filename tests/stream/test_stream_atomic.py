"""Validate, then apply: input the core refuses changes nothing (issue 12, observation 7).
Sans-IO: frames in, outboxes and buffers inspected."""

from __future__ import annotations

import random

import pytest

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.stream.frames import Frame, decode, encode


def server_session(items: int = 5):
    proto = P.ServerProtocol(Config(), random.Random(0))
    conn = proto.connect(0.0)
    conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
    welcome = decode(conn.take()[0]).h
    conn.receive(encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, b"{}")), 0.0)
    for i in range(items):
        assert proto.emit(welcome["session"], 1, f"m{i}", 0.0)
    conn.take()  # sent, never acked: the connection drops
    proto.disconnected(conn, 1.0)
    return proto, welcome


def resume(proto, welcome, recv: dict[str, int]) -> P.ServerConnection:
    conn = proto.connect(2.0)
    conn.receive(encode(Frame("hello", {"v": 1, "resume": {
        "session": welcome["session"], "token": welcome["token"], "epoch": welcome["epoch"], "recv": recv}})), 2.0)
    return conn


def test_a_rejected_resume_changes_nothing():
    """A resume whose recv names a stream never sent got 4002, yet its valid part (stream
    1 acked up to 3) was applied: the next resume said `recovered` and replayed from 4."""
    proto, welcome = server_session()
    bad = resume(proto, welcome, {"1": 3, "9": 2})
    assert bad.close is not None and bad.close[0] == CloseCode.PROTOCOL_VIOLATION
    proto.disconnected(bad, 2.0)
    good = resume(proto, welcome, {})
    frames = [decode(d) for d in good.take()]
    assert frames[0].h["outcome"] == "recovered"
    assert [f.seq for f in frames[1:] if f.t == "data"] == [1, 2, 3, 4, 5]  # everything replayed


def test_a_refused_ack_map_changes_nothing():
    proto, welcome = server_session()
    conn = resume(proto, welcome, {})
    conn.take()
    s = proto.sessions[welcome["session"]]
    before = [it.seq for it in s.ep.out[1].buf]
    conn.receive(encode(Frame("ack", {"a": {"1": 2, "2": 7}})), 3.0)
    assert conn.close is not None and conn.close[0] == CloseCode.PROTOCOL_VIOLATION
    assert [it.seq for it in s.ep.out[1].buf] == before and s.ep.out[1].acked == 0


def client_with_session():
    client = P.ClientProtocol(Config())
    link = client.connect(0.0)
    client.receive(encode(Frame("welcome", {"v": 1, "session": "s1", "token": "t", "epoch": "e",
                                            "outcome": "new", "recv": {}, "lost": {}})), 0.0)
    sid = client.open("request", 0.0)
    client.drain_events()
    client.disconnected(1.0)
    return client, sid, link


@pytest.mark.parametrize("session", ["s1", "another"])
def test_a_refused_welcome_changes_nothing_on_the_client(session):
    """A welcome whose recv acks beyond what was sent is refused (4002) before anything is
    applied: a welcome for another session reset every stream first, then failed."""
    client, sid, _ = client_with_session()
    link = client.connect(2.0)
    client.receive(encode(Frame("welcome", {"v": 1, "session": session, "token": "t", "epoch": "e",
                                            "outcome": "recovered", "recv": {"1": 5}, "lost": {}})), 2.0)
    assert link.close is not None and link.close[0] == CloseCode.PROTOCOL_VIOLATION
    assert client.drain_events() == []  # no Reset, no Welcome
    assert client.session == "s1" and sid in client.streams
    assert [it.seq for it in client.ep.out[sid].buf] == [1]


def test_what_the_server_would_refuse_is_refused_by_the_client_before_anything_changes():
    """An open payload above max_frame_size (the server closes 4004: final) or a message
    above max_message_size (4005) would end the whole session; text with a lone surrogate
    cannot be UTF-8. Each raises ValueError at the call, and the session stays as it was."""
    cfg = Config(max_frame_size=4096, fragment_size=1024, max_message_size=10_000)
    client = P.ClientProtocol(cfg)
    client.connect(0.0)
    for payload in (b"x" * 5000, "\ud800"):
        with pytest.raises(ValueError):
            client.open(payload, 0.0)
    assert client.streams == set() and client.ep.out == {}
    sid = client.open(b"ok", 0.0)
    assert sid == 1  # no id was used up by the refused ones
    for msg in (b"x" * 10_001, "é" * 5001, "\udfff"):
        with pytest.raises(ValueError):
            client.send(sid, msg, 0.0)
    assert [it.seq for it in client.ep.out[sid].buf] == [1]  # only the open
    client.send(sid, "é" * 5000, 0.0)  # 10,000 bytes: exactly the limit
