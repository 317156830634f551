"""Sessions that stop reading slow only themselves (issue 12, observation 3).

Three sessions that opened 2 MiB streams and never acked filled the server-wide replay
budget and held all three overdraft slots: honest requests timed out for the whole attack,
and after the attackers were cut (their sessions waiting session_ttl for a resume). Now a
session that acks nothing for `stall_after` is parked (PROTOCOL.md §6) and no longer holds
an overdraft slot. Sim network, virtual time: the verdict is a latency bound in virtual
seconds, not a wall-clock measurement."""

from __future__ import annotations

import json
import random

import pytest
import trio
import trio.testing

from statemodel.net.sim import SimNetwork
from statemodel.stream import protocol as P
from statemodel.stream.client import Client
from statemodel.stream.config import Config, MiB
from statemodel.stream.frames import Frame, decode, encode
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app, text

from raw_websocket import OP_BINARY, RawClient, ws_frame


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def emit(*chunks) -> dict:
    return {"op": "emit", "chunks": list(chunks)}


async def never_acks(net: SimNetwork, ready: trio.Event, cut_after: float | None = None) -> None:
    """Open a 2 MiB stream, read everything (so the transport flows), answer with pings
    that ack nothing, forever (or until `cut_after`: then drop the connection, no close)."""
    stream = await net.connect()
    peer = RawClient(stream)
    await peer.handshake()
    await peer.send_raw(ws_frame(OP_BINARY, encode(Frame("hello", {"v": 1}))))
    command = emit({"kind": "bytes", "seed": 1, "size": 2 * MiB})
    await peer.send_raw(ws_frame(OP_BINARY, encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, json.dumps(command).encode()))))
    ready.set()
    with trio.move_on_after(cut_after if cut_after is not None else float("inf")):
        async with trio.open_nursery() as n:
            n.start_soon(peer.read_until_close)
            while True:
                await trio.sleep(2)
                await peer.send_raw(ws_frame(OP_BINARY, encode(Frame("ping", {"a": {}}))))
    await trio.aclose_forcefully(stream)


async def honest_latencies(net: SimNetwork, requests: int) -> list[float]:
    out = []
    async with Client(net.connect, Config(), rng=random.Random(9)).run() as client:
        for i in range(requests):
            t0 = trio.current_time()
            with trio.fail_after(60):
                got = [c async for c in client.request(json.dumps(
                    {"op": "batch", "commands": [emit({"kind": "text", "seed": i, "chars": 64 * 1024}), {"op": "end"}]}))]
            assert got == [text(i, 64 * 1024)]
            out.append(trio.current_time() - t0)
            await trio.sleep(0.5)
    return out


async def scenario(attackers: int, cut_after: float | None = None, config: Config = Config()):
    net = SimNetwork(seed=5)
    server = Server(script_app, config, rng=random.Random(1))
    async with server, trio.open_nursery() as n:
        await n.start(server.serve, net.listener())
        for _ in range(attackers):
            ready = trio.Event()
            n.start_soon(never_acks, net, ready, cut_after)
            await ready.wait()
        await trio.sleep(0.1)  # the attackers' streams are under way
        latencies = await honest_latencies(net, 20)
        stats = server.stats()
        n.cancel_scope.cancel()
    return latencies, stats


@pytest.mark.parametrize("cut_after", [None, 3.0], ids=["connected", "cut after 3 s"])
def test_three_sessions_that_never_ack_delay_an_honest_session_at_most_stall_after(cut_after):
    cfg = Config()
    alone, _ = run(scenario, 0)
    attacked, stats = run(scenario, 3, cut_after)
    assert max(alone) < 0.5  # the honest baseline, virtual time
    # the first request may wait until the attackers are parked...
    assert max(attacked) <= max(alone) + cfg.honest_delay_bound(), attacked
    assert attacked[1:] == alone[1:], attacked  # ...then exactly as fast as alone
    assert stats["parked_sessions"] == 3 and stats["parked_bytes"] >= 3 * 2 * MiB


def test_parked_sessions_keep_memory_within_the_documented_bound():
    """Parking takes what stalled sessions hold out of the shared pool, never out of the
    memory bound: parked sessions get nothing more until they are acked, so the total
    stays within `Config.server_buffer_bound` while the others keep the pool busy."""
    cfg = Config(server_max_buffered_bytes=1 * MiB, stall_after=1.0, fair_stalled_sessions=4)
    proto = P.ServerProtocol(cfg, random.Random(0))
    conns = []
    for _ in range(12):
        conn = proto.connect(0.0)
        conn.receive(encode(Frame("hello", {"v": 1})), 0.0)
        conn.receive(encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, b"{}")), 0.0)
        conns.append(conn)
    stalled, readers = conns[:4], conns[4:]
    message = bytes(MiB // 2)
    now, peak = 0.0, 0
    for _ in range(80):
        now += 0.25
        proto.on_timer(now)
        for conn in conns:
            if proto.has_capacity(conn.session.id):
                proto.emit(conn.session.id, 1, message, now)
            conn.take()
        peak = max(peak, proto.budget.bytes)
        for conn in readers:  # they read and ack everything they got
            st = conn.session.ep.out.get(1)
            if st is not None:
                conn.receive(encode(Frame("ack", {"a": {"1": st.next_seq - 1}})), now)
                conn.take()
    assert peak <= cfg.server_buffer_bound(len(message)), (peak, cfg.server_buffer_bound(len(message)))
    assert {c.session.ep for c in stalled} == proto.budget.parked
    # acking everything unparks: a parked session leaves the parking with an empty buffer
    first = stalled[0].session
    top = first.ep.out[1].next_seq - 1
    stalled[0].receive(encode(Frame("ack", {"a": {"1": top}})), now)
    assert first.ep not in proto.budget.parked and first.ep.buffered_items == 0
    assert proto.has_capacity(first.id)  # and may produce again
