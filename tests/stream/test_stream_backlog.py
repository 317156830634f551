"""A server app that stops reading must not let one client fill the server's memory.

The server acks client messages on receipt, so the client's own replay bound does not hold
them back; `Config.app_backlog_bytes` does (found by the memory work: an app that never read
let a client park 100 MiB in the server while `buffered_bytes` said 0)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from statemodel.stream.client import Client
from statemodel.stream.config import Config, MiB
from statemodel.stream.errors import EndOfStream, StreamError
from statemodel.stream.server import Server


@pytest.mark.parametrize("reads", [False, True])
def test_an_app_that_stops_reading_fails_its_stream_with_app_backlog(reads):
    cfg = Config(app_backlog_bytes=2 * MiB)
    got: list[int] = []
    requests = []

    async def app(request):
        requests.append(request)
        if reads:
            async for msg in request.messages():
                got.append(len(msg))
                if len(got) == 40:
                    return
        else:
            await trio.sleep_forever()
        yield b""  # never reached by the non-reading app

    async def main():
        server = Server(app, cfg, rng=random.Random(0))
        async with server, trio.open_nursery() as nursery:
            async def connect():
                a, b = trio.testing.memory_stream_pair()
                nursery.start_soon(server.handle_stream, b)
                return a

            client = Client(connect, cfg, rng=random.Random(1))
            async with client.run():
                stream = await client.open("x")
                with trio.fail_after(60):
                    for _ in range(40):  # 40 MiB against a 2 MiB bound
                        try:
                            await stream.send(bytes(MiB))
                        except ValueError:  # the stream already failed
                            break
                    if reads:
                        with pytest.raises(EndOfStream):
                            await stream.receive()
                    else:
                        with pytest.raises(StreamError, match="app_backlog"):
                            while True:
                                await stream.receive()
                        assert requests[0]._backlog <= cfg.app_backlog_bytes
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    if reads:
        assert got == [MiB] * 40  # a reading app gets every message, however many


def test_the_backlog_bound_holds_per_session_not_only_per_stream():
    """256 streams x app_backlog_bytes each was 4 GiB of unread messages for one session."""
    cfg = Config(app_backlog_bytes=1 * MiB)

    async def app(request):
        await trio.sleep_forever()  # never reads
        yield b""

    async def main():
        server = Server(app, cfg, rng=random.Random(0))
        async with server, trio.open_nursery() as nursery:
            async def connect():
                a, b = trio.testing.memory_stream_pair()
                nursery.start_soon(server.handle_stream, b)
                return a

            client = Client(connect, cfg, rng=random.Random(1))
            failed = 0
            async with client.run():
                streams = [await client.open("x") for _ in range(20)]
                for stream in streams:  # 20 x 512 KiB against 1 MiB for the session
                    await stream.send(bytes(512 * 1024))
                await trio.sleep(1)
                peak = server.stats()["app_backlog_bytes"]
                for stream in streams:
                    with trio.move_on_after(1):
                        try:
                            await stream.receive()
                        except StreamError as exc:
                            failed += exc.reason == "app_backlog"
                after = server.stats()["app_backlog_bytes"]
                nursery.cancel_scope.cancel()
        return peak, failed, after

    peak, failed, after = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert peak <= cfg.app_backlog_bytes and failed == 18  # two fit; the others fail alone
    assert after == 2 * 512 * 1024  # the failed streams released theirs; two apps still hold one each


def test_an_app_that_ends_without_reading_releases_its_backlog():
    async def app(request):
        await trio.sleep(1)
        yield b"done"  # returns with the client's messages unread

    async def main():
        server = Server(app, Config(), rng=random.Random(0))
        async with server, trio.open_nursery() as nursery:
            async def connect():
                a, b = trio.testing.memory_stream_pair()
                nursery.start_soon(server.handle_stream, b)
                return a

            async with Client(connect, Config(), rng=random.Random(1)).run() as client:
                stream = await client.open("x")
                await stream.send(bytes(1000))
                await stream.send(bytes(1000))
                await trio.sleep(0.5)
                during = server.stats()["app_backlog_bytes"]
                assert [c async for c in stream] == [b"done"]
                after = server.stats()["app_backlog_bytes"]
            nursery.cancel_scope.cancel()
        return during, after

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == (2000, 0)
