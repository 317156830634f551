"""The tcp backend: a real loopback fault proxy, faults applied to live connections.

Real sockets, so every wait is bounded by fail_after/move_on_after and nothing asserts
on wall-clock durations; "nothing arrives while clogged" is a safety check that holds
however long we wait.
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionTimeout, open_websocket, serve_websocket

from statemodel.net import faults as F
from statemodel.net.control import ControlServer
from statemodel.net.tcp import FaultProxy

LOOPBACK = "127.0.0.1"


async def echo_upstream(nursery) -> int:
    async def handler(stream):
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host=LOOPBACK))
    return listeners[0].socket.getsockname()[1]


async def read_exactly(stream, n: int) -> bytes:
    buf = bytearray()
    with trio.fail_after(10):
        while len(buf) < n:
            data = await stream.receive_some(65536)
            assert data, f"EOF after {len(buf)} of {n} bytes"
            buf += data
    return bytes(buf)


def test_proxy_forwards_bytes_unchanged_and_half_closes():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                payload = bytes(range(256)) * 4096  # 1 MiB
                async with trio.open_nursery() as n:
                    n.start_soon(client.send_all, payload)
                    assert await read_exactly(client, len(payload)) == payload
                await client.send_eof()
                with trio.fail_after(10):
                    assert await client.receive_some() == b""
                await client.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_slice_and_latency_apply_to_a_live_connection():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                await client.send_all(b"warm")
                await read_exactly(client, 4)
                proxy.apply(F.Slice("s2c", max_bytes=3))
                proxy.apply(F.Latency("c2s", seconds=0.02))
                await client.send_all(b"0123456789")
                assert await read_exactly(client, 10) == b"0123456789"
                sends = [e for e in proxy.trace if e.kind == "send" and e.direction == "c2s"]
                delivers = [e for e in proxy.trace if e.kind == "deliver" and e.direction == "c2s"]
                assert delivers[-1].t - sends[-1].t == pytest.approx(0.02)
                sliced = [e.size for e in proxy.trace if e.kind == "deliver" and e.direction == "s2c"][1:]
                assert sliced and max(sliced) <= 3 and sum(sliced) == 10
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_clog_holds_everything_until_heal_then_delivers_in_order():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                await client.send_all(b"x")
                await read_exactly(client, 1)
                proxy.apply(F.Clog("c2s"))
                for i in range(20):
                    await client.send_all(f"<{i}>".encode())
                with trio.move_on_after(0.2) as scope:
                    await client.receive_some(1)
                assert scope.cancelled_caught, "bytes crossed a clog"
                proxy.heal()
                expected = b"".join(f"<{i}>".encode() for i in range(20))
                assert await read_exactly(client, len(expected)) == expected
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_abort_is_a_real_reset_and_the_link_goes_away():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                await client.send_all(b"x")
                await read_exactly(client, 1)
                assert proxy.links == [0]
                proxy.apply(F.Abort())
                with trio.fail_after(10), pytest.raises(trio.BrokenResourceError):
                    while True:  # an RST surfaces as ECONNRESET (maybe after a send)
                        await client.receive_some(10)
                        await client.send_all(b"y")
                assert proxy.links == []
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_half_open_drops_one_direction_silently():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                proxy.apply(F.HalfOpen("s2c"))
                for _ in range(5):
                    await client.send_all(b"echoed into the void")
                with trio.move_on_after(0.2) as scope:
                    await client.receive_some(1)
                assert scope.cancelled_caught
                assert any(e.kind == "drop" and e.direction == "s2c" for e in proxy.trace)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def ws_echo_upstream(nursery) -> int:
    async def handler(request):
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    server = await nursery.start(serve_websocket, handler, LOOPBACK, 0, None)
    return server.port


def test_truncate_mid_frame_through_the_proxy_gives_1006():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await ws_echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                async with open_websocket(LOOPBACK, proxy.port, "/", use_ssl=False,
                                          connect_timeout=10, disconnect_timeout=2) as ws:
                    await ws.send_message("hello")
                    with trio.fail_after(10):
                        assert await ws.get_message() == "hello"
                    proxy.apply(F.TruncateMidFrame("s2c"))
                    await ws.send_message("x" * 5000)
                    with trio.fail_after(10), pytest.raises(ConnectionClosed) as info:
                        await ws.get_message()
                    assert info.value.reason.code == 1006
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_split_at_frame_boundary_through_the_proxy_keeps_messages():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await ws_echo_upstream(nursery)
            proxy = FaultProxy(upstream=(LOOPBACK, port))
            proxy.apply(F.SplitAtFrameBoundary())
            async with proxy.running():
                async with open_websocket(LOOPBACK, proxy.port, "/", use_ssl=False,
                                          connect_timeout=10, disconnect_timeout=2) as ws:
                    for n in (1, 126, 70_000):
                        await ws.send_message(b"m" * n)
                        with trio.fail_after(10):
                            assert await ws.get_message() == b"m" * n
            assert any(e.kind == "deliver" and e.size == 1 for e in proxy.trace)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_unreachable_upstream_resets_the_client():
    async def main():
        with trio.socket.socket() as s:  # a port with nobody listening
            await s.bind((LOOPBACK, 0))
            dead_port = s.getsockname()[1]
        async with FaultProxy(upstream=(LOOPBACK, dead_port), connect_timeout=2).running() as proxy:
            client = await proxy.connect()
            with trio.fail_after(10):
                try:
                    assert await client.receive_some(10) == b""
                except trio.BrokenResourceError:
                    pass
            assert any(e.kind == "refused" for e in proxy.trace)

    trio.run(main)


# --- control API -------------------------------------------------------------------------

async def http(port: int, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(LOOPBACK, port)
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        await stream.send_all(head + data)
        raw = bytearray()
        while chunk := await stream.receive_some(65536):
            raw += chunk
        await stream.aclose()
    head, _, payload = bytes(raw).partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_control_api_adds_lists_removes_and_resets_faults_on_live_links():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                control = ControlServer(proxy)
                cport = await nursery.start(control.serve)
                client = await proxy.connect()
                await client.send_all(b"a")
                await read_exactly(client, 1)
                assert await http(cport, "GET", "/links") == (200, {"links": [0]})

                status, added = await http(cport, "POST", "/faults", {"fault": "Clog", "args": {"direction": "c2s"}})
                assert status == 201 and added["fault"] == "Clog(direction='c2s')"
                status, lat = await http(cport, "POST", "/faults", {"fault": "Latency", "args": {"seconds": 0.001}, "link": 0})
                status, listing = await http(cport, "GET", "/faults")
                assert [f["fault"] for f in listing["faults"]] == ["Clog", "Latency"]
                assert listing["faults"][1]["link"] == 0 and listing["enabled"] is True

                await client.send_all(b"held")
                with trio.move_on_after(0.2) as scope:
                    await client.receive_some(1)
                assert scope.cancelled_caught
                status, removed = await http(cport, "DELETE", f"/faults/{added['id']}")
                assert status == 200
                assert await read_exactly(client, 4) == b"held"

                status, _ = await http(cport, "POST", "/disable")
                assert status == 200 and proxy.enabled is False
                status, state = await http(cport, "POST", "/enable")
                assert state["enabled"] is True and len(state["faults"]) == 1
                status, state = await http(cport, "POST", "/reset")
                assert state == {"enabled": True, "faults": []}
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_control_api_rejects_bad_requests_clearly():
    async def main():
        async with trio.open_nursery() as nursery:
            proxy = FaultProxy(upstream=(LOOPBACK, 9))
            control = ControlServer(proxy)
            cport = await nursery.start(control.serve)
            status, err = await http(cport, "POST", "/faults", {"fault": "Teleport"})
            assert status == 400 and "unknown fault 'Teleport'" in err["error"]
            status, err = await http(cport, "POST", "/faults", b"{not json")
            assert status == 400 and "not JSON" in err["error"]
            status, err = await http(cport, "POST", "/faults", {"fault": "Latency", "args": {"seconds": -1}})
            assert status == 400 and "seconds" in err["error"]
            status, err = await http(cport, "POST", "/faults", {"fault": "Abort", "link": 7})
            assert status == 400 and "no live link 7" in err["error"]
            status, err = await http(cport, "DELETE", "/faults/99")
            assert status == 404 and "no fault with id 99" in err["error"]
            status, err = await http(cport, "GET", "/nowhere")
            assert status == 404 and "no route" in err["error"]
            # the server is still serving after all of that
            assert (await http(cport, "GET", "/faults"))[0] == 200
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_clean_close_through_the_proxy_is_a_fin_after_in_flight_bytes():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                await client.send_all(b"bye")
                assert await read_exactly(client, 3) == b"bye"
                proxy.apply(F.CleanClose())
                with trio.fail_after(10):
                    assert await client.receive_some(10) == b""
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_drop_during_handshake_through_the_proxy_then_next_connection_works():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await ws_echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                proxy.apply(F.DropDuringHandshake())
                # Upstream: trio-websocket does not notice the reset during its opening
                # handshake and only gives up at connect_timeout -- keep it short.
                with trio.fail_after(10), pytest.raises(ConnectionTimeout):
                    async with open_websocket(LOOPBACK, proxy.port, "/", use_ssl=False,
                                              connect_timeout=0.5, disconnect_timeout=0.5):
                        pass
                assert any(e.kind == "abort" and e.detail == "handshake dropped" for e in proxy.trace)
                async with open_websocket(LOOPBACK, proxy.port, "/", use_ssl=False,
                                          connect_timeout=5, disconnect_timeout=1) as ws:
                    await ws.send_message("again")
                    with trio.fail_after(10):
                        assert await ws.get_message() == "again"
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_network_wide_partition_holds_new_connections_until_heal():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                proxy.apply(F.Partition())
                client = await proxy.connect()  # the proxy accepts, but nothing crosses
                await client.send_all(b"hello")
                with trio.move_on_after(0.2) as scope:
                    await client.receive_some(1)
                assert scope.cancelled_caught
                proxy.heal()
                assert await read_exactly(client, 5) == b"hello"
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_half_open_link_is_released_once_both_ends_have_closed():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                client = await proxy.connect()
                await client.send_all(b"x")
                await read_exactly(client, 1)
                proxy.apply(F.HalfOpen("s2c"))
                await client.send_eof()  # the echo server then closes; its FIN vanishes
                with trio.fail_after(10):
                    while proxy.links:
                        await trio.sleep(0.01)
                with trio.fail_after(10):
                    assert await client.receive_some(10) == b""  # the proxy let go of the socket
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_swallow_pongs_through_the_proxy_leaves_ping_unanswered():
    """Upstream: trio-websocket's ping() waits for its pong with no timeout of its own."""

    async def main():
        async with trio.open_nursery() as nursery:
            port = await ws_echo_upstream(nursery)
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                async with open_websocket(LOOPBACK, proxy.port, "/", use_ssl=False,
                                          connect_timeout=5, disconnect_timeout=0.5) as ws:
                    with trio.fail_after(10):
                        await ws.ping(b"1")
                    proxy.apply(F.SwallowPongs("s2c"))
                    with trio.move_on_after(0.3) as scope:
                        await ws.ping(b"2")
                    assert scope.cancelled_caught
                    assert any(e.kind == "drop" and e.detail == "op=10" for e in proxy.trace)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_drop_close_frame_behind_another_frame_in_one_read():
    """A TCP read can hold a data frame and a close frame together (the sim writes frames one
    by one, so it never did): DropCloseFrame keeps the frame before it and drops the close.
    The pipe once crashed here (``view`` was None for one partial piece: 'NoneType' object is
    not subscriptable), found by the reference target on netns."""
    head = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    data_frame = b"\x82\x03abc"  # binary, unmasked, 3 bytes
    close_frame = b"\x88\x02\x03\xe8"  # close 1000

    async def main():
        async with trio.open_nursery() as nursery:
            async def upstream(stream):
                await stream.send_all(head)
                await trio.sleep(0.05)  # the head goes first, in its own read
                await stream.send_all(data_frame + close_frame)
                with trio.move_on_after(5):
                    await stream.receive_some(1)

            listeners = await nursery.start(partial(trio.serve_tcp, upstream, 0, host=LOOPBACK))
            port = listeners[0].socket.getsockname()[1]
            async with FaultProxy(upstream=(LOOPBACK, port)).running() as proxy:
                proxy.apply(F.DropCloseFrame("s2c"))
                client = await trio.open_tcp_stream(LOOPBACK, proxy.port)
                got = await read_exactly(client, len(head) + len(data_frame))
                assert got == head + data_frame
                with trio.move_on_after(0.3):
                    extra = await client.receive_some(100)
                    assert extra == b"", extra  # the close frame never arrives
                await client.aclose()
            nursery.cancel_scope.cancel()

    trio.run(main)
