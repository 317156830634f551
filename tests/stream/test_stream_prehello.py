"""Connections that have not completed hello get a small server-wide budget in count, bytes
and time (issue 12, observations 2 and 4b). Memory streams, virtual time."""

from __future__ import annotations

import json
import random

import trio
import trio.testing

from raw_websocket import OP_BINARY, RawClient, close_frame, ws_frame
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode
from statemodel.stream.frames import Frame, encode
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app, text

HELLO = encode(Frame("hello", {"v": 1}))
UPGRADE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def serving(body, config: Config = Config()):
    async with Server(script_app, config, rng=random.Random(1)) as server, trio.open_nursery() as n:
        def dial():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            return c

        result = await body(server, dial)
        n.cancel_scope.cancel()
    return result


async def honest_request(dial) -> list:
    async def connect():
        return dial()

    async with Client(connect, rng=random.Random(2)).run() as client:
        with trio.fail_after(10):
            return [c async for c in client.request(json.dumps({"op": "batch", "commands": [
                {"op": "emit", "chunks": [{"kind": "text", "seed": 9, "chars": 4}]}, {"op": "end"}]}))]


def test_idle_connections_beyond_the_count_drop_the_oldest_and_an_honest_client_gets_in():
    cfg = Config(prehello_max_connections=16)

    async def body(server, dial):
        idle = [dial() for _ in range(40)]  # TCP only: never a byte
        await trio.sleep(0.1)  # their handlers have all started (the oldest 24 are dropped)
        half = []
        for _ in range(10):  # upgraded, never a hello
            peer = RawClient(dial())
            await peer.handshake()
            half.append(peer)
        await trio.sleep(0.1)
        during = server.stats()
        got = await honest_request(dial)  # newest: the flood cannot keep it out
        for s in idle:
            await trio.aclose_forcefully(s)
        return during, got

    during, got = run(serving, body, cfg)
    assert during["prehello"] <= 16 and during["connections"] <= 16
    assert during["prehello_dropped"] == 50 - 16
    assert got == [text(9, 4)]


def test_a_large_message_before_hello_gets_1009_after_hello_size_bytes():
    """Connections that never said hello each pinned ~1 MiB of a frame in progress (300 of
    them: +321 MiB). Before hello a message may be one header-only frame at most."""
    cfg = Config()

    async def body(server, dial):
        peer = RawClient(dial())
        await peer.handshake()
        # a 1 MiB binary message announced, 200 KiB of it sent: cut off long before 1 MiB
        await peer.send_raw(ws_frame(OP_BINARY, b"\0" * (1 << 20))[:14 + 200 * 1024])
        with trio.fail_after(5):
            code = await peer.read_until_close()
        await trio.sleep(cfg.close_timeout + 1)
        return code, server.stats()

    code, stats = run(serving, body, cfg)
    assert code is not None and code[0] == CloseCode.WS_MESSAGE_TOO_BIG
    assert stats["sessions"] == 0 and stats["connections"] == 0


def test_after_hello_the_session_gets_its_full_message_size():
    cfg = Config()

    async def body(server, dial):
        peer = RawClient(dial())
        await peer.handshake()
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await trio.sleep(0.1)
        # a frame larger than any hello, within max_frame_size: accepted by the WebSocket layer
        command = json.dumps({"op": "emit", "chunks": [], "pad": "x" * (cfg.prehello_message_size + 1000)})
        data = encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, command.encode()))
        await peer.send_raw(ws_frame(OP_BINARY, data))
        await trio.sleep(1)
        return peer.close, server.stats()

    close, stats = run(serving, body, cfg)
    assert close is None and stats["sessions"] == 1 and stats["open_streams"] == 1


def test_a_peer_that_leaves_mid_handshake_is_released_at_once():
    """trio-websocket 0.12.2's wrap_server_stream waits for a request that never comes (its
    reader saw EOF) until our handshake_timeout: the descriptor was held 10 s."""
    async def body(server, dial):
        stream = dial()
        await stream.send_all(UPGRADE[:30])
        await trio.sleep(0.1)
        held = server.stats()["connections"]
        await trio.aclose_forcefully(stream)
        await trio.sleep(0.1)  # far less than handshake_timeout
        return held, server.stats()

    held, stats = run(serving, body)
    assert held == 1 and stats["connections"] == 0 and stats["handshakes_failed"] == 1


def test_the_hello_deadline_counts_from_accept():
    """One handshake_timeout bounds the HTTP upgrade and the hello together."""
    cfg = Config()

    async def body(server, dial):
        stream = dial()
        t0 = trio.current_time()
        await trio.sleep(cfg.handshake_timeout - 1)
        await stream.send_all(UPGRADE)
        peer = RawClient(stream)
        peer.ws.receive_data(b"")  # unused: we parse the 101 response below by hand
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += await stream.receive_some(4096)
        assert reply.startswith(b"HTTP/1.1 101")
        peer = RawClient(stream)
        peer.ws = _after_upgrade(peer)
        with trio.fail_after(cfg.handshake_timeout * 2):
            code = await peer.read_until_close()
        return code, trio.current_time() - t0

    code, elapsed = run(serving, body, cfg)
    assert code is not None and code[0] == CloseCode.HANDSHAKE_TIMEOUT
    assert elapsed <= cfg.handshake_timeout + 0.5


def _after_upgrade(peer):
    """A wsproto client connection already past its opening handshake."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request

    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/")))
    next(server.events())
    client.receive_data(server.send(AcceptConnection()))
    next(client.events())
    return client


def test_closing_a_connection_during_the_closing_handshake_is_clean():
    async def body(server, dial):
        peer = RawClient(dial())
        await peer.handshake()
        await peer.send_raw(close_frame(1000))
        with trio.fail_after(5):
            await peer.read_until_close()
        await trio.sleep(0.1)
        return server.stats()

    stats = run(serving, body)
    assert stats["connections"] == 0 and stats["internal_errors"] == 0
