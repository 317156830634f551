"""Bad input against the trio shells: each case gets its documented close code (or a clear
exception), and a well-behaved session running alongside is unaffected. Virtual time."""

from __future__ import annotations

import functools
import json
import random

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, wrap_client_stream, wrap_server_stream

from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode, SessionClosed
from statemodel.stream.frames import Frame, encode
from statemodel.stream.server import Server
from statemodel.stream.testapp import blob, script_app, text


def virtual_time(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0))

    return wrapper


HELLO = encode(Frame("hello", {"v": 1}))
OPEN = encode(Frame("open", {"s": 1, "q": 1, "k": "t"}, json.dumps({"op": "emit", "chunks": []}).encode()))

CASES = {
    "truncated header": ([b"\x00\x00\x00\x09{\"t\":"], CloseCode.MALFORMED_FRAME),
    "not JSON": ([b"\x00\x00\x00\x03abc"], CloseCode.MALFORMED_FRAME),
    "text WebSocket message": (["hello"], CloseCode.MALFORMED_FRAME),
    "unknown frame type": ([encode(Frame("bogus"))], CloseCode.MALFORMED_FRAME),
    "unknown version": ([encode(Frame("hello", {"v": 2}))], CloseCode.UNSUPPORTED_VERSION),
    "frame before hello": ([OPEN], CloseCode.PROTOCOL_VIOLATION),
    "second hello": ([HELLO, HELLO], CloseCode.PROTOCOL_VIOLATION),
    "ack beyond sent": ([HELLO, encode(Frame("ack", {"a": {"1": 5}}))], CloseCode.PROTOCOL_VIOLATION),
    "gap in sequence": ([HELLO, OPEN, encode(Frame("cancel", {"s": 1, "q": 3}))], CloseCode.PROTOCOL_VIOLATION),
    "unknown stream": ([HELLO, encode(Frame("data", {"s": 7, "q": 1, "fin": True, "k": "b"}))], CloseCode.PROTOCOL_VIOLATION),
    "server-only item": ([HELLO, encode(Frame("end", {"s": 1, "q": 1}))], CloseCode.PROTOCOL_VIOLATION),
    "oversized frame": ([HELLO, encode(Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}, b"x" * 5000))],
                        CloseCode.FRAME_TOO_LARGE),
    "resume of unknown session with bad fields": ([encode(Frame("hello", {"v": 1, "resume": {"session": 1}}))],
                                                  CloseCode.MALFORMED_FRAME),
}


async def raw_session(nursery, server, messages):
    """Speak raw frames to the server; return the close code it sent."""
    c, s = trio.testing.memory_stream_pair()
    nursery.start_soon(server.handle_stream, s)
    async with trio.open_nursery() as inner:
        ws = await wrap_client_stream(inner, c, "x", "/")
        for m in messages:
            await ws.send_message(m)
        with pytest.raises(ConnectionClosed) as info, trio.fail_after(30):
            while True:
                await ws.get_message()
        inner.cancel_scope.cancel()
    return info.value.reason.code, info.value.reason.reason


@pytest.mark.parametrize("case", sorted(CASES))
@virtual_time
async def test_server_rejects_bad_input_with_documented_code_and_others_continue(case):
    messages, expected = CASES[case]
    cfg = Config(max_frame_size=4096, fragment_size=1024)
    async with Server(script_app, cfg, rng=random.Random(1)) as server, trio.open_nursery() as n:

        async def connect():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            return c

        async with Client(connect, cfg, rng=random.Random(2)).run() as good:
            stream = await good.open(json.dumps({"op": "emit", "chunks": [{"kind": "text", "seed": 1, "chars": 9}]}))
            assert await stream.receive() == text(1, 9)
            code, reason = await raw_session(n, server, messages)
            assert code == expected, reason
            assert reason  # a message a person can read
            await stream.send(json.dumps({"op": "emit", "chunks": [{"kind": "bytes", "seed": 2, "size": 3000}]}))
            with trio.fail_after(10):
                assert await stream.receive() == blob(2, 3000)
            assert good.proto.link is not None and good.proto.link.ready
        n.cancel_scope.cancel()


