"""Each reference-implementation mutant changes observable behaviour in a small scenario
(correct vs mutant core, same scenario); the state machine must then catch it on its own."""

from __future__ import annotations

import random

import pytest
from test_stream_core import Pair

from statemodel.stream import protocol as P
from statemodel.stream.config import Config
from statemodel.stream.frames import Frame, encode
from statemodel.stream.mutants import MUTANTS


def observe(p: Pair, sid: int | None = None) -> dict:
    return {
        "chunks": p.received(sid) if sid else None,
        "client_events": [e for e in p.cevents if not isinstance(e, P.Chunk)],
        "server_events": list(p.sevents),
        "closes": (p.clink.close, p.conn.close),
    }


def drop_mid_response(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    s = p.client.session
    for chunk in (b"a", b"b", b"c"):
        p.server.emit(s, sid, chunk, p.now)
    p.client.receive(p.conn.take()[0], p.now)  # only "a" arrives
    p.cevents += p.client.drain_events()
    p.drop()
    p.connect()
    p.server.finish(s, sid, p.now)
    p.pump()
    return observe(p, sid)


def end_lost_in_drop(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.server.finish(p.client.session, sid, p.now)
    p.conn.take()  # the end frame is lost with the connection
    p.drop()
    p.connect()
    return observe(p, sid)


def c2s_ack_lost(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.client.send(sid, "m0", p.now)
    for data in p.clink.take():
        p.conn.receive(data, p.now)
    p.sevents += p.server.drain_events()
    p.drop()  # the server got m0 but its ack never left
    p.connect()
    return observe(p, sid)


def evicted_while_away(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.server.emit(p.client.session, sid, b"old", p.now)
    p.now = cfg.replay_max_age + 1
    p.server.on_timer(p.now)
    p.connect()
    p.server.emit(p.client.session, sid, b"new", p.now)
    p.pump()
    return observe(p, sid)


def two_streams_acked(cfg: Config) -> dict:
    p = Pair(Config(ack_interval=0, mutants=cfg.mutants))
    p.connect()
    a = p.client.open(b"a", p.now)
    b = p.client.open(b"b", p.now)
    p.pump()
    s = p.client.session
    for _ in range(3):
        p.server.emit(s, a, b"x", p.now)
    p.server.emit(s, b, b"y", p.now)
    p.pump()
    p.client.on_timer(p.now)
    p.pump()
    return observe(p, a)


def context_across_resume(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    p.client.set_context("k", 1, p.now)
    p.pump()
    p.drop()
    p.connect()
    return {"server_ctx": p.server.context(p.client.session)}


def cancel_while_away(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.client.cancel(sid, p.now)
    p.connect()
    return observe(p, sid)


def astral_text(cfg: Config) -> dict:
    p = Pair(Config(fragment_size=7, mutants=cfg.mutants))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, "😀é" * 20, p.now)
    p.pump()
    return observe(p, sid)


def drop_mid_message(cfg: Config) -> dict:
    p = Pair(Config(fragment_size=4, mutants=cfg.mutants))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, b"0123456789AB", p.now)  # 3 fragments
    frames = p.conn.take()
    p.client.receive(frames[0], p.now)
    p.client.receive(encode(Frame("ping", {"a": {}})), p.now)
    p.client.on_timer(p.now + 1)  # ack the first fragment
    for data in p.clink.take():
        p.conn.receive(data, p.now)
    p.drop()
    p.connect()
    return observe(p, sid)


def stale_connection_speaks(cfg: Config) -> dict:
    p = Pair(cfg)
    _, old_conn = p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.client.disconnected(p.now)  # the client moved on; the server still has the old link
    p.connect()
    old_conn.receive(encode(Frame("ping", {"a": {}})), p.now)  # a late frame on the old link
    p.server.emit(p.client.session, sid, b"fresh", p.now)
    p.pump()
    return observe(p, sid)


def producer_keeps_emitting(cfg: Config) -> dict:
    p = Pair(Config(replay_max_count=5, mutants=cfg.mutants))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    n = 0
    while p.server.has_capacity(p.client.session) and n < 50:
        p.server.emit(p.client.session, sid, b"z", p.now)
        n += 1
    return {"emitted": n}


def forged_resume(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    bad = p.server.connect(0.0)
    bad.receive(encode(Frame("hello", {"v": 1, "resume": {
        "session": p.client.session, "token": "guess", "epoch": p.server.epoch}})), 0.0)
    return {"close": bad.close}


def older_copy_arrives(cfg: Config) -> dict:
    """A copy of item 2 arrives after item 3 (a relay replaying its buffer)."""
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    s = p.client.session
    for chunk in (b"a", b"b", b"c"):
        p.server.emit(s, sid, chunk, p.now)
    p.pump()
    p.client.receive(encode(Frame("data", {"s": sid, "q": 2, "fin": True, "k": "b"}, b"copy")), p.now)
    p.cevents += p.client.drain_events()
    return observe(p, sid)


def context_set_offline(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    p.drop()
    p.client.set_context("c1", 5, p.now)
    p.connect()
    return {"server_ctx": dict(p.server.context(p.client.session))}


def resume_before_anything_arrived(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    first = p.client.session
    p.drop()
    p.connect()
    return {"same_session": p.client.session == first, "events": p.cevents}


def older_connection_closes_late(cfg: Config) -> dict:
    p = Pair(cfg)
    _, old_conn = p.connect()
    p.client.disconnected(p.now)  # the client moved on; the server still has the old link
    p.connect()  # resumes on a new connection: the old one is fenced
    p.server.disconnected(old_conn, p.now)  # ...and only now does the old one close
    first = p.client.session
    p.drop()
    p.connect()
    return {"same_session": p.client.session == first}


def restart_then_resume(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    p.drop()
    p.server = P.ServerProtocol(cfg, random.Random(1))  # a new process: new epoch, no sessions
    p.connect()
    return {"welcome": [e for e in p.cevents if isinstance(e, P.Welcome)][-1]}


def lost_stream_reported(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    p.server.emit(p.client.session, sid, b"old", p.now)
    p.now = cfg.replay_max_age + 1
    p.server.on_timer(p.now)
    p.connect()
    return {"client_events": [e for e in p.cevents if isinstance(e, P.Reset)], "open": sorted(p.client.streams)}


def exact_multiple_of_fragment_size(cfg: Config) -> dict:
    p = Pair(Config(fragment_size=4, mutants=cfg.mutants))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.server.emit(p.client.session, sid, b"01234567", p.now)  # exactly 2 fragments
    p.server.emit(p.client.session, sid, b"89", p.now)
    p.pump()
    return observe(p, sid)


def long_connected_then_drop(cfg: Config) -> dict:
    p = Pair(cfg)
    p.connect()
    first = p.client.session
    p.now = cfg.session_ttl + 10  # connected all along
    p.drop()
    p.server.on_timer(p.now)
    p.connect()
    return {"same_session": p.client.session == first}


def full_buffer_then_drop(cfg: Config) -> dict:
    p = Pair(Config(replay_max_count=3, mutants=cfg.mutants))
    p.connect()
    sid = p.client.open(b"o", p.now)
    p.pump()
    p.drop()
    for chunk in (b"a", b"b", b"c", b"d"):
        p.server.emit(p.client.session, sid, chunk, p.now)  # a full buffer must make the producer wait
    p.connect()
    return observe(p, sid)


SCENARIOS = {
    "dedupe_last_only": older_copy_arrives,
    "client_context_offline_dropped": context_set_offline,
    "empty_resume_is_new": resume_before_anything_arrived,
    "stale_connection_ends_session": older_connection_closes_late,
    "recovered_after_restart": restart_then_resume,
    "lost_ignored_by_client": lost_stream_reported,
    "fin_by_short_fragment": exact_multiple_of_fragment_size,
    "ttl_from_last_resume": long_connected_then_drop,
    "trim_when_full": full_buffer_then_drop,
    "replay_skips_first": drop_mid_response,
    "no_dedupe": c2s_ack_lost,
    "inflight_per_connection": drop_mid_response,
    "evict_without_reset": evicted_while_away,
    "seq_restart_per_connection": drop_mid_response,
    "recovered_despite_loss": evicted_while_away,
    "ack_wrong_stream": two_streams_acked,
    "context_not_restored": context_across_resume,
    "cancel_lost_on_resume": cancel_while_away,
    "split_inside_char": astral_text,
    "partial_per_connection": drop_mid_message,
    "no_fencing": stale_connection_speaks,
    "end_not_replayed": end_lost_in_drop,
    "no_backpressure": producer_keeps_emitting,
    "token_not_checked": forged_resume,
}


def test_every_mutant_has_a_scenario_and_there_are_at_least_12():
    assert set(SCENARIOS) == set(MUTANTS) and len(MUTANTS) >= 12


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_changes_behaviour(name):
    scenario = SCENARIOS[name]
    correct = scenario(Config())
    mutated = scenario(Config(mutants=frozenset({name})))
    assert correct != mutated
