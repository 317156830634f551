"""Frame-aware and drop faults observed through real trio-websocket (0.12.2) on the sim."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_client_stream, wrap_server_stream

from statemodel.net import faults as F
from statemodel.net.sim import SimNetwork


def run(async_fn, *args):
    return trio.run(async_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def ws_pair(net: SimNetwork, nursery: trio.Nursery):
    """Client and server WebSocketConnections over one sim link (handshake bounded:
    trio-websocket's wrap_*_stream have no timeout of their own)."""
    listener = net.listener()
    server_ws = None

    async def serve(task_status=trio.TASK_STATUS_IGNORED):
        nonlocal server_ws
        stream = await listener.accept()
        request = await wrap_server_stream(nursery, stream, max_message_size=1 << 22)
        server_ws = await request.accept()
        task_status.started()

    stream = await net.connect()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            n.start_soon(serve)
            client_ws = await wrap_client_stream(nursery, stream, "sim", "/", max_message_size=1 << 22)
    return client_ws, server_ws


def test_truncate_mid_frame_gives_the_reader_an_abnormal_closure_1006():
    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            client, server = await ws_pair(net, nursery)
            await server.send_message(b"whole")
            assert await client.get_message() == b"whole"
            net.apply(F.TruncateMidFrame("s2c"))
            await server.send_message(b"x" * 1000)
            with trio.fail_after(10), pytest.raises(ConnectionClosed) as info:
                await client.get_message()
            assert info.value.reason.code == 1006
            truncated = [e for e in net.trace if e.kind == "fault" and e.detail == "truncated"]
            assert truncated and 0 < truncated[0].size < 1004
            assert net.links == []

    run(main)


def test_split_at_frame_boundary_keeps_messages_intact():
    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            net.apply(F.SplitAtFrameBoundary())
            client, server = await ws_pair(net, nursery)
            sizes = [0, 1, 125, 126, 65535, 65536, 300_000]
            for n in sizes:
                await client.send_message(bytes([n % 251]) * n)
                assert await server.get_message() == bytes([n % 251]) * n
                await server.send_message("é" * n)
                assert await client.get_message() == "é" * n
            # every frame header was cut after its first byte
            one_byte = [e for e in net.trace if e.kind == "deliver" and e.size == 1]
            assert len(one_byte) >= 2 * len(sizes)
            with trio.fail_after(10):
                await client.aclose()

    run(main)


def _server_close_code(net_fault):
    async def main():
        net = SimNetwork(0)
        codes = []
        async with trio.open_nursery() as nursery:
            client, server = await ws_pair(net, nursery)
            if net_fault is not None:
                net.apply(net_fault)
            t0 = trio.current_time()

            async def server_reader():
                try:
                    await server.get_message()
                except ConnectionClosed as exc:
                    codes.append((exc.reason.code, trio.current_time() - t0))

            nursery.start_soon(server_reader)
            with trio.move_on_after(5) as scope:
                await client.aclose()
            timed_out = scope.cancelled_caught
        assert len(codes) == 1
        return codes[0], timed_out

    return run(main)


def test_close_handshake_without_faults_is_clean_1000():
    (code, at), timed_out = _server_close_code(None)
    assert code == 1000 and at == 0
    assert not timed_out


def test_drop_close_frame_stalls_the_close_handshake():
    """trio-websocket's aclose() waits for the peer's close frame with no timeout of its
    own; with the close frame dropped it hangs until our bound cancels it, after which it
    closes the stream and the server sees an abnormal 1006 instead of 1000."""
    (code, at), timed_out = _server_close_code(F.DropCloseFrame("c2s"))
    assert timed_out
    assert code == 1006
    assert at == pytest.approx(5)


def test_delay_close_frame_delays_only_the_close():
    (code, at), timed_out = _server_close_code(F.DelayCloseFrame("c2s", seconds=3))
    assert (code, at) == (1000, pytest.approx(3))
    assert not timed_out


def test_swallow_pongs_makes_trio_websocket_ping_wait_forever():
    """Upstream: trio-websocket's ping() waits for its pong with no timeout; it must be
    bounded by the caller. With pongs swallowed it never returns."""

    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            client, server = await ws_pair(net, nursery)
            nursery.start_soon(server.get_message)  # server reader answers pings
            with trio.fail_after(5):
                await client.ping(b"one")
            net.apply(F.SwallowPongs("s2c"))
            with trio.move_on_after(5) as scope:
                await client.ping(b"two")
            assert scope.cancelled_caught
            assert any(e.kind == "drop" and e.detail == "op=10" for e in net.trace)
            nursery.cancel_scope.cancel()

    run(main)


def test_abrupt_eof_surfaces_as_connection_closed_1006():
    """Upstream: trio-websocket reports a clean TCP FIN without a close frame as 1006."""

    async def main():
        net = SimNetwork(0)
        async with trio.open_nursery() as nursery:
            client, server = await ws_pair(net, nursery)
            net.apply(F.CleanClose())
            with trio.fail_after(10), pytest.raises(ConnectionClosed) as info:
                await client.get_message()
            assert info.value.reason.code == 1006
            nursery.cancel_scope.cancel()

    run(main)


def test_drop_during_handshake_fails_the_opening_handshake_then_next_link_works():
    """Upstream: trio-websocket's wrap_client_stream has no timeout and, when the stream
    breaks before the 101 answer, waits for the opening handshake forever -- callers must
    bound it (we do, with move_on_after)."""

    async def main():
        net = SimNetwork(0)
        listener = net.listener()
        net.apply(F.DropDuringHandshake())
        async with trio.open_nursery() as nursery:

            async def serve():
                stream = await listener.accept()
                try:
                    request = await wrap_server_stream(nursery, stream)
                    await request.accept()
                except (ConnectionClosed, trio.BrokenResourceError):
                    pass

            nursery.start_soon(serve)
            stream = await net.connect()
            with trio.move_on_after(10) as scope:
                await wrap_client_stream(nursery, stream, "sim", "/")
            assert scope.cancelled_caught, "the handshake completed despite DropDuringHandshake"
            assert 0 not in net.links
            assert any(e.kind == "abort" and e.detail == "handshake dropped" for e in net.trace)
            client, server = await ws_pair(net, nursery)
            await client.send_message("after")
            assert await server.get_message() == "after"
            nursery.cancel_scope.cancel()

    run(main)

