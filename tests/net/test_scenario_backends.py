"""One seeded fault scenario, run unchanged on every backend: sim, tcp proxy, netns."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from statemodel.net import faults as F
from statemodel.net.netns import NetnsNetwork, unavailable_reason
from statemodel.net.scenario import run_scenario
from statemodel.net.sim import SimNetwork
from statemodel.net.tcp import FaultProxy

# faults every backend can express (netns has no netem: no latency/slicing/frames)
SCENARIO = F.Scenario((
    F.Step(0.0, F.Partition("c2s")),
    F.Step(0.3, F.Heal()),
    F.Step(0.3, F.PacketLoss(every=5)),
    F.Step(0.6, F.Heal()),
    F.Step(0.6, F.Abort(), link=7),  # no such link: recorded as skipped, not fatal
))


async def echo(stream):
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def drive(net) -> None:
    """Echo 30 messages while the scenario runs; every byte must come back in order."""
    client = await net.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(run_scenario, net, SCENARIO)
        got = bytearray()
        expected = b"".join(f"[{i}]".encode() for i in range(30))

        async def reader():
            with trio.fail_after(30):
                while len(got) < len(expected):
                    data = await client.receive_some(65536)
                    assert data
                    got.extend(data)

        nursery.start_soon(reader)
        for i in range(30):
            await client.send_all(f"[{i}]".encode())
            await trio.sleep(0.03)
    assert bytes(got) == expected
    assert any(e.kind == "skipped" for e in net.trace)
    assert [e.detail for e in net.trace if e.kind == "fault"][:2] == ["Partition(direction='c2s')", "Heal()"]


def test_scenario_on_sim():
    async def main():
        net = SimNetwork(3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, [net.listener()])
            await drive(net)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_scenario_on_tcp_proxy():
    async def main():
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            async with FaultProxy(upstream=("127.0.0.1", port), seed=3).running() as proxy:
                await drive(proxy)
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.mark.netns
@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_scenario_on_netns():
    async def main(net):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, [net.listener()])
            await drive(net)
            nursery.cancel_scope.cancel()

    with NetnsNetwork(3) as net:
        trio.run(main, net)
