"""Nothing a peer sends ends the server: every per-connection failure is contained, answered
with its documented close code, logged once as one line and counted in `Server.stats()`,
and the other sessions keep going. Issue 12, observations 1 and 6. Virtual time."""

from __future__ import annotations

import json
import logging
import random

import pytest
import trio
import trio.testing

from raw_websocket import OP_BINARY, OP_PING, OP_TEXT, RawClient, close_frame, ws_frame
from statemodel.stream import protocol as P
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode, StreamError
from statemodel.stream.frames import Frame, decode, encode
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app, text

HELLO = encode(Frame("hello", {"v": 1}))


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]


@pytest.fixture
def server_log():
    handler = Records()
    logger = logging.getLogger("statemodel.stream.server")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


async def with_server(body, config: Config = Config()):
    """Run `body(server, dial, honest)` beside an honest session that must keep working."""
    async with Server(script_app, config, rng=random.Random(1)) as server, trio.open_nursery() as n:
        def dial():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            return c

        async def connect():
            return dial()

        async with Client(connect, config, rng=random.Random(2)).run() as honest:
            stream = await honest.open(json.dumps({"op": "emit", "chunks": [{"kind": "text", "seed": 1, "chars": 5}]}))
            assert await stream.receive() == text(1, 5)
            result = await body(server, dial)
            # The honest session never noticed.
            await stream.send(json.dumps({"op": "emit", "chunks": [{"kind": "text", "seed": 2, "chars": 7}]}))
            with trio.fail_after(10):
                assert await stream.receive() == text(2, 7)
            assert honest.proto.link is not None and honest.proto.link.ready
        n.cancel_scope.cancel()
    return result


async def answer_close(peer: RawClient) -> None:
    """Complete the closing handshake the server started, and let its handler finish (after
    garbage its parser may not read our reply: the server then waits close_timeout)."""
    if not peer.eof:
        await peer.send_raw(close_frame(1000))
    await trio.sleep(Config().close_timeout + 0.5)


async def raw(dial) -> RawClient:
    peer = RawClient(dial())
    await peer.handshake()
    return peer


def open_frame(sid: int, command: dict) -> bytes:
    return encode(Frame("open", {"s": sid, "q": 1, "k": "t"}, json.dumps(command).encode()))


# ---- observation 1: a lone surrogate in an error reason ended the process ------------------
def test_a_lone_surrogate_in_a_fail_reason_is_sent_back_exactly_and_the_server_lives(server_log):
    async def body(server, dial):
        peer = await raw(dial)
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        # valid JSON: "\ud800" is a lone surrogate, which UTF-8 cannot encode
        await peer.send_raw(ws_frame(OP_BINARY, open_frame(1, {"op": "fail", "reason": "x\ud800y"})))
        with trio.move_on_after(1):
            await peer.read_until_close()
        frames = [decode(m) for m in peer.messages if isinstance(m, bytes)]
        return [f.h.get("reason") for f in frames if f.t == "error"], server.stats()

    reasons, stats = run(with_server, body)
    assert reasons == ["x\ud800y"]  # escaped on the wire, the very same string after decoding
    assert stats["internal_errors"] == 0
    assert server_log.at(logging.WARNING) == []


def test_every_text_a_peer_can_make_us_echo_survives_lone_surrogates(server_log):
    """The class, not the instance: context keys and values the app sets from client input,
    close reasons quoting client input, and exceptions raised by the app."""
    async def body(server, dial):
        peer = await raw(dial)
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await peer.send_raw(ws_frame(OP_BINARY, open_frame(1, {"op": "batch", "commands": [
            {"op": "set_context", "key": "k\udfff", "value": ["\ud800", {"\udc00": "v"}]},
            {"op": "emit", "chunks": [{"kind": "json", "value": "\ud83d"}]},  # app: json.dumps escapes it
            {"op": "echo", "data": "x\udc80"}]})))  # the app yields text UTF-8 cannot carry
        await peer.send_raw(ws_frame(OP_BINARY, open_frame(2, {"op": "nope\ud800"})))  # StreamError quoting the op
        await trio.sleep(1)  # the app ran and its items went out
        # a close reason quoting client input: an unknown frame type with a surrogate
        await peer.send_raw(ws_frame(OP_BINARY, b'\x00\x00\x00\x10{"t":"\\ud800xx"}'))
        with trio.fail_after(5):
            code = await peer.read_until_close()
        await answer_close(peer)
        frames = [decode(m) for m in peer.messages if isinstance(m, bytes)]
        return code, frames, server.stats()

    code, frames, stats = run(with_server, body)
    ctx = [f.h for f in frames if f.t == "ctx"]
    assert ctx and ctx[0]["key"] == "k\udfff" and ctx[0]["value"] == ["\ud800", {"\udc00": "v"}]
    assert sorted(f.h["reason"] for f in frames if f.t == "error") == [
        "bad_chunk: the app yielded text that is not valid Unicode (surrogates not allowed at 1)",
        "bad_command: unknown op 'nope\\ud800'"]
    assert code is not None and code[0] == CloseCode.MALFORMED_FRAME
    assert stats["internal_errors"] == 0 and stats["closed_bad_input"] == 1
    assert server_log.at(logging.WARNING) == []


