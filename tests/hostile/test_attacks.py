"""Every attack in the vocabulary against the reference server on the sim network (virtual
time): each bad input gets its documented close code (PROTOCOL.md §10), no breach, and the
server holds no connection afterwards."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from statemodel.hostile.attacks import ATTACKS, AttackContext, Limits, run_attack
from statemodel.net.sim import SimNetwork
from statemodel.stream.config import Config
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app

CONFIG = Config(handshake_timeout=2.0, heartbeat_interval=1.0, dead_after=3.0, send_timeout=3.0,
                close_timeout=1.0, fragment_size=16 << 10, max_frame_size=64 << 10, max_sessions=8,
                max_streams_per_session=4, replay_max_bytes=1 << 20, server_max_buffered_bytes=2 << 20)


async def attack_once(name: str):
    net = SimNetwork(seed=7)
    server = Server(script_app, CONFIG, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve, net.listener())
        ctx = AttackContext(net.connect, Limits.of(CONFIG), timeout=5.0, rng=random.Random(3))
        verdict = await run_attack(name, ctx)
        # A garbage handshake leaves trio-websocket 0.12.2's wrap_server_stream waiting on a
        # request that never comes: only our handshake_timeout frees that connection.
        await trio.sleep(CONFIG.handshake_timeout + 1)
        stats = server.stats()
        nursery.cancel_scope.cancel()
    return verdict, stats


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_gets_documented_answer(name):
    verdict, stats = trio.run(attack_once, name, clock=trio.testing.MockClock(autojump_threshold=0))
    assert verdict.ok, str(verdict)
    assert stats["connections"] == 0, stats
    if name != "never_acks":  # 4008 is retryable: that session rightly waits session_ttl for a resume
        assert stats["sessions"] == 0, f"{name} left a session behind: {stats}"
    assert stats["buffered_bytes"] <= CONFIG.server_max_buffered_bytes + (256 << 10), stats
