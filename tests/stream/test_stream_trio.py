"""Reference server + client over in-memory streams on virtual time (MockClock).

Connections are cut deterministically by byte budgets (`Cut`), never by wall-clock timing.
"""

from __future__ import annotations

import functools
import json
import random

import pytest
import trio
import trio.testing

from statemodel.stream.client import Client, Connected, Disconnected, Reconnecting, Resumed
from statemodel.stream.config import Config
from statemodel.stream.errors import CloseCode, EndOfStream, SessionClosed, StreamError, StreamReset
from statemodel.stream.frames import Frame, encode
from statemodel.stream.server import Server
from statemodel.stream.testapp import blob, script_app, text

MiB = 1024 * 1024


def virtual_time(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0))

    return wrapper


class Cut(trio.abc.Stream):
    """A client-side stream that dies abruptly (both directions) after `budget` received bytes."""

    def __init__(self, inner: trio.abc.Stream, budget: int | None) -> None:
        self.inner, self.budget = inner, budget

    async def send_all(self, data) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None) -> bytes:
        if self.budget is not None and self.budget <= 0:
            await trio.aclose_forcefully(self.inner)
            raise trio.BrokenResourceError("cut by test")
        data = await self.inner.receive_some(max_bytes if self.budget is None else min(max_bytes or 65536, self.budget))
        if self.budget is not None:
            self.budget -= len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class Net:
    """Memory-stream network: each connect() pairs a client stream with server.handle_stream."""

    def __init__(self, nursery: trio.Nursery, server: Server, budgets=()):
        self.nursery, self.server, self.budgets = nursery, server, list(budgets)
        self.connects = 0

    async def connect(self) -> trio.abc.Stream:
        self.connects += 1
        c, s = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.server.handle_stream, s)
        self.last = Cut(c, self.budgets.pop(0) if self.budgets else None)
        return self.last


def cmd(**kw) -> str:
    return json.dumps(kw)


async def statuses(client: Client) -> list:
    out = []
    while True:
        try:
            out.append(client.status.receive_nowait())
        except trio.WouldBlock:
            return out


async def collect(stream) -> list:
    return [c async for c in stream]


@virtual_time
async def test_normal_streaming_text_bytes_json():
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            chunks = [{"kind": "text", "seed": 1, "chars": 1000}, {"kind": "bytes", "seed": 2, "size": 70_000},
                      {"kind": "json", "value": {"a": [1, 2]}}]
            got = await collect(client.request(cmd(op="batch", commands=[{"op": "emit", "chunks": chunks}, {"op": "end"}])))
            assert got == [text(1, 1000), blob(2, 70_000), '{"a":[1,2]}']
            assert (await statuses(client))[0] == Connected(client.proto.session)
        n.cancel_scope.cancel()


@virtual_time
async def test_large_response_interrupted_mid_stream_resumes_every_byte_once_in_order():
    """2.5 MiB in 64 KiB chunks plus one 3 MiB message; the transport is cut twice mid-stream."""
    chunks = [{"kind": "bytes", "seed": i, "size": 64 * 1024} for i in range(40)]
    chunks.append({"kind": "bytes", "seed": 99, "size": 3 * MiB})
    expected = [blob(i, 64 * 1024) for i in range(40)] + [blob(99, 3 * MiB)]
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server, budgets=[1 * MiB, 4 * MiB])  # second cut lands inside the 3 MiB message
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            with trio.fail_after(60):
                got = await collect(client.request(cmd(op="batch", commands=[{"op": "emit", "chunks": chunks}, {"op": "end"}])))
            assert [len(g) for g in got] == [len(e) for e in expected]
            assert got == expected
            events = await statuses(client)
            assert events.count(Resumed("recovered", None)) == 2, events
            assert not [e for e in events if isinstance(e, Resumed) and e.outcome != "recovered"]
            assert net.connects == 3
        n.cancel_scope.cancel()


@virtual_time
async def test_client_messages_reach_the_app_exactly_once_across_drops():
    seen: list[str] = []

    async def recording_app(request):
        async for msg in request.messages():
            seen.append(msg)
            yield msg
            if msg == "stop":
                return

    async with Server(recording_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server, budgets=[400, 300, 350, 500])
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            stream = await client.open(b"")
            sent = [f"m{i}" for i in range(30)] + ["stop"]
            for m in sent:
                await stream.send(m)
            with trio.fail_after(60):
                echoed = await collect(stream)
            assert echoed == sent
            assert seen == sent
            assert net.connects >= 3
        n.cancel_scope.cancel()


