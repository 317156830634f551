"""App-requested sizes have limits with documented errors (issue 12, observation 4c): the
default `demo` app honoured any size (a 300 MB request: +570 MiB RSS and a 2.4 s stall
of the event loop for every session). Virtual time, memory streams."""

from __future__ import annotations

import json
import random

import pytest
import trio
import trio.testing

from statemodel.stream import demo, testapp
from statemodel.stream.client import Client
from statemodel.stream.config import Config
from statemodel.stream.errors import StreamError
from statemodel.stream.server import Server


def run(fn, *args):
    return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def request(app, payload: str, config: Config = Config()) -> tuple[list, str | None, dict]:
    async with Server(app, config, rng=random.Random(1)) as server, trio.open_nursery() as n:
        async def connect():
            c, s = trio.testing.memory_stream_pair()
            n.start_soon(server.handle_stream, s)
            return c

        chunks, error = [], None
        async with Client(connect, config, rng=random.Random(2)).run() as client:
            stream = await client.open(payload)
            try:
                with trio.fail_after(30):
                    async for chunk in stream:
                        chunks.append(chunk)
            except StreamError as exc:
                error = exc.reason
            assert client.proto.link is not None and client.proto.link.ready  # the session lives
            stats = server.stats()
        n.cancel_scope.cancel()
    return chunks, error, stats


@pytest.fixture
def no_big_blobs(monkeypatch):
    """Refusal must come before any work: computing a huge chunk is itself the harm."""
    real_blob, real_text = testapp.blob, testapp.text

    def blob(seed, size):
        assert size <= 1 << 20, f"asked to compute {size} bytes"
        return real_blob(seed, size)

    def text(seed, chars):
        assert chars <= 1 << 20, f"asked to compute {chars} characters"
        return real_text(seed, chars)

    monkeypatch.setattr(testapp, "blob", blob)
    monkeypatch.setattr(testapp, "text", text)
    monkeypatch.setattr(demo, "blob", blob)
    monkeypatch.setattr(demo, "text", text)


@pytest.mark.parametrize("payload, expected", [
    ({"size": 300_000_000}, "bad_request: size must be a number in [0, 1048576] (an integer), got '300000000'"),
    ({"count": 10**9}, "bad_request: count must be a number in [0, 1000] (an integer), got '1000000000'"),
    ({"interval": -1}, "bad_request: interval must be a number in [0.0, 60.0], got '-1'"),
    ({"size": "big"}, "bad_request: size must be a number in [0, 1048576] (an integer), got 'big'"),
])
def test_the_demo_app_refuses_requests_beyond_its_limits_before_any_work(payload, expected, no_big_blobs):
    chunks, error, _ = run(request, demo.demo_app, json.dumps(payload))
    assert chunks == [] and error == expected


@pytest.mark.parametrize("spec", [{"kind": "bytes", "seed": 1, "size": 300_000_000},
                                  {"kind": "text", "seed": 1, "chars": testapp.MAX_CHARS + 1},
                                  {"kind": "bytes", "seed": 1, "size": -5}])
def test_the_script_app_refuses_chunks_beyond_its_limits_before_any_work(spec, no_big_blobs):
    chunks, error, _ = run(request, testapp.script_app, json.dumps({"op": "emit", "chunks": [spec]}))
    assert chunks == [] and error.startswith("bad_command: ")


def test_a_message_above_max_message_size_fails_its_stream_not_the_session():
    """The client would close 4005 (final) on such a message and lose every stream."""
    cfg = Config(max_message_size=100_000)

    async def big(request):
        yield "small"
        yield "é" * 60_000  # 120,000 bytes of UTF-8

    chunks, error, stats = run(request, big, "x", cfg)
    assert chunks == ["small"] and error.startswith("message_too_large")
    assert stats["internal_errors"] == 0 and stats["sessions"] == 1