@virtual_time
async def test_client_that_never_acks_keeps_server_memory_bounded():
    cfg = Config(replay_max_bytes=256 * 1024, fragment_size=16 * 1024)
    async with Server(script_app, cfg, rng=random.Random(1)) as server, trio.open_nursery() as n:
        c, s = trio.testing.memory_stream_pair()
        n.start_soon(server.handle_stream, s)
        async with trio.open_nursery() as inner:
            ws = await wrap_client_stream(inner, c, "x", "/")
            await ws.send_message(HELLO)
            chunks = [{"kind": "bytes", "seed": i, "size": 32 * 1024} for i in range(200)]  # 6.4 MB asked for
            await ws.send_message(encode(Frame("open", {"s": 1, "q": 1, "k": "t"},
                                               json.dumps({"op": "emit", "chunks": chunks}).encode())))
            peak = frames = 0
            with trio.move_on_after(60):  # virtual: a minute of heartbeats; the client never acks
                while True:
                    msg = await ws.get_message()
                    frames += 1
                    if msg[4:20].startswith(b'{"t":"ping"'):
                        await ws.send_message(encode(Frame("pong", {"a": {}})))  # alive, acks nothing
                    peak = max(peak, server.stats()["buffered_bytes"])
            assert frames > 16  # data up to the bound, then heartbeats
            assert 0 < peak <= cfg.replay_max_bytes + 32 * 1024
            assert server.stats()["app_tasks"] == 1
            inner.cancel_scope.cancel()
        n.cancel_scope.cancel()


async def fake_server(stream, frames):
    """A broken server: accepts the WebSocket, ignores hello, sends `frames`."""
    async with trio.open_nursery() as n:
        req = await wrap_server_stream(n, stream)
        ws = await req.accept()
        await ws.get_message()
        for f in frames:
            await ws.send_message(f)
        with trio.move_on_after(5):
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed:
                pass  # the client closed on us: expected
        n.cancel_scope.cancel()


WELCOME = {"v": 1, "session": "s", "token": "t", "epoch": "e", "outcome": "new", "recv": {}, "lost": {}}


@pytest.mark.parametrize("frames, code", [
    ([b"\x00\x00"], CloseCode.MALFORMED_FRAME),
    ([encode(Frame("welcome", {**WELCOME, "v": 3}))], CloseCode.UNSUPPORTED_VERSION),
    ([encode(Frame("data", {"s": 1, "q": 1, "fin": True, "k": "b"}))], CloseCode.PROTOCOL_VIOLATION),
    ([encode(Frame("welcome", WELCOME)), encode(Frame("data", {"s": 4, "q": 1, "fin": True, "k": "b"}))],
     CloseCode.PROTOCOL_VIOLATION),
    ([encode(Frame("welcome", {**WELCOME, "recv": {"1": 9}}))], CloseCode.PROTOCOL_VIOLATION),
])
@virtual_time
async def test_client_rejects_bad_server_with_final_close_code(frames, code):
    async with trio.open_nursery() as n:
        async def connect():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(fake_server, s, frames)
            return c

        async with Client(connect, rng=random.Random(0)).run() as client:
            with pytest.raises(SessionClosed) as info, trio.fail_after(30):
                await (await client.open(b"x")).receive()
            assert info.value.code == code, info.value
        n.cancel_scope.cancel()


@virtual_time
async def test_superseded_connection_gets_4006():
    """Fencing: a newer connection resuming the session closes the older one with SUPERSEDED."""
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        c, s = trio.testing.memory_stream_pair()
        n.start_soon(server.handle_stream, s)
        async with trio.open_nursery() as inner:
            old = await wrap_client_stream(inner, c, "x", "/")
            await old.send_message(HELLO)
            welcome = json.loads((await old.get_message())[4:])
            c2, s2 = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s2)
            new = await wrap_client_stream(inner, c2, "x", "/")
            await new.send_message(encode(Frame("hello", {"v": 1, "resume": {
                "session": welcome["session"], "token": welcome["token"], "epoch": welcome["epoch"], "recv": {}}})))
            assert json.loads((await new.get_message())[4:])["outcome"] == "recovered"
            with pytest.raises(ConnectionClosed) as info, trio.fail_after(10):
                while True:
                    await old.get_message()
            assert info.value.reason.code == CloseCode.SUPERSEDED
            inner.cancel_scope.cancel()
        n.cancel_scope.cancel()
