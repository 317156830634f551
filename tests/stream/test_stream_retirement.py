"""Stream retirement (PROTOCOL.md §8a): finished streams are forgotten on both ends, and any
late reference to a forgotten stream is a harmless, acked duplicate (issue 7 soak leak)."""

from __future__ import annotations

from test_stream_core import Pair, session_of

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.frames import Frame, encode


def settle(p: Pair, steps: int = 5) -> None:
    """Let ack timers fire and the perfect link carry everything."""
    for _ in range(steps):
        p.now += p.config.ack_interval
        p.client.on_timer(p.now)
        p.conn.on_timer(p.now)
        p.pump()


def state_sizes(p: Pair) -> tuple[int, int]:
    s, c = session_of(p).ep, p.client.ep
    return (len(s.out) + len(s.recv) + len(s.acked_sent) + len(s.partial) + len(s.finished),
            len(c.out) + len(c.recv) + len(c.acked_sent) + len(c.partial) + len(c.finished))


def run_stream(p: Pair) -> int:
    sid = p.client.open(b"go", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, "chunk", p.now)
    p.server.finish(p.client.session, sid, p.now)
    p.pump()
    return sid


def test_retired_ids_stay_one_range_when_streams_finish_in_order():
    r = P.RetiredIds()
    for sid in range(1, 1001):
        r.add(sid)
    assert r.ranges() == [(1, 1001)]
    assert 1 in r and 1000 in r and 0 not in r and 1001 not in r


def test_retired_ids_out_of_order_cost_one_range_per_live_gap():
    r = P.RetiredIds()
    for sid in [5, 3, 4, 1, 7, 9, 8]:
        r.add(sid)
    assert r.ranges() == [(1, 2), (3, 6), (7, 10)]
    r.add(2)
    r.add(6)
    r.add(6)
    assert r.ranges() == [(1, 10)]


def test_many_finished_streams_leave_no_per_stream_state_on_either_end():
    p = Pair()
    p.connect()
    for _ in range(50):
        run_stream(p)
        settle(p)
    assert state_sizes(p) == (0, 0)
    assert session_of(p).ep.retired.ranges() == [(1, 51)]
    assert p.client.ep.retired.ranges() == [(1, 51)]
    assert p.clink.close is None and p.conn.close is None
    # the resume maps carry only stream 0's ctx counters (none here), not 50 dead streams
    p.drop()
    p.connect()
    assert p.cevents[-1] == P.Welcome("recovered", None, {})
    assert p.client.ep.recv == {} and session_of(p).ep.recv == {}


def test_open_stream_is_kept_while_later_streams_retire():
    p = Pair()
    p.connect()
    long_lived = p.client.open(b"stay", p.now)
    p.pump()
    for _ in range(10):
        run_stream(p)
        settle(p)
    assert p.client.ep.retired.ranges() == [(2, 12)]
    assert long_lived not in session_of(p).ep.retired
    p.server.emit(p.client.session, long_lived, "still here", p.now)
    p.pump()
    assert p.received(long_lived) == ["still here"]


def test_item_replayed_onto_a_stream_the_server_retired_is_acked_not_resurrected():
    """The client's data is in flight when the server's `end` arrives; its ack of `end` reaches
    the server (in hello.resume.recv) before the replayed data does."""
    p = Pair()
    p.connect()
    sid = p.client.open(b"go", p.now)
    p.pump()
    settle(p)  # the open is acked
    p.client.send(sid, "late", p.now)  # queued on the client link, never delivered
    p.server.finish(p.client.session, sid, p.now)
    for data in p.conn.take():
        p.client.receive(data, p.now)
    p.cevents += p.client.drain_events()
    assert p.cevents[-1] == P.Ended(sid)
    p.drop()  # the data frame is lost with the connection
    p.connect()
    settle(p)
    assert sid in session_of(p).ep.retired and sid in p.client.ep.retired
    assert not [e for e in p.sevents if isinstance(e, P.Message)]  # the app had finished
    assert state_sizes(p) == (0, 0)
    assert p.client.ep.buffered_items == 0 and p.clink.close is None and p.conn.close is None


def test_end_replayed_onto_a_stream_the_client_retired_is_acked_not_delivered_twice():
    """The client's ack of `end` is lost with the connection; it forgets the stream anyway and
    the server's replay of the stream's items must be a no-op that frees the server buffer."""
    p = Pair()
    p.connect()
    sid = p.client.open(b"go", p.now)
    p.pump()
    settle(p)  # the open is acked
    p.server.emit(p.client.session, sid, "chunk", p.now)
    p.server.finish(p.client.session, sid, p.now)
    p.pump()
    p.now += p.config.ack_interval
    p.client.on_timer(p.now)  # the ack is queued ...
    assert sid in p.client.ep.retired
    p.drop()  # ... and lost
    assert session_of(p).ep.buffered_items == 2
    p.connect()
    settle(p)
    assert [e for e in p.cevents if e == P.Ended(sid)] == [P.Ended(sid)]
    assert p.received(sid) == ["chunk"]
    assert session_of(p).ep.buffered_items == 0
    assert state_sizes(p) == (0, 0)


