"""Determinism self-check: run a seeded fault scenario on the sim and print its digest.

``python -m statemodel.net.selfcheck --seed 3 [--websocket]`` echoes seeded data over
a sim link (raw bytes, or real trio-websocket messages with frame-aware faults) while
a fault scenario runs, checks every byte came back, and prints the trace digest. Two
processes with the same seed must print the same digest (tests/net/test_determinism.py).
"""

from __future__ import annotations

import argparse
import random
import sys

import hypothesis  # noqa: F401  (makes trio's scheduler deterministic, see trio._core._run)
import trio
import trio.testing

from . import faults as F
from .scenario import run_scenario
from .sim import SimNetwork


def seed_trio_scheduler(seed: int) -> None:
    """Seed trio's scheduler RNG (private; the same one Hypothesis seeds per test)."""
    rng = getattr(getattr(trio, "_core")._run, "_r", None)
    if rng is not None:
        rng.seed(seed)


def raw_scenario(seed: int) -> F.Scenario:
    return F.Scenario((
        F.Step(0.0, F.Latency(seconds=0.01, jitter=0.05)),
        F.Step(0.3, F.Slice("s2c", max_bytes=5)),
        F.Step(0.6, F.Clog("c2s")),
        F.Step(1.2, F.Heal()),
        F.Step(1.3, F.Bandwidth(bytes_per_second=20_000)),
        F.Step(1.6, F.Partition()),
        F.Step(2.1, F.Heal()),
        F.Step(2.2, F.Latency("s2c", seconds=0.02, jitter=0.2)),
    ))


def ws_scenario(seed: int) -> F.Scenario:
    return F.Scenario((
        F.Step(0.0, F.SplitAtFrameBoundary()),
        F.Step(0.0, F.Latency(seconds=0.005, jitter=0.02)),
        F.Step(0.5, F.Slice("c2s", max_bytes=3)),
        F.Step(1.0, F.Heal()),
        F.Step(1.0, F.DelayCloseFrame(seconds=0.5)),
        F.Step(1.0, F.SplitAtFrameBoundary("s2c")),
    ))


def messages(seed: int, count: int = 40) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.choice([1, 10, 125, 126, 300, 70_000])) for _ in range(count)]


async def raw_echo(seed: int) -> SimNetwork:
    net = SimNetwork(seed)
    listener = net.listener()
    payloads = messages(seed)

    async def server():
        stream = await listener.accept()
        while data := await stream.receive_some():
            await stream.send_all(data)
        await stream.aclose()

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            await nursery.start(run_scenario, net, raw_scenario(seed))
            client = await net.connect()
            expected = b"".join(payloads)
            got = bytearray()

            async def reader():
                while data := await client.receive_some():
                    got.extend(data)

            nursery.start_soon(reader)
            for p in payloads:
                await client.send_all(p)
                await trio.sleep(0.05)
            await client.send_eof()
    if bytes(got) != expected:
        raise SystemExit(f"echo mismatch: {len(got)} of {len(expected)} bytes came back")
    return net


async def ws_echo(seed: int) -> SimNetwork:
    from trio_websocket import ConnectionClosed, wrap_client_stream, wrap_server_stream

    net = SimNetwork(seed)
    listener = net.listener()
    payloads = messages(seed)
    got: list[bytes] = []

    async def server(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        stream = await listener.accept()
        async with trio.open_nursery() as n:
            with trio.fail_after(30):
                request = await wrap_server_stream(n, stream, max_message_size=1 << 20)
                ws = await request.accept()
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                pass

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(server)
            await nursery.start(run_scenario, net, ws_scenario(seed))
            stream = await net.connect()
            async with trio.open_nursery() as n:
                with trio.fail_after(30):
                    ws = await wrap_client_stream(n, stream, "sim", "/", max_message_size=1 << 20)
                for p in payloads:
                    await ws.send_message(p)
                    got.append(await ws.get_message())
                    await trio.sleep(0.03)
                with trio.fail_after(30):
                    await ws.aclose()
    if got != payloads:
        raise SystemExit("websocket echo mismatch")
    return net


def run(seed: int, websocket: bool) -> str:
    seed_trio_scheduler(seed)
    net = trio.run(ws_echo if websocket else raw_echo, seed, clock=trio.testing.MockClock(autojump_threshold=0))
    return net.trace.digest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statemodel.net.selfcheck", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--websocket", action="store_true", help="echo trio-websocket messages instead of raw bytes")
    args = parser.parse_args(argv)
    print(run(args.seed, args.websocket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
