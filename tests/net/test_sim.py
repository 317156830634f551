"""The sim backend: each fault's observable effect on raw byte streams, on virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from statemodel.net import faults as F
from statemodel.net.link import SLICE_PIECES
from statemodel.net.sim import SimNetwork


def run(async_fn, *args):
    return trio.run(async_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def echo_server(listener, *, task_status=trio.TASK_STATUS_IGNORED):
    task_status.started()
    async with trio.open_nursery() as nursery:
        while True:
            stream = await listener.accept()
            nursery.start_soon(_echo, stream)


async def _echo(stream):
    try:
        while data := await stream.receive_some():
            await stream.send_all(data)
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def sink(listener, got: list, *, task_status=trio.TASK_STATUS_IGNORED):
    """Accept one connection and record (time, bytes) of every read until EOF/error."""
    task_status.started()
    stream = await listener.accept()
    try:
        while data := await stream.receive_some():
            got.append((trio.current_time(), data))
        got.append((trio.current_time(), "EOF"))
    except trio.BrokenResourceError:
        got.append((trio.current_time(), "BROKEN"))


async def read_exactly(stream, n):
    buf = b""
    with trio.fail_after(60):
        while len(buf) < n:
            data = await stream.receive_some()
            assert data, f"EOF after {len(buf)} of {n} bytes"
            buf += data
    return buf


def test_echo_round_trip_and_eof():
    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            await nursery.start(echo_server, net.listener())
            client = await net.connect()
            await client.send_all(b"hello")
            assert await read_exactly(client, 5) == b"hello"
            await client.send_eof()
            with trio.fail_after(1):
                assert await client.receive_some() == b""
            await client.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await client.receive_some()
            with pytest.raises(trio.ClosedResourceError):
                await client.send_all(b"x")
            assert net.links == []
            nursery.cancel_scope.cancel()

    run(main)


def test_latency_delays_by_exact_virtual_time_each_way():
    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            await nursery.start(echo_server, net.listener())
            client = await net.connect()
            net.apply(F.Latency("c2s", seconds=0.25))
            net.apply(F.Latency("s2c", seconds=0.5))
            t0 = trio.current_time()
            await client.send_all(b"ping")
            await read_exactly(client, 4)
            assert trio.current_time() - t0 == pytest.approx(0.75)
            net.heal()
            t1 = trio.current_time()
            await client.send_all(b"ping")
            await read_exactly(client, 4)
            assert trio.current_time() == pytest.approx(t1)
            nursery.cancel_scope.cancel()

    run(main)


def test_jitter_is_seeded_bounded_and_never_reorders():
    async def scenario(seed):
        net = SimNetwork(seed)
        got = []
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.Latency("c2s", seconds=0.1, jitter=0.5))
            for i in range(50):
                await client.send_all(bytes([i]) * 3)
                await trio.sleep(0.01)
            await client.aclose()
        return got, net.trace.digest()

    got_a, digest_a = run(scenario, 7)
    got_b, digest_b = run(scenario, 7)
    got_c, digest_c = run(scenario, 8)
    assert got_a == got_b and digest_a == digest_b
    assert digest_a != digest_c
    data = b"".join(d for _, d in got_a if isinstance(d, bytes))
    assert data == b"".join(bytes([i]) * 3 for i in range(50))
    times = [t for t, _ in got_a]
    assert times == sorted(times)
    # every chunk waited at least the base latency, and at most base + jitter + its send time
    assert times[0] >= 0.1 and times[-2] <= 0.49 + 0.1 + 0.5 + 1e-9


def test_slice_never_changes_bytes_and_bounds_each_read():
    async def main():
        net = SimNetwork(0)
        got = []
        payload = bytes(range(256)) * 40
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.Slice("c2s", max_bytes=7))
            await client.send_all(payload)
            await client.send_all(b"tail")
            await client.aclose()
        chunks = [d for _, d in got if isinstance(d, bytes)]
        assert b"".join(chunks) == payload + b"tail"
        # The first SLICE_PIECES pieces of the 10,240-byte write have 7 bytes each; the
        # remainder may arrive in larger reads (one-byte reads of MiB payloads cost minutes).
        head = b"".join(chunks)[: 7 * SLICE_PIECES]
        lengths = [len(c) for c in chunks]
        assert lengths[:SLICE_PIECES] == [7] * SLICE_PIECES and len(head) == 7 * SLICE_PIECES
        assert max(lengths[SLICE_PIECES:]) > 7
        assert got[-1][1] == "EOF"

    run(main)


def test_clog_delivers_nothing_until_heal_then_everything_in_order():
    async def main():
        net = SimNetwork(0)
        got = []
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.Clog("c2s"))
            for i in range(10):
                await client.send_all(f"m{i};".encode())
            await trio.sleep(100)
            assert got == []
            net.heal()
            await trio.sleep(0)
            await client.aclose()
        assert b"".join(d for _, d in got if isinstance(d, bytes)) == b"".join(f"m{i};".encode() for i in range(10))
        assert all(t == 100 for t, _ in got)
        assert got[-1][1] == "EOF"

    run(main)


def test_partition_holds_both_ways_heals_and_stalls_new_connections():
    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            await nursery.start(echo_server, net.listener())
            client = await net.connect()
            net.apply(F.Partition())
            await client.send_all(b"held")
            with trio.move_on_after(30) as scope:
                await client.receive_some()
            assert scope.cancelled_caught
            with trio.move_on_after(30) as scope:
                await net.connect()
            assert scope.cancelled_caught, "a new connection crossed a network-wide partition"
            net.heal()
            assert await read_exactly(client, 4) == b"held"
            with trio.fail_after(1):
                second = await net.connect()
            await second.send_all(b"ok")
            assert await read_exactly(second, 2) == b"ok"
            nursery.cancel_scope.cancel()

    run(main)


def test_one_way_partition_lets_the_other_direction_flow():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        net.apply(F.Partition("c2s"), link=0)
        await client.send_all(b"up")
        await server.send_all(b"down")
        assert await read_exactly(client, 4) == b"down"
        with trio.move_on_after(10) as scope:
            await server.receive_some()
        assert scope.cancelled_caught
        net.heal(link=0)
        assert await read_exactly(server, 2) == b"up"

    run(main)


def test_abort_breaks_both_ends_and_loses_bytes_in_flight():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        net.apply(F.Latency(seconds=1.0))
        await client.send_all(b"lost")
        net.apply(F.Abort())
        with pytest.raises(trio.BrokenResourceError):
            await server.receive_some()
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some()
        with pytest.raises(trio.BrokenResourceError):
            await client.send_all(b"x")
        assert net.links == []
        assert ("abort" in [e.kind for e in net.trace])

    run(main)


def test_clean_close_delivers_in_flight_then_eof_and_later_sends_fail():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        await client.send_all(b"last words")
        net.apply(F.CleanClose())
        assert await read_exactly(server, 10) == b"last words"
        assert await server.receive_some() == b""
        assert await client.receive_some() == b""
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"late")

    run(main)


def test_half_open_sender_succeeds_but_nothing_arrives_ever():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        net.apply(F.HalfOpen("s2c"))
        for _ in range(5):
            await server.send_all(b"into the void")
        await server.aclose()  # even the FIN vanishes
        with trio.move_on_after(1000) as scope:
            await client.receive_some()
        assert scope.cancelled_caught
        net.heal()  # HalfOpen is a drop, not a degrade: heal does not revive it
        with trio.move_on_after(10) as scope:
            await client.receive_some()
        assert scope.cancelled_caught

    run(main)


def test_drop_during_handshake_kills_only_the_next_link_at_the_servers_first_bytes():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        net.apply(F.DropDuringHandshake())
        client = await net.connect()
        server = await listener.accept()
        await client.send_all(b"GET / HTTP/1.1\r\n\r\n")
        assert await read_exactly(server, 18)
        await server.send_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        with pytest.raises(trio.BrokenResourceError):
            await client.receive_some()
        client2 = await net.connect()
        server2 = await listener.accept()
        await server2.send_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert await read_exactly(client2, 36)

    run(main)


def test_network_wide_heal_disarms_pending_handshake_drops():
    """Heal means healthy from now on: drops armed before it must not hit later links."""
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        net.apply(F.DropDuringHandshake())
        net.apply(F.DropDuringHandshake())
        net.heal()
        client = await net.connect()
        server = await listener.accept()
        await server.send_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        assert await read_exactly(client, 36)

    run(main)


def test_bandwidth_serialises_writes():
    async def main():
        net = SimNetwork(0)
        got = []
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.Bandwidth("c2s", bytes_per_second=1000))
            await client.send_all(b"a" * 500)
            await client.send_all(b"b" * 1500)
            await client.aclose()
        assert got[0] == (pytest.approx(0.5), b"a" * 500)
        assert got[1] == (pytest.approx(2.0), b"b" * 1500)

    run(main)


def test_heal_drains_bytes_queued_behind_a_bandwidth_cap():
    """Bytes written under a cap are delivered soon after heal, not at the capped rate."""
    async def main():
        net = SimNetwork(0)
        got = []
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.Bandwidth("c2s", bytes_per_second=1000))
            await client.send_all(b"a" * 500)
            await client.send_all(b"b" * 9500)  # 10 s at the cap
            await trio.sleep(1.0)
            net.heal()
            await client.aclose()
        assert got[0] == (pytest.approx(0.5), b"a" * 500)
        assert got[1] == (pytest.approx(1.0), b"b" * 9500)

    run(main)


def test_network_wide_degrade_applies_to_links_created_later():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        net.apply(F.Latency(seconds=2.0))
        client = await net.connect()
        server = await listener.accept()
        t0 = trio.current_time()
        await client.send_all(b"x")
        await read_exactly(server, 1)
        assert trio.current_time() - t0 == pytest.approx(2.0)

    run(main)


def test_buffer_limit_gives_backpressure():
    async def main():
        net = SimNetwork(0, buffer_limit=1000)
        listener = net.listener()
        client = await net.connect()
        await listener.accept()  # a server that never reads
        await client.send_all(b"x" * 1500)  # accepted, but must wait for the reader
        raise AssertionError("send_all returned without the reader draining")

    async def main_with_reader():
        net = SimNetwork(0, buffer_limit=1000)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, b"x" * 1500)
            await trio.sleep(5)
            assert await read_exactly(server, 1500) == b"x" * 1500

    async def bounded():
        with trio.move_on_after(10) as scope:
            await main()
        assert scope.cancelled_caught

    run(bounded)
    run(main_with_reader)


def test_local_close_wakes_a_blocked_reader_and_gives_the_peer_eof():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        caught = []

        async def reader():
            try:
                await client.receive_some()
            except trio.ClosedResourceError:
                caught.append("closed")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(1)
            await client.aclose()
        assert caught == ["closed"]
        assert await server.receive_some() == b""
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"to a closed peer")

    run(main)


def test_connect_without_listener_is_refused_clearly():
    async def main():
        net = SimNetwork(0)
        with pytest.raises(OSError, match="refused"):
            await net.connect()
        listener = net.listener()
        await listener.aclose()
        with pytest.raises(OSError, match="refused"):
            await net.connect()
        assert net.listener() is not listener  # a restarted server gets a fresh listener

    run(main)


def test_apply_to_unknown_link_is_a_clear_error():
    async def main():
        net = SimNetwork(0)
        with pytest.raises(ValueError, match="no live link 3"):
            net.apply(F.Abort(), link=3)
        with pytest.raises(TypeError, match="needs a Fault"):
            net.apply("Abort")

    run(main)


def test_byte_tracing_can_be_switched_off():
    async def main():
        net = SimNetwork(0, record_bytes=False)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        await client.send_all(b"abc")
        await read_exactly(server, 3)
        net.apply(F.Abort())
        kinds = {e.kind for e in net.trace}
        assert kinds == {"connect", "fault", "abort"}

    run(main)


def test_packet_loss_on_sim_costs_a_retransmission_timeout_not_bytes():
    async def main():
        net = SimNetwork(0)
        got = []
        async with trio.open_nursery() as nursery:
            await nursery.start(sink, net.listener(), got)
            client = await net.connect()
            net.apply(F.PacketLoss("c2s", every=3, rto=0.5))
            for i in range(6):
                await client.send_all(bytes([i]))
            await client.aclose()
        assert b"".join(d for _, d in got if isinstance(d, bytes)) == bytes(range(6))
        # the 3rd write was "lost" and retransmitted 0.5 s later; the rest queue behind it
        assert [t for t, _ in got][:6] == [0, 0, 0.5, 0.5, 0.5, 0.5]

    run(main)


def test_small_reads_of_a_big_write_return_every_byte_in_order():
    async def main():
        net = SimNetwork(0, buffer_limit=None)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        payload = bytes(range(256)) * 400
        await client.send_all(payload)
        pieces = []
        while sum(map(len, pieces)) < len(payload):
            pieces.append(await server.receive_some(1000))
        assert b"".join(pieces) == payload
        assert {len(p) for p in pieces} == {1000, len(payload) % 1000}

    run(main)


def test_drop_during_handshake_named_for_a_live_link_still_arms_the_next_one():
    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        client = await net.connect()
        server = await listener.accept()
        net.apply(F.DropDuringHandshake(), link=0)
        await server.send_all(b"established links keep working")
        assert await read_exactly(client, 30)
        doomed = await net.connect()
        doomed_server = await listener.accept()
        await doomed_server.send_all(b"HTTP/1.1 101\r\n\r\n")
        with pytest.raises(trio.BrokenResourceError):
            await doomed.receive_some()

    run(main)


class _TaskSteps(trio.abc.Instrument):
    """Counts the task steps of one named task (a wakeup is a task step)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps = 0

    def before_task_step(self, task) -> None:
        if task.name == self.name:
            self.steps += 1