# ---- observation 6: crashes with no close code ----------------------------------------------
DECODE_CRASHES = {
    "20k nested arrays in a header": b"[" * 20_000,
    "superscript digit as a stream id": '{"t":"ack","a":{"²":1}}'.encode(),
    "arabic-indic digit as a stream id": '{"t":"ack","a":{"١":1}}'.encode(),
    "unhashable frame type": b'{"t":[]}',
    "integer of 5000 digits": b'{"t":"ack","a":{"1":' + b"9" * 5000 + b"}}",
    "number beyond float range": b'{"t":"ctx","s":0,"q":1,"key":"k","value":1e400}',
}


@pytest.mark.parametrize("case", sorted(DECODE_CRASHES))
def test_headers_that_crashed_the_handler_get_4000_and_end_the_session(case, server_log):
    header = DECODE_CRASHES[case]

    async def body(server, dial):
        peer = await raw(dial)
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await peer.send_raw(ws_frame(OP_BINARY, len(header).to_bytes(4, "big") + header))
        with trio.fail_after(5):
            code = await peer.read_until_close()
        await answer_close(peer)
        return code, server.stats()

    code, stats = run(with_server, body, Config(max_header_size=128 * 1024, max_frame_size=1 << 20))
    assert code is not None and code[0] == CloseCode.MALFORMED_FRAME, code
    assert stats["sessions"] == 1  # only the honest one: the bad one ended at once
    assert stats["internal_errors"] == 0 and stats["closed_bad_input"] == 1
    assert server_log.at(logging.WARNING) == []
    assert len([r for r in server_log.records if "bad input" in r.getMessage()]) == 1  # one INFO line


WS_GARBAGE = {
    # name: (raw bytes after the handshake, documented close code)
    "invalid UTF-8 in a text message": (ws_frame(OP_TEXT, b"\xff\xfe"), CloseCode.WS_INVALID_DATA),
    "invalid UTF-8 in a close reason": (close_frame(1000, b"\xff"), CloseCode.WS_INVALID_DATA),
    "reserved opcode": (ws_frame(0x3, b"x"), CloseCode.WS_PROTOCOL_ERROR),
    "reserved bit set": (ws_frame(OP_BINARY, b"x", rsv=4), CloseCode.WS_PROTOCOL_ERROR),
    "close code 1005 on the wire": (close_frame(1005), CloseCode.WS_PROTOCOL_ERROR),
    "fragmented ping": (ws_frame(OP_PING, b"x", fin=False), CloseCode.WS_PROTOCOL_ERROR),
}


@pytest.mark.parametrize("when", ["before hello", "after hello"])
@pytest.mark.parametrize("case", sorted(WS_GARBAGE))
def test_websocket_level_garbage_gets_1002_or_1007_and_ends_the_session(case, when, server_log):
    """Upstream behaviour (trio-websocket 0.12.2): wsproto reports a parse failure as a close
    nobody sent; the library sent no close frame and we took it for the peer's close and
    kept the session for session_ttl (200 runs -> 200 parked sessions)."""
    garbage, expected = WS_GARBAGE[case]

    async def body(server, dial):
        peer = await raw(dial)
        if when == "after hello":
            await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await peer.send_raw(garbage)
        with trio.fail_after(5):
            code = await peer.read_until_close()
        await answer_close(peer)
        return code, server.stats()

    code, stats = run(with_server, body)
    assert code is not None and code[0] == expected, code
    assert stats["sessions"] == 1 and stats["connections"] == 1  # only the honest one is left
    assert stats["closed_bad_input"] == 1 and stats["internal_errors"] == 0
    assert server_log.at(logging.WARNING) == []


