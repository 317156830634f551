"""Regressions found by the hostile machine and the soak (each test names the bug it pins).

First: a client message that arrives before its app task has started must not be lost.

Found by `statemodel soak` on real TCP: `open` and the first `data` of a stream arrive in
one read, the server dispatched both before the app task ran, and the message was dropped
(the app was only registered once its task started): an exactly-once violation."""

from __future__ import annotations

import json
import random

import pytest
import trio
import trio.testing

from statemodel.hostile.peer import open_peer, raw_frame
from statemodel.stream.config import Config
from statemodel.stream.frames import decode
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app


async def _echo_right_after_open() -> list[bytes]:
    server = Server(script_app, Config(), rng=random.Random(0))
    async with server, trio.open_nursery() as nursery:
        async def dial():
            client, srv = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, srv)
            return client

        async with open_peer(dial, timeout=5.0) as peer:
            await peer.hello()
            # One transport write carrying three WebSocket messages: one reader wakeup.
            messages = [raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": []}).encode()),
                        raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "t"}, b'{"op":"echo","data":"first"}'),
                        raw_frame({"t": "data", "s": 1, "q": 3, "fin": True, "k": "t"}, b'{"op":"end"}')]
            for m in messages:
                await peer.send(m)
            await peer.receive_until(lambda f: f.t in ("end", "error"))
            got = [bytes(f.payload) for f in peer.frames if f.t == "data"]
            await peer.close()
        nursery.cancel_scope.cancel()
    return got


async def _dispatched_before_app_starts() -> list[bytes]:
    """Deterministic version: feed the core synchronously, so no task runs in between."""
    server = Server(script_app, Config(), rng=random.Random(0))
    async with server:
        conn = server.proto.connect(trio.current_time())
        def on_message(msg, now):  # what the connection handler does per message
            conn.receive(msg, now)
            server._dispatch()
        now = trio.current_time()
        on_message(raw_frame({"t": "hello", "v": 1}), now)
        on_message(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b'{"op":"emit","chunks":[]}'), now)
        on_message(raw_frame({"t": "data", "s": 1, "q": 2, "fin": True, "k": "t"}, b'{"op":"echo","data":"first"}'), now)
        on_message(raw_frame({"t": "data", "s": 1, "q": 3, "fin": True, "k": "t"}, b'{"op":"end"}'), now)
        await trio.sleep(0.01)
        frames = [decode(bytes(m)) for m in conn.take()]
        server._nursery.cancel_scope.cancel()
    return [bytes(f.payload) for f in frames if f.t == "data"] + [f.t for f in frames if f.t in ("end", "error")]


def test_message_dispatched_before_the_app_task_runs_is_not_lost():
    got = trio.run(_dispatched_before_app_starts, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got == [b"first", "end"]


def test_message_sent_right_after_open_reaches_the_app_exactly_once():
    got = trio.run(_echo_right_after_open, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got == [b"first"]


def test_replay_age_timer_evicts_at_its_own_deadline():
    """Regression (HostileMachine busy loop): the age deadline is ``t + replay_max_age``; the
    eviction test used ``t <= now - replay_max_age``, which float rounding can make false at
    that very deadline, so the session timer fired again and again at the same instant."""
    from statemodel.stream.protocol import ServerProtocol

    proto = ServerProtocol(Config(replay_max_age=20.0), rng=random.Random(0))
    t_item = 53.18567871523434
    now = t_item + 20.0
    assert not (t_item <= now - 20.0)  # the rounding trap this test is about
    conn = proto.connect(0.0)
    conn.receive(raw_frame({"t": "hello", "v": 1}), 0.0)
    conn.receive(raw_frame({"t": "open", "s": 1, "q": 1, "k": "t"}, b"{}"), 0.0)
    session = conn.session
    assert proto.emit(session.id, 1, b"x" * 10, t_item)
    proto.disconnected(conn, 0.05)
    deadline = proto.next_deadline()
    assert deadline == now
    proto.on_timer(deadline)
    assert proto.next_deadline() > deadline, "the timer must make progress at its deadline"


async def _many_finished_streams(n: int) -> tuple[int, int]:
    from statemodel.stream.client import Client

    server = Server(script_app, Config(), rng=random.Random(0))
    async with server, trio.open_nursery() as nursery:
        async def dial():
            client_end, server_end = trio.testing.memory_stream_pair()
            nursery.start_soon(server.handle_stream, server_end)
            return client_end

        client = Client(dial, Config(), random.Random(1))
        async with client.run():
            for i in range(n):
                stream = await client.open(json.dumps({"op": "emit", "chunks": [{"kind": "text", "seed": i, "chars": 3}]}))
                await stream.send(b'{"op":"end"}')
                async for _ in stream:
                    pass
            await trio.sleep(1.0)  # every ack exchanged
            (session,) = server.proto.sessions.values()
            sizes = len(session.ep.out) + len(session.ep.recv), len(client.proto.ep.out) + len(client.proto.ep.recv)
        nursery.cancel_scope.cancel()
    return sizes


def test_finished_streams_do_not_grow_session_state():
    """The 30-minute soak's RSS grew ~6 MiB/min with 20 long-lived sessions: each finished
    stream leaves its sequence counters and an empty replay queue behind, on both ends."""
    server_entries, client_entries = trio.run(_many_finished_streams, 300, clock=trio.testing.MockClock(autojump_threshold=0))
    assert server_entries <= 20 and client_entries <= 20, (server_entries, client_entries)