@virtual_time
async def test_server_restart_is_reported_as_reset_never_silent_loss():
    async with trio.open_nursery() as n:
        server = Server(script_app, rng=random.Random(1))
        await n.start(_enter, server)
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            stream = await client.open(cmd(op="emit", chunks=[{"kind": "text", "seed": 1, "chars": 5}]))
            assert await stream.receive() == text(1, 5)
            # restart: a fresh server (new epoch, no sessions) behind the same address
            net.server = Server(script_app, rng=random.Random(3))
            await n.start(_enter, net.server)
            await trio.aclose_forcefully(net.last)  # the old connection drops
            with pytest.raises(StreamReset) as info, trio.fail_after(60):
                await stream.receive()
            assert info.value.reason == "epoch_changed"
            events = await statuses(client)
            assert Resumed("reset", "epoch_changed") in events
            # the new session works
            assert await collect(client.request(cmd(op="batch", commands=[
                {"op": "emit", "chunks": [{"kind": "json", "value": 1}]}, {"op": "end"}]))) == ["1"]
        n.cancel_scope.cancel()


async def _enter(server: Server, task_status=trio.TASK_STATUS_IGNORED):
    async with server:
        task_status.started()
        await trio.sleep_forever()


@virtual_time
async def test_cancel_and_app_failure_are_sequenced_stream_errors():
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            failing = await client.open(cmd(op="fail", reason="boom"))
            with pytest.raises(StreamError, match="boom"):
                await failing.receive()
            waiting = await client.open(cmd(op="emit", chunks=[]))
            await waiting.cancel()
            with pytest.raises(StreamError, match="cancelled"), trio.fail_after(10):
                await waiting.receive()
            assert server.stats()["app_tasks"] == 0
        n.cancel_scope.cancel()


@virtual_time
async def test_cancel_sent_while_disconnected_survives_resume():
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server, budgets=[None])
        client = Client(net.connect, Config(backoff_base=1.0, backoff_jitter=0), rng=random.Random(2))
        async with client.run():
            stream = await client.open(cmd(op="emit", chunks=[{"kind": "text", "seed": 1, "chars": 3}]))
            assert await stream.receive() == text(1, 3)
            await trio.aclose_forcefully(net.last)
            while client.proto.link is not None:  # wait until the client noticed the drop
                await client._changed.wait()
            await stream.cancel()
            with pytest.raises(StreamError, match="cancelled"), trio.fail_after(30):
                await stream.receive()
        n.cancel_scope.cancel()


@virtual_time
async def test_context_from_both_sides_survives_resume():
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server, budgets=[600])
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            await client.set_context("user", {"id": 7})
            stream = await client.open(cmd(op="batch", commands=[
                {"op": "set_context", "key": "srv", "value": [1, 2]},
                {"op": "emit", "chunks": [{"kind": "bytes", "seed": 1, "size": 5000}]}, {"op": "end"}]))
            with trio.fail_after(30):
                assert await collect(stream) == [blob(1, 5000)]
            assert client.context == {"user": {"id": 7}, "srv": [1, 2]}
            assert server.proto.context(client.proto.session) == {"user": {"id": 7}, "srv": [1, 2]}
            assert net.connects >= 2
        n.cancel_scope.cancel()


class Silent(trio.abc.Stream):
    """A transport that accepts writes and never answers (black hole)."""

    async def send_all(self, data) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes=None) -> bytes:
        await trio.sleep_forever()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@virtual_time
async def test_wrap_client_stream_has_no_timeout_regression_handshake_is_bounded():
    """trio-websocket 0.12.2: wrap_client_stream waits forever for the opening handshake.
    Our client bounds it and gives up after max_reconnect_attempts."""

    async def connect():
        return Silent()

    cfg = Config(handshake_timeout=2, max_reconnect_attempts=2, backoff_base=0.1)
    async with Client(connect, cfg, rng=random.Random(0)).run() as client:
        with pytest.raises(SessionClosed, match="gave up after 2"), trio.fail_after(60):
            stream = await client.open(b"x")
            await stream.receive()
        events = await statuses(client)
        assert [type(e) for e in events] == [Disconnected, Reconnecting, Disconnected, Reconnecting, Disconnected]
        assert "timed out" in events[0].reason


@virtual_time
async def test_transport_dropping_during_handshake_then_recovering():
    """Cuts at 0 and 60 bytes land inside the WebSocket opening handshake (trio-websocket's
    abrupt-EOF path); the client keeps retrying with backoff and then works."""
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server, budgets=[0, 60, 200])
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            with trio.fail_after(60):
                got = await collect(client.request(cmd(op="batch", commands=[
                    {"op": "emit", "chunks": [{"kind": "text", "seed": 3, "chars": 2000}]}, {"op": "end"}])))
            assert got == [text(3, 2000)]
            assert net.connects == 4
        n.cancel_scope.cancel()


@virtual_time
async def test_half_open_connection_is_detected_by_heartbeat_and_replaced():
    """Also a regression test: trio-websocket 0.12.2's aclose(code) reports the local close
    reason as 1000; the client must still see (and retry on) our PEER_DEAD code."""
    cfg = Config(heartbeat_interval=1, dead_after=3)
    async with Server(script_app, cfg, rng=random.Random(1)) as server, trio.open_nursery() as n:
        blackholed = []

        async def connect():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            if not blackholed:
                blackholed.append(c)
                return HalfOpen(c)
            return c

        async with Client(connect, cfg, rng=random.Random(2)).run() as client:
            with trio.fail_after(30):
                got = await collect(client.request(cmd(op="batch", commands=[
                    {"op": "emit", "chunks": [{"kind": "text", "seed": 1, "chars": 10}]}, {"op": "end"}])))
            assert got == [text(1, 10)]
            events = await statuses(client)
            assert Disconnected(events[1].reason, int(CloseCode.PEER_DEAD)) == events[1]
        n.cancel_scope.cancel()


