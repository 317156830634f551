"""Pure tests of the sans-IO core: client and server protocol objects wired by hand."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.stream.frames import Frame, encode


class Pair:
    """A client and a server core joined by a perfect, manually pumped connection."""

    def __init__(self, config: Config = Config(), seed: int = 0, server: P.ServerProtocol | None = None):
        self.config = config
        self.now = 0.0
        self.server = server or P.ServerProtocol(config, random.Random(seed))
        self.client = P.ClientProtocol(config)
        self.cevents: list = []
        self.sevents: list = []
        self.conn = None

    def connect(self):
        self.clink = self.client.connect(self.now)
        self.conn = self.server.connect(self.now)
        self.pump()
        return self.clink, self.conn

    def pump(self, limit: int = 10_000):
        for _ in range(limit):
            moved = False
            for data in self.clink.take():
                moved = True
                self.conn.receive(data, self.now)
            for data in self.conn.take():
                moved = True
                self.client.receive(data, self.now)
            self.cevents += self.client.drain_events()
            self.sevents += self.server.drain_events()
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def drop(self):
        self.clink.take()
        self.conn.take()
        self.client.disconnected(self.now)
        self.server.disconnected(self.conn, self.now)

    def received(self, sid):
        out = []
        for e in self.cevents:
            if getattr(e, "sid", None) == sid and isinstance(e, P.Chunk):
                out.append(e.data)
        return out


def session_of(pair):
    return pair.server.sessions[pair.client.session]


def test_new_session_and_stream_roundtrip():
    p = Pair()
    p.connect()
    assert p.cevents == [P.Welcome("new", None, {})]
    sid = p.client.open("hello", p.now)
    p.pump()
    assert p.sevents == [P.Opened(p.client.session, sid, "hello")]
    p.server.emit(p.client.session, sid, "é" * 10, p.now)
    p.server.emit(p.client.session, sid, b"\x00\x01", p.now)
    p.server.finish(p.client.session, sid, p.now)
    p.pump()
    assert p.received(sid) == ["é" * 10, b"\x00\x01"]
    assert p.cevents[-1] == P.Ended(sid)


def test_large_text_fragments_on_char_boundaries_and_reassembles():
    cfg = Config(fragment_size=1000)
    text = "a😀b" * 200_000  # astral characters, ~1.2 MB
    kind, parts = P.split_message(text, cfg.fragment_size)
    assert kind == "t" and all(len(x) <= 1000 for x in parts)
    for part in parts:
        bytes(part).decode("utf-8")  # every fragment is whole characters
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"x", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, text, p.now)
    p.pump()
    assert p.received(sid) == [text]


def test_drop_mid_message_then_resume_recovers_every_byte_once():
    cfg = Config(fragment_size=64 * 1024)
    big = random.Random(1).randbytes(3 * 1024 * 1024)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"go", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, big, p.now)
    p.server.finish(p.client.session, sid, p.now)
    # deliver only the first 10 frames, then the connection dies
    frames = p.conn.take()
    for data in frames[:10]:
        p.client.receive(data, p.now)
    p.cevents += p.client.drain_events()
    p.drop()
    p.now += 1
    p.connect()
    assert p.cevents[1] == P.Welcome("recovered", None, {})
    assert p.received(sid) == [big]
    assert p.cevents[-1] == P.Ended(sid)


def test_client_messages_exactly_once_across_drops():
    p = Pair()
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    for i in range(5):
        p.client.send(sid, f"m{i}", p.now)
        # server gets the frame, but the ack is lost with the connection
        for data in p.clink.take():
            p.conn.receive(data, p.now)
        p.conn.take()
        p.drop()
        p.connect()
    msgs = [e.data for e in p.sevents if isinstance(e, P.Message)]
    assert msgs == [f"m{i}" for i in range(5)]


def test_restart_server_gives_reset_never_silent_loss():
    p = Pair()
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.server = P.ServerProtocol(p.config, random.Random(99))
    p.connect()
    resets = [e for e in p.cevents if isinstance(e, (P.Reset, P.Welcome))]
    assert resets[-2:] == [P.Reset(sid, "epoch_changed"), P.Welcome("reset", "epoch_changed", {})]


def test_unknown_and_expired_session_reasons():
    cfg = Config(session_ttl=10)
    p = Pair(cfg)
    p.connect()
    p.drop()
    p.now = 11
    assert p.server.next_deadline() == 10
    p.server.on_timer(p.now)
    assert p.server.stats()["sessions"] == 0
    p.connect()
    assert p.cevents[-1] == P.Welcome("reset", "session_expired", {})


def test_replay_eviction_by_age_reports_lost_stream():
    cfg = Config(replay_max_age=5, session_ttl=100)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.server.emit(p.client.session, sid, b"data", p.now)
    p.now = 6
    p.server.on_timer(p.now)
    assert p.server.stats()["buffered_items"] == 0
    p.connect()
    assert P.Reset(sid, "replay_evicted") in p.cevents
    assert p.cevents[-1] == P.Welcome("reset", "replay_evicted", {sid: "replay_evicted"})
    assert P.StreamGone(p.client.session, sid, "replay_evicted") in p.sevents


def test_context_items_are_never_evicted_by_age():
    """Found by StreamMachine (set_context, then a 25 s outage): an evicted ``ctx`` item left
    the server's context holding a key the client never heard of, with only a stream reset
    to show for it. Stream 0 now stays until acked, and the timer does not spin on it."""
    cfg = Config(replay_max_age=5, session_ttl=100)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.server.set_context(p.client.session, "k", "v", p.now)
    p.server.emit(p.client.session, sid, b"data", p.now)
    p.now = 6
    p.server.on_timer(p.now)
    assert p.server.stats()["buffered_items"] == 1  # the ctx item; the data item is gone
    assert p.server.next_deadline() == 100  # only the session's expiry is left to wait for
    p.connect()
    assert P.Welcome("reset", "replay_evicted", {sid: "replay_evicted"}) in p.cevents
    assert p.client.context == p.server.context(p.client.session) == {"k": "v"}


def test_stream_with_an_evicted_terminal_item_is_reported_lost_not_retired():
    """Found by StreamMachine (open, cancel, 25 s outage): the server pushed ``error``
    (cancelled), evicted it by age, and retired the stream on the resume's ack of the data
    before it; the welcome then said ``recovered`` while the client waited forever.
    An evicted, unacked item keeps the stream alive until a resume reports it lost. (Items
    of a finished stream are no longer evicted at all -- see test_stream_retirement -- so
    here the data ages out while the app is still winding down, and `error` comes after.)"""
    cfg = Config(replay_max_age=5, session_ttl=100, ack_interval=0.01)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    session = p.client.session
    p.now = 0.02
    p.conn.on_timer(p.now)  # the server acks the client's `open`
    p.client.cancel(sid, p.now)
    p.pump()
    p.server.emit(session, sid, b"data", p.now)  # the app's last chunk before it stops
    p.now = 0.04
    p.conn.on_timer(p.now)  # the server acks the `cancel` too
    p.drop()  # neither that ack nor the data reached the client
    p.now = 6
    p.server.on_timer(p.now)  # the data ages out
    p.server.finish(session, sid, p.now, "cancelled")
    p.connect()
    assert P.Welcome("reset", "replay_evicted", {sid: "replay_evicted"}) in p.cevents
    assert P.Reset(sid, "replay_evicted") in p.cevents
    p.pump()
    assert p.server.stats()["buffered_items"] == 0


def test_context_and_cancel_survive_resume():
    p = Pair()
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.client.set_context("user", {"id": 7}, p.now)
    p.client.cancel(sid, p.now)
    p.server.set_context(p.client.session, "srv", 1, p.now)
    p.connect()
    s = p.client.session
    assert P.ContextSet(s, "user", {"id": 7}) in p.sevents
    assert P.Cancelled(s, sid) in p.sevents
    assert p.client.context == {"user": {"id": 7}, "srv": 1}
    assert p.server.context(s) == {"user": {"id": 7}, "srv": 1}


def test_fencing_closes_older_connection():
    p = Pair()
    old_link, old_conn = p.connect()
    p.client.disconnected(p.now)  # client thinks the old one died; server does not know yet
    p.connect()
    assert old_conn.close[0] == CloseCode.SUPERSEDED
    assert p.conn.close is None


def test_heartbeat_and_dead_peer_detection():
    cfg = Config(heartbeat_interval=1, dead_after=3)
    p = Pair(cfg)
    p.connect()
    assert p.client.next_deadline() == 1
    p.now = 1
    p.client.on_timer(p.now)
    assert [f[4:20] for f in p.clink.outbox][0].startswith(b'{"t":"ping"')
    p.pump()  # server answers pong
    p.now = 4.5
    p.client.on_timer(p.now)
    p.server.connect  # noqa: B018
    p.conn.on_timer(p.now)
    assert p.conn.close[0] == CloseCode.PEER_DEAD


def test_acks_free_the_replay_buffer_and_backpressure():
    cfg = Config(replay_max_count=3, ack_interval=0.5)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    for i in range(3):
        p.server.emit(p.client.session, sid, b"x", p.now)
    assert not p.server.has_capacity(p.client.session)
    p.pump()
    p.now = 0.5
    p.client.on_timer(p.now)  # the delayed ack goes out
    p.pump()
    assert p.server.has_capacity(p.client.session)
    assert p.server.stats()["buffered_items"] == 0


# ------------------------------------------------------------------ bad input (server side)
def _raw_server(cfg=Config()):
    server = P.ServerProtocol(cfg, random.Random(0))
    return server, server.connect(0.0)


@pytest.mark.parametrize(
    "data, code",
    [
        (b"\x00\x00", CloseCode.MALFORMED_FRAME),
        (b"\x00\x00\x00\x10{}", CloseCode.MALFORMED_FRAME),
        (b"\x00\x00\x00\x02[]", CloseCode.MALFORMED_FRAME),
        (encode(Frame("hello", {"v": 2})), CloseCode.UNSUPPORTED_VERSION),
        (encode(Frame("ack", {"a": {}})), CloseCode.PROTOCOL_VIOLATION),
        ("text message", CloseCode.MALFORMED_FRAME),
        (encode(Frame("hello", {"v": 1})) + b"x", CloseCode.MALFORMED_FRAME),
    ],
)
def test_bad_first_frames_get_documented_close_codes(data, code):
    _, conn = _raw_server()
    conn.receive(data, 0.0)
    assert conn.close is not None and conn.close[0] == code, conn.close
    assert conn.close[1]  # a message a person can read


def test_oversized_frame_is_rejected():
    _, conn = _raw_server(Config(max_frame_size=2048, fragment_size=512))
    conn.receive(encode(Frame("hello", {"v": 1})) + b"", 0.0)
    assert conn.close is None
    conn.receive(encode(Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}, b"x" * 3000)), 0.0)
    assert conn.close[0] == CloseCode.FRAME_TOO_LARGE


def test_forged_token_closes_only_that_connection():
    p = Pair()
    p.connect()
    real = p.client.session
    bad = p.server.connect(0.0)
    bad.receive(encode(Frame("hello", {"v": 1, "resume": {"session": real, "token": "nope", "epoch": p.server.epoch}})), 0.0)
    assert bad.close[0] == CloseCode.FORGED_TOKEN
    assert p.conn.close is None and real in p.server.sessions


def test_ack_beyond_sent_and_gap_are_violations():
    p = Pair()
    p.connect()
    p.clink.send(Frame("ack", {"a": {5: 3}}))
    p.pump()
    assert p.conn.close[0] == CloseCode.PROTOCOL_VIOLATION and "only 0 were sent" in p.conn.close[1]
    q = Pair()
    q.connect()
    q.clink.send(Frame("open", {"s": 1, "q": 1, "k": "b"}))
    q.clink.send(Frame("data", {"s": 1, "q": 3, "fin": True, "k": "b"}))
    q.pump()
    assert q.conn.close[0] == CloseCode.PROTOCOL_VIOLATION and "gap" in q.conn.close[1]


def test_message_too_large():
    p = Pair(Config(max_message_size=10, fragment_size=4))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    with pytest.raises(ValueError):  # the reference client refuses to send it...
        p.client.send(sid, b"x" * 11, p.now)
    for q, part in enumerate((b"xxxx", b"xxxx", b"xxx"), start=2):  # ...a raw peer does not
        p.conn.receive(encode(Frame("data", {"s": sid, "q": q, "fin": q == 4, "k": "b"}, part)), p.now)
    assert p.conn.close[0] == CloseCode.MESSAGE_TOO_LARGE


def test_too_many_streams_is_a_stream_error_not_a_close():
    p = Pair(Config(max_streams_per_session=1))
    p.connect()
    a = p.client.open(b"a", p.now)
    b = p.client.open(b"b", p.now)
    p.pump()
    assert P.Failed(b, "too_many_streams") in p.cevents
    assert p.conn.close is None and p.server.is_open(p.client.session, a)


def test_never_acking_client_keeps_server_memory_bounded():
    cfg = Config(replay_max_bytes=1000, replay_max_count=100)
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    s = p.client.session
    emitted = 0
    while p.server.has_capacity(s) and emitted < 10_000:
        p.server.emit(s, sid, b"y" * 100, p.now)
        emitted += 1
    p.conn.take()  # the client never reads, never acks
    assert p.server.stats()["buffered_bytes"] <= 1000 + 100


# ------------------------------------------------------------------ property: no loss, no dup
@settings(max_examples=60, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=300) | st.text(max_size=200), min_size=1, max_size=12),
    c2s=st.lists(st.text(max_size=50), max_size=6),
    cuts=st.lists(st.integers(0, 40), max_size=5),
)
def test_any_drop_pattern_delivers_everything_once_in_order(chunks, c2s, cuts):
    p = Pair(Config(fragment_size=64))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    s = p.client.session
    for c in chunks:
        p.server.emit(s, sid, c, p.now)
    for m in c2s:
        p.client.send(sid, m, p.now)
    for cut in cuts:
        # deliver `cut` frames each way, then drop the connection
        for data in p.conn.take()[:cut]:
            p.client.receive(data, p.now)
        for data in p.clink.take()[:cut]:
            p.conn.receive(data, p.now)
        p.cevents += p.client.drain_events()
        p.sevents += p.server.drain_events()
        p.drop()
        p.now += 1
        p.connect()
    p.pump()
    p.server.finish(s, sid, p.now)  # after the client's messages reached the app
    p.pump()
    assert p.received(sid) == chunks
    assert [e.data for e in p.sevents if isinstance(e, P.Message)] == c2s
    assert p.cevents.count(P.Ended(sid)) == 1
    assert all(e.outcome in ("new", "recovered") for e in p.cevents if isinstance(e, P.Welcome))


def test_backoff_is_immediate_then_exponential_jittered_and_capped():
    from statemodel.stream.client import backoff_delay

    cfg = Config(backoff_base=1.0, backoff_max=8.0, backoff_jitter=0.5)
    rng = random.Random(3)
    delays = [backoff_delay(cfg, n, rng) for n in range(1, 8)]
    assert delays[0] == 0.0
    for n, d in enumerate(delays[1:], start=2):
        full = min(8.0, 2.0 ** (n - 2))
        assert full * 0.5 <= d <= full
    again = random.Random(3)
    assert delays == [backoff_delay(cfg, n, again) for n in range(1, 8)]  # same seed, same delays


def test_server_wide_bound_keeps_one_message_per_session_and_is_released_on_expiry():
    cfg = Config(replay_max_bytes=1000, server_max_buffered_bytes=1000, session_ttl=5)
    server = P.ServerProtocol(cfg, random.Random(0))
    pairs = [Pair(cfg, server=server) for _ in range(3)]
    for p in pairs:
        p.connect()
        p.sid = p.client.open(b"o", p.now)
        p.pump()
    hog, other, third = pairs
    while server.has_capacity(hog.client.session):  # a client that never acks
        server.emit(hog.client.session, hog.sid, b"h" * 100, 0.0)
    assert server.budget.bytes == 1000
    for p in (other, third):  # the others still get one message in flight each, then wait
        sent = 0
        while server.has_capacity(p.client.session) and sent < 100:
            server.emit(p.client.session, p.sid, b"o" * 100, 0.0)
            sent += 1
        assert sent == 1
    assert server.budget.bytes == 1200 and server.budget.sessions == 3
    other.pump()
    other.client.on_timer(1.0)  # other acks: it may produce again
    other.pump()
    assert server.has_capacity(other.client.session)
    hog.drop()
    server.on_timer(10.0)  # only the hog is disconnected; it expires and frees its share
    assert server.budget.bytes == 100 and server.budget.sessions == 1


@pytest.mark.parametrize("kwargs, words", [
    ({"fragment_size": 2 << 20}, "max_frame_size"),
    ({"dead_after": 1.0, "heartbeat_interval": 2.0}, "heartbeat_interval"),
    ({"replay_max_count": 0}, "replay_max_count"),
    ({"backoff_jitter": 2}, "backoff_jitter"),
])
def test_config_rejects_settings_that_cannot_work(kwargs, words):
    with pytest.raises(ValueError, match=words):
        Config(**kwargs)
