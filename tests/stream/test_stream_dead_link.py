"""A connection the core has declared dead sends nothing more (sim network, virtual time)."""

from __future__ import annotations

import json
import random

import trio
import trio.testing

from statemodel.net import faults as F
from statemodel.net.sim import SimNetwork
from statemodel.stream.client import Client, Connected
from statemodel.stream.config import Config
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app

CFG = Config(heartbeat_interval=1.0, dead_after=3.0, send_timeout=3.0, close_timeout=1.0,
             fragment_size=16 * 1024, replay_max_bytes=4 << 20)


def test_a_peer_declared_dead_is_not_fed_the_rest_of_a_slow_backlog():
    """Found by the fuzzer (20 KB/s s2c cap, 2 MB response, c2s half-open): the server decided
    at 3.1 s that the client was dead (4008) but its writer went on sending the queued
    fragments one by one, each under send_timeout, and closed the connection only at 28 s.
    The session counted as disconnected meanwhile, so replay data aged out while the client
    was still reading and the resume was a reset. The writer must stop at the close decision."""

    async def main():
        net = SimNetwork(0)
        async with Server(script_app, CFG, rng=random.Random(1)) as server, trio.open_nursery() as n:
            await n.start(server.serve, net.listener())
            links = []

            async def dial():
                stream = await net.connect()
                links.append(stream.link)
                return stream

            async with Client(dial, CFG, rng=random.Random(2)).run() as client:
                with trio.fail_after(5):
                    assert isinstance(await client.status.receive(), Connected)
                net.apply(F.Bandwidth("s2c", 20_000))
                await client.open(json.dumps({"op": "emit", "chunks": [{"kind": "bytes", "seed": 1, "size": 2 << 20}]}))
                await trio.sleep(0.1)  # the server has queued as much as the link's buffer takes
                heard_last = trio.current_time()
                net.apply(F.HalfOpen("c2s"), links[0].id)
                await trio.sleep(CFG.dead_after + CFG.close_timeout + 2.0)
                server_closes = [e.t for e in net.trace.of_kind("close")
                                 if e.link == links[0].id and e.direction == "s2c"]
                assert server_closes, "the server still holds the dead connection open"
                closed = server_closes[0]
                # dead_after after the last frame it heard, then the fragment being sent (16 KiB
                # at 20 KB/s: 0.8 s) and at most close_timeout for the closing handshake.
                assert closed <= heard_last + CFG.dead_after + 0.9 + CFG.close_timeout
            n.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
