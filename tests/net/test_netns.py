"""The netns backend: real iptables faults on a private veth into a namespace we create.

Root + Linux only (CI runs as root); skipped with the reason elsewhere. Real kernel
time, so waits are bounded and nothing asserts on durations.
"""

from __future__ import annotations

import subprocess

import pytest
import trio

from statemodel.net import faults as F
from statemodel.net.netns import NetnsNetwork, UnsupportedFault, unavailable_reason

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
]


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout


async def echo(stream):
    try:
        while data := await stream.receive_some(65536):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def read_exactly(stream, n: int, timeout: float = 20) -> bytes:
    buf = bytearray()
    with trio.fail_after(timeout):
        while len(buf) < n:
            data = await stream.receive_some(65536)
            assert data, f"EOF after {len(buf)} of {n} bytes"
            buf += data
    return bytes(buf)


def with_echo_server(body):
    """Run ``body(net)`` with an echo server listening inside a fresh namespace."""

    async def main(net):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, echo, [net.listener()])
            await body(net)
            nursery.cancel_scope.cancel()

    with NetnsNetwork() as net:
        trio.run(main, net)
    return net


def test_namespace_and_veth_are_removed_even_when_the_test_body_fails():
    with pytest.raises(ZeroDivisionError):
        with NetnsNetwork() as net:
            assert net.name in namespaces()
            assert net.host_if in links()
            1 / 0
    assert net.name not in namespaces()
    assert net.host_if not in links()


def test_bytes_cross_the_veth_into_the_namespace():
    async def body(net):
        client = await net.connect()
        payload = bytes(range(256)) * 1000
        async with trio.open_nursery() as n:
            n.start_soon(client.send_all, payload)
            assert await read_exactly(client, len(payload)) == payload
        assert net.links == [0]

    net = with_echo_server(body)
    assert net.ns_addr.startswith("10.213.")


def test_partition_stalls_then_heal_lets_tcp_retransmit_everything():
    async def body(net):
        client = await net.connect()
        await client.send_all(b"warm")
        await read_exactly(client, 4)
        net.apply(F.Partition())
        await client.send_all(b"across the split")
        with trio.move_on_after(0.5) as scope:
            await client.receive_some(1)
        assert scope.cancelled_caught, "bytes crossed an iptables partition"
        counters = net.rule_counters()
        assert sum(counters.values()) > 0, counters
        net.heal()
        assert await read_exactly(client, 16) == b"across the split"

    with_echo_server(body)


def test_random_packet_loss_drops_real_packets_but_tcp_delivers_all_bytes():
    async def body(net):
        client = await net.connect()
        net.apply(F.PacketLoss(probability=0.2))
        payload = bytes(range(256)) * 400
        async with trio.open_nursery() as n:
            n.start_soon(client.send_all, payload)
            assert await read_exactly(client, len(payload), timeout=60) == payload
        dropped = sum(v for k, v in net.rule_counters().items() if "statistic" in k)
        assert dropped > 0

    with_echo_server(body)


def test_abort_is_a_kernel_rst():
    async def body(net):
        client = await net.connect()
        await client.send_all(b"x")
        await read_exactly(client, 1)
        net.apply(F.Abort(), link=0)
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
            while True:
                await client.send_all(b"y")
                await client.receive_some(10)
                await trio.sleep(0.05)
        # a new connection is unaffected: the reset rules match only link 0's port
        other = await net.connect()
        await other.send_all(b"fine")
        assert await read_exactly(other, 4) == b"fine"

    with_echo_server(body)


def test_half_open_survives_heal():
    async def body(net):
        client = await net.connect()
        net.apply(F.HalfOpen("s2c"))
        await client.send_all(b"gone")
        net.heal()
        with trio.move_on_after(0.5) as scope:
            await client.receive_some(1)
        assert scope.cancelled_caught

    with_echo_server(body)


def test_unsupported_faults_say_what_to_use_instead():
    with NetnsNetwork() as net:
        for fault in (F.Latency(), F.Slice(), F.CleanClose(), F.TruncateMidFrame(), F.SwallowPongs()):
            with pytest.raises(UnsupportedFault, match="use the sim or tcp backend"):
                net.apply(fault)


def test_drop_during_handshake_resets_only_the_next_connection():
    async def body(net):
        net.apply(F.DropDuringHandshake())
        doomed = await net.connect()
        with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
            while True:
                await doomed.send_all(b"GET / HTTP/1.1\r\n\r\n")
                await doomed.receive_some(10)
                await trio.sleep(0.05)
        fine = await net.connect()
        await fine.send_all(b"ok")
        assert await read_exactly(fine, 2) == b"ok"

    with_echo_server(body)


