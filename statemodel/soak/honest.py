"""Honest sessions for the soak: stream seeded data through faults and check every byte.

Each session loops over streams: open with a seeded `emit` command, send a few `echo`
messages (each must come back exactly once), end, and compare what arrived with what the
scripted app must produce (PROTOCOL.md appendix A). On real time a stuck stream is a
failure after `stream_timeout`, never a hang.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import trio

from statemodel.stream.client import Client, Resumed
from statemodel.stream.config import Config
from statemodel.stream.errors import SessionClosed, StreamError, StreamReset
from statemodel.target.base import scripted_chunks


@dataclass
class HonestStats:
    streams: int = 0
    chunks: int = 0
    bytes: int = 0
    echoes: int = 0
    reconnects: int = 0
    violations: list[str] = field(default_factory=list)


def chunk_specs(rng: random.Random) -> list[dict]:
    """Mostly small chunks, some of a few fragments, rarely a 2 MiB one (DESIGN.md targets)."""
    specs = []
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        seed = rng.getrandbits(32)
        if roll < 0.45:
            specs.append({"kind": "text", "seed": seed, "chars": rng.randint(0, 2000)})
        elif roll < 0.9:
            specs.append({"kind": "bytes", "seed": seed, "size": rng.randint(0, 200_000)})
        elif roll < 0.97:
            specs.append({"kind": "json", "value": {"n": seed, "s": "é"}})
        else:
            specs.append({"kind": "bytes", "seed": seed, "size": 2 << 20})
    return specs


async def honest_session(index: int, dial, config: Config, seed: int, stats: HonestStats,
                         stop: trio.Event, stream_timeout: float = 120.0) -> None:
    rng = random.Random(seed * 7919 + index)
    client = Client(dial, config, random.Random(seed * 104729 + index))

    async def watch_status() -> None:
        async for status in client.status:  # unbounded channel: must be drained in a long run
            if isinstance(status, Resumed):
                stats.reconnects += 1
                if status.outcome != "recovered":
                    stats.violations.append(f"session {index}: resumed {status.outcome} ({status.reason}) "
                                            "although the server never restarted")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_status)
        async with client.run():
            n = 0
            while not stop.is_set():
                n += 1
                label = f"session {index} stream {n}"
                try:
                    with trio.fail_after(stream_timeout):
                        await one_stream(client, rng, index, n, stats)
                except trio.TooSlowError:
                    stats.violations.append(f"{label}: not finished within {stream_timeout:g}s")
                except (StreamReset, StreamError, SessionClosed) as exc:
                    stats.violations.append(f"{label}: {exc}")
                except AssertionError as exc:
                    stats.violations.append(f"{label}: {exc}")
                if stats.violations:
                    break
        nursery.cancel_scope.cancel()


def _describe(chunk: str | bytes) -> str:
    kind = "text" if isinstance(chunk, str) else "bytes"
    return f"{kind} of {len(chunk)} {repr(chunk[:24])}"


async def one_stream(client: Client, rng: random.Random, index: int, n: int, stats: HonestStats) -> None:
    command = {"op": "emit", "chunks": chunk_specs(rng)}
    echoes = [f"echo {index}/{n}/{i} ünï" for i in range(rng.randint(0, 3))]
    expected = scripted_chunks(command) + echoes
    stream = await client.open(json.dumps(command).encode())
    for e in echoes:
        await stream.send(json.dumps({"op": "echo", "data": e}).encode())
    await stream.send(b'{"op":"end"}')
    got = 0
    async for chunk in stream:
        assert got < len(expected), f"stream {n}: extra chunk #{got + 1} ({len(chunk)} long): duplicated or invented"
        assert chunk == expected[got], (
            f"stream {n}: chunk #{got + 1} differs from what was sent (lost/reordered): got "
            f"{_describe(chunk)}, expected {_describe(expected[got])}")
        got += 1
        stats.chunks += 1
        stats.bytes += len(chunk)
    assert got == len(expected), f"stream {n}: ended after {got} of {len(expected)} chunks (silent loss)"
    stats.streams += 1
    stats.echoes += len(echoes)