def test_a_ping_after_our_close_frame_is_not_a_crash(server_log):
    """Upstream #184 (trio-websocket 0.12.2): a ping arriving while our close handshake is
    under way made the library answer with a pong wsproto refuses; the reader task died
    and every such connection logged a ~1.7 KB traceback (3,000 of 3,000 in a soak)."""
    async def body(server, dial):
        codes = []
        for _ in range(3):
            peer = await raw(dial)
            await peer.send_raw(ws_frame(OP_BINARY, HELLO))
            await peer.send_raw(ws_frame(OP_BINARY, b"\x00\x00"))  # truncated frame: 4000
            with trio.fail_after(5):
                codes.append(await peer.read_until_close())
            # The server now waits (close_timeout) for our close reply: ping it instead.
            await peer.send_raw(ws_frame(OP_PING, b"are you there"))
            await trio.sleep(0.1)
            await peer.send_raw(close_frame(1000))
            await trio.sleep(Config().close_timeout + 1)
        return codes, server.stats()

    codes, stats = run(with_server, body)
    assert [c[0] for c in codes] == [CloseCode.MALFORMED_FRAME] * 3
    assert stats["internal_errors"] == 0 and stats["connections"] == 1
    assert server_log.at(logging.WARNING) == []


# ---- the class: any exception of ours is contained ------------------------------------------
def test_an_exception_in_the_core_closes_1011_logs_one_line_and_counts(server_log, monkeypatch):
    real = P.ServerProtocol._frame

    def buggy(self, s, f, now, conn):
        if f.t == "open" and f.sid == 7:
            raise KeyError("a bug in the core")
        return real(self, s, f, now, conn)

    monkeypatch.setattr(P.ServerProtocol, "_frame", buggy)

    async def body(server, dial):
        peer = await raw(dial)
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await peer.send_raw(ws_frame(OP_BINARY, open_frame(7, {"op": "emit", "chunks": []})))
        with trio.fail_after(5):
            code = await peer.read_until_close()
        await answer_close(peer)
        return code, server.stats()

    code, stats = run(with_server, body)
    assert code is not None and code[0] == CloseCode.INTERNAL_ERROR
    assert stats["internal_errors"] == 1 and stats["closed_internal_error"] == 1
    assert stats["sessions"] == 1  # its session ended (state may be half-updated); the honest one lives
    errors = server_log.at(logging.ERROR)
    assert len(errors) == 1 and errors[0].exc_info is None and "\n" not in errors[0].getMessage()
    assert "KeyError" in errors[0].getMessage()


def test_an_exception_in_the_app_machinery_fails_only_that_stream(server_log, monkeypatch):
    real = P.ServerProtocol.emit

    def buggy(self, session, sid, chunk, now):
        if chunk == "boom":
            raise RuntimeError("emit broke")
        return real(self, session, sid, chunk, now)

    monkeypatch.setattr(P.ServerProtocol, "emit", buggy)

    async def body(server, dial):
        async def connect():
            return dial()

        async with Client(connect, rng=random.Random(5)).run() as client:
            stream = await client.open(json.dumps({"op": "echo", "data": "boom"}))
            with pytest.raises(StreamError) as info, trio.fail_after(5):
                await stream.receive()
        return info.value.reason, server.stats()

    reason, stats = run(with_server, body)
    assert reason == "internal_error"
    assert stats["internal_errors"] == 1
    assert len(server_log.at(logging.ERROR)) == 1


def test_an_exception_in_the_session_timer_is_contained(server_log, monkeypatch):
    calls = []
    real = P.ServerProtocol.on_timer

    def buggy(self, now):
        calls.append(now)
        if len(calls) == 1:
            raise ZeroDivisionError("timer broke")
        return real(self, now)

    monkeypatch.setattr(P.ServerProtocol, "on_timer", buggy)

    async def body(server, dial):
        peer = await raw(dial)
        await peer.send_raw(ws_frame(OP_BINARY, HELLO))
        await peer.send_raw(close_frame(1001))  # leaves: its session waits for session_ttl
        await trio.sleep(Config().session_ttl + 5)
        return server.stats()

    stats = run(with_server, body)
    assert stats["internal_errors"] == 1 and len(calls) >= 2
    assert stats["sessions"] == 1  # the timer ran again and expired the departed session