def test_references_to_retired_streams_from_the_peer_are_no_ops():
    p = Pair()
    p.connect()
    sid = run_stream(p)
    settle(p)
    ep = session_of(p).ep
    assert sid in ep.retired
    p.sevents.clear()
    # a repeated open, data, cancel and an ack for the forgotten stream
    for f in (Frame("open", {"s": sid, "q": 1, "k": "b"}, b"go"),
              Frame("data", {"s": sid, "q": 2, "fin": True, "k": "t"}, b"x"),
              Frame("cancel", {"s": sid, "q": 3}),
              Frame("ack", {"a": {sid: 3}})):
        p.conn.receive(encode(f), p.now)
    assert p.conn.close is None
    assert p.server.drain_events() == []
    assert sid not in ep.recv and sid not in ep.out
    settle(p)
    assert p.clink.close is None and p.conn.close is None
    assert state_sizes(p) == (0, 0)


def test_stream_lost_to_eviction_is_retired_once_the_client_read_the_welcome():
    p = Pair(Config(replay_max_age=5, session_ttl=100))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    settle(p)
    p.drop()
    p.server.emit(p.client.session, sid, b"data", p.now)
    p.now += 6
    p.server.on_timer(p.now)
    # the welcome reporting the loss is itself lost: the next resume reports it again
    link, conn = p.client.connect(p.now), p.server.connect(p.now)
    for data in link.take():
        conn.receive(data, p.now)
    assert conn.take()  # the welcome, never delivered
    p.server.disconnected(conn, p.now)
    p.client.disconnected(p.now)
    p.connect()
    assert p.cevents[-1] == P.Welcome("reset", "replay_evicted", {sid: "replay_evicted"})
    assert sid in p.client.ep.retired
    assert sid not in session_of(p).ep.retired  # the client has not spoken since
    settle(p, steps=int(p.config.heartbeat_interval / p.config.ack_interval) + 2)  # its ping
    assert sid in session_of(p).ep.retired
    assert state_sizes(p) == (0, 0)


def test_a_stream_the_client_retired_is_not_reported_lost_after_its_ack_was_lost():
    """Found by the 20,000-example run (after partitions in both directions). The client
    read a stream to its end and retired it (it had *sent* an ack covering everything); the
    connection dropped with that ack in flight. Disconnected for replay_max_age, the server
    evicted the unacked items, and since a retired stream appears in no ``recv`` map, the
    resume reported it lost -- reset(replay_evicted) for a stream the client had read whole.
    Finished streams are never evicted by age: a resume replays them and the client acks
    them as duplicates (PROTOCOL.md §6, §8a)."""
    p = Pair()
    p.connect()
    sid = p.client.open(b"go", p.now)
    p.pump()
    settle(p)  # the server acks the client's open
    p.server.emit(p.client.session, sid, "chunk", p.now)
    p.server.finish(p.client.session, sid, p.now)
    for data in p.conn.take():  # the server's items reach the client...
        p.client.receive(data, p.now)
    p.now += p.config.ack_interval
    p.client.on_timer(p.now)
    p.cevents += p.client.drain_events()
    assert sid in p.client.ep.retired  # ...which acked and forgot the stream
    p.drop()  # ...but its ack was lost with the connection
    p.now += p.config.replay_max_age + 1
    p.server.on_timer(p.now)
    # The eviction deadline skips what eviction skips (else the timer fires forever).
    assert p.server.next_deadline() > p.now
    p.connect()
    assert p.cevents[-1] == P.Welcome("recovered", None, {})
    assert p.received(sid) == ["chunk"]
    settle(p)
    assert state_sizes(p) == (0, 0)


def test_stream_ids_are_consecutive_so_retired_ids_stay_one_range():
    """Ids with gaps (1, 3, 5, ...) each left a retired range for the life of the session:
    a client opening streams forever grew the server's memory without a bound."""
    import random

    from statemodel.stream import protocol as P
    from statemodel.stream.config import Config
    from statemodel.stream.errors import CloseCode
    from statemodel.stream.frames import Frame, encode

    proto = P.ServerProtocol(Config(), random.Random(0))
    conn = proto.connect(0.0)
    conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
    for sid in range(1, 6):
        conn.receive(encode(Frame("open", {"s": sid, "q": 1, "k": "t"}, b"{}")), 0.0)
    assert conn.close is None
    conn.receive(encode(Frame("open", {"s": 7, "q": 1, "k": "t"}, b"{}")), 0.0)
    assert conn.close is not None and conn.close[0] == CloseCode.PROTOCOL_VIOLATION