def test_a_reader_wakes_once_per_delivery_not_per_write():
    """Bytes in flight do not wake the reader early: each write only moves its deadline, so a
    reader waiting through 20 writes spread over 5 ms of latency runs once per delivery (a
    wakeup per write to find nothing due cost the sim a task switch per frame)."""

    async def main():
        net = SimNetwork(0)
        net.apply(F.Latency(seconds=0.005))
        got, steps = [], _TaskSteps("reader")
        listener = net.listener()
        async with trio.open_nursery() as nursery:
            client = await net.connect()
            server = await listener.accept()

            async def reader():
                while len(got) < 2:
                    data = await server.receive_some(1000)
                    got.append((trio.current_time(), data))

            trio.lowlevel.add_instrument(steps)
            nursery.start_soon(reader, name="reader")
            await trio.testing.wait_all_tasks_blocked()
            for i in range(20):
                await client.send_all(b"x")
                await trio.sleep(0.0001)
            with trio.fail_after(1):
                while len(got) < 2:
                    await trio.sleep(0.001)
            nursery.cancel_scope.cancel()
        return got, steps.steps

    got, steps = run(main)
    assert [round(t, 6) for t, _ in got] == [0.005, 0.0051]  # one byte per delivery, in order
    # its first step (to the wait), then one wakeup per delivered read: none for the 20 writes
    assert steps == 3, steps