class HalfOpen(Cut):
    """Receives the handshake and welcome (first 400 bytes), then silently nothing more."""

    def __init__(self, inner):
        super().__init__(inner, None)
        self.left = 400

    async def receive_some(self, max_bytes=None) -> bytes:
        if self.left <= 0:
            await trio.sleep_forever()
        data = await self.inner.receive_some(min(max_bytes or 65536, self.left))
        self.left -= len(data)
        return data


@virtual_time
async def test_forged_resume_token_gets_4003_and_other_session_is_unaffected():
    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            stream = await client.open(cmd(op="emit", chunks=[{"kind": "text", "seed": 1, "chars": 3}]))
            assert await stream.receive() == text(1, 3)
            forger = Client(net.connect, Config(max_reconnect_attempts=0), rng=random.Random(3))
            forger.proto.session, forger.proto.epoch, forger.proto.token = client.proto.session, server.epoch, "x" * 43
            async with forger.run():
                with pytest.raises(SessionClosed) as info, trio.fail_after(10):
                    await (await forger.open(b"{}")).receive()
                assert info.value.code == CloseCode.FORGED_TOKEN
            await stream.send(cmd(op="emit", chunks=[{"kind": "text", "seed": 2, "chars": 3}]))
            assert await stream.receive() == text(2, 3)
        n.cancel_scope.cancel()


@virtual_time
async def test_server_closes_malformed_and_unknown_version_with_documented_codes():
    from trio_websocket import ConnectionClosed, wrap_client_stream

    async with Server(script_app, rng=random.Random(1)) as server, trio.open_nursery() as n:
        for message, code in [(b"\x00\x00\x00\x05{", CloseCode.MALFORMED_FRAME),
                              (encode(Frame("hello", {"v": 9})), CloseCode.UNSUPPORTED_VERSION),
                              ("text", CloseCode.MALFORMED_FRAME)]:
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            async with trio.open_nursery() as inner:
                ws = await wrap_client_stream(inner, c, "x", "/")
                await ws.send_message(message)
                with pytest.raises(ConnectionClosed) as info, trio.fail_after(10):
                    await ws.get_message()
                assert info.value.reason.code == code
                inner.cancel_scope.cancel()
        assert server.stats()["sessions"] == 0
        n.cancel_scope.cancel()


@virtual_time
async def test_frames_queued_during_a_send_go_out_without_waiting_for_a_wakeup():
    """Regression: the writer once took the outbox, sent it, then slept; frames queued while it
    was inside send_message() waited for the peer's ack timer. Back-to-back requests must
    complete in (virtual) zero time when no timer is involved."""
    cfg = Config(ack_interval=30.0, heartbeat_interval=100.0, dead_after=300.0)
    async with Server(script_app, cfg, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, cfg, rng=random.Random(2)).run() as client:
            start = trio.current_time()
            for i in range(20):
                got = await collect(client.request(cmd(op="batch", commands=[
                    {"op": "emit", "chunks": [{"kind": "bytes", "seed": i, "size": 300_000}]}, {"op": "end"}])))
                assert got == [blob(i, 300_000)]
            assert trio.current_time() - start < 1.0
        n.cancel_scope.cancel()


@virtual_time
async def test_client_closing_its_session_ends_it_on_the_server_at_once():
    """Close code 1000 from the client = the session is over: no waiting for session_ttl."""
    seen_gone = []

    async def endless(request):
        try:
            yield "first"
            await trio.sleep_forever()
        finally:
            seen_gone.append(request.stream_id)

    async with Server(endless, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            stream = await client.open(b"")
            assert await stream.receive() == "first"
            assert server.stats()["sessions"] == 1
        with trio.fail_after(5):
            while server.stats()["sessions"] or server.stats()["app_tasks"]:
                await trio.sleep(0.01)
        assert seen_gone == [1]
        n.cancel_scope.cancel()


@virtual_time
async def test_abandoning_a_request_cancels_the_server_app():
    stopped = trio.Event()

    async def endless(request):
        try:
            while True:
                yield "tick"
                await trio.sleep(1)
        finally:
            stopped.set()

    async with Server(endless, rng=random.Random(1)) as server, trio.open_nursery() as n:
        net = Net(n, server)
        async with Client(net.connect, rng=random.Random(2)).run() as client:
            from contextlib import aclosing

            async with aclosing(client.request(b"")) as chunks:
                async for chunk in chunks:
                    assert chunk == "tick"
                    break
            with trio.fail_after(10):
                await stopped.wait()
            assert server.stats()["app_tasks"] == 0
        n.cancel_scope.cancel()