def test_namespaces_left_by_a_dead_process_are_cleaned_up():
    from statemodel.net.netns import cleanup_stale

    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    name = f"statemodel{proc.pid}x0"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        assert name in cleanup_stale()
        assert name not in namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def test_a_connection_from_inside_the_namespace_goes_around_veth_faults():
    """``connect_inside`` (peers the machine plays: forged resumes, take-overs) never crosses
    the veth, so a partition there stalls host-side connections but not it. ``connect(link=)``
    names a host-side connection with the caller's id (a proxy's), for per-link faults."""

    async def body(net):
        net.apply(F.Partition())
        with trio.move_on_after(1) as stalled:
            await net.connect(timeout=5)
        assert stalled.cancelled_caught  # the SYN cannot cross the veth
        inside = await net.connect_inside(timeout=5)
        await inside.send_all(b"around")
        assert await read_exactly(inside, 6) == b"around"
        net.heal()
        named = await net.connect(link=7, timeout=5)
        assert 7 in net.links
        net.apply(F.Abort(), 7)
        with trio.fail_after(10):
            with pytest.raises((trio.BrokenResourceError, OSError)):
                while True:
                    await named.send_all(b"x" * 1000)
                    await trio.sleep(0.01)
        await inside.send_all(b"still")
        assert await read_exactly(inside, 5) == b"still"

    with_echo_server(body)


def test_heal_lifts_every_degrade_rule_even_one_already_gone():
    """Rules go in and out in one ``iptables-restore`` each (a process costs milliseconds,
    and a boot made sixteen). One transaction is all or none: a rule deleted behind our back
    must not keep the others in force (heal falls back to one delete each)."""
    with NetnsNetwork() as net:
        net.apply(F.Partition(direction="c2s"))
        net.apply(F.PacketLoss(direction="both", probability=0.5))
        net.apply(F.Clog(direction="s2c"))
        degrade = [k for k in net.rule_counters() if k.startswith("SM_DEGRADE")]
        assert len(degrade) == 4, degrade  # one rule per direction: 1 + 2 + 1
        net.heal()
        assert not [k for k in net.rule_counters() if k.startswith("SM_DEGRADE")]

        net.apply(F.Partition())
        net.apply(F.Clog(direction="c2s"))
        chain, _, spec = net._rules[0]
        subprocess.run(["ip", "netns", "exec", net.name, "iptables", "-D", chain, *spec], check=True, timeout=10)
        net.heal()
        assert not [k for k in net.rule_counters() if k.startswith("SM_DEGRADE")]
        assert net._rules == []


def test_a_dial_into_a_partition_goes_again_when_a_heal_lifts_it():
    """The kernel resends a SYN a partition dropped only after its retransmission timeout (1 s,
    then 3 s): a proxy leg dialled during a partition stayed down that long after the heal
    (30-40 s of a 90 s netns fuzz run). A heal that lifts a rule now dials again at once: one
    redial, and the connection it makes is the one returned."""

    async def body(net):
        net.apply(F.Partition())
        got = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _append(got, net.connect(timeout=20)))
            with trio.fail_after(10):  # bounded: until the partition has dropped the first SYN
                while sum(net.rule_counters().values()) == 0:
                    await trio.sleep(0.01)
            assert not got
            net.heal()
        assert len(got) == 1 and net.links == [0]
        assert [e.detail for e in net.trace.of_kind("redial")] == ["a heal lifted a rule mid-connect"]
        await got[0].send_all(b"up")
        assert await read_exactly(got[0], 2) == b"up"

    with_echo_server(body)


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


def test_a_refused_dial_is_a_plain_oserror_that_the_proxy_turns_into_a_reset():
    """Session 11's redial runs the dial in a nursery, and trio wraps what a task raises in an
    ExceptionGroup: a refused dial (nothing listening, or an RST rule matching the new
    connection's port) escaped the fault proxy's ``except OSError`` and a netns fuzz run
    reported "no unhandled exception violated at open_tcp_stream" (seed 9300, step 45)."""

    async def body(net):
        with trio.fail_after(10), pytest.raises(OSError):  # not an ExceptionGroup holding one
            await net.connect(port=9)  # nothing listens on it in a fresh namespace

    with_echo_server(body)
