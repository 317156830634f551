"""Process-level pressure on a server in a child process: file descriptors and pre-hello memory.

What only a real process shows: `accept` failing with EMFILE once the process is out of file
descriptors (run the server under a low ``RLIMIT_NOFILE``: `limit_fds`), and the RSS that
pre-hello connections pin with a large frame in progress. Each function opens its own TCP
connections to the server and returns what it saw; the caller judges with the process in
view (alive? RSS? fds?) and then checks that an honest client is still served
(`honest_request`).
"""

from __future__ import annotations

import random
import resource
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from statemodel.hostile.fairness import REQUEST
from statemodel.hostile.wire import OP_BINARY, Wire, ws_frame
from statemodel.stream.client import Client
from statemodel.stream.config import Config


def limit_fds(n: int):
    """A ``preexec_fn`` that lowers the child's soft and hard RLIMIT_NOFILE to ``n``."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


@dataclass
class Opened:
    connected: int = 0  # TCP connections the kernel completed (the server may not have accepted them)
    failed: int = 0  # connect() failed (refused, reset, timed out)


async def fd_exhaustion(host: str, port: int, count: int, hold: float, timeout: float = 5.0) -> Opened:
    """Open ``count`` idle TCP connections at once (no upgrade, nothing sent), hold them for
    ``hold`` seconds, then close them all."""
    seen = Opened()
    async with AsyncExitStack() as stack:
        for _ in range(count):
            try:
                with trio.fail_after(timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError):
                seen.failed += 1
                continue
            stack.push_async_callback(trio.aclose_forcefully, stream)
            seen.connected += 1
        await trio.sleep(hold)
    return seen


async def prehello_frames(host: str, port: int, count: int, frame_size: int, hold: float,
                          timeout: float = 5.0) -> Opened:
    """``count`` WebSockets that each send a binary frame announcing ``frame_size`` bytes and
    all of it but the last byte, never a hello; held for ``hold`` seconds, then closed."""
    seen = Opened()

    async def dial():
        return await trio.open_tcp_stream(host, port)

    async with AsyncExitStack() as stack:
        for i in range(count):
            try:
                wire = await Wire.open(dial, timeout, mask=random.Random(i).randbytes(4))
            except (OSError, trio.TooSlowError, trio.BrokenResourceError):
                seen.failed += 1
                continue
            stack.push_async_callback(wire.aclose)
            seen.connected += 1
            head = ws_frame(OP_BINARY, b"", length=frame_size, mask=wire.mask)
            try:
                await wire.send_raw(head + bytes(frame_size - 1))
            except (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server refused it early: all the better
        await trio.sleep(hold)
    return seen


async def honest_request(host: str, port: int, config: Config = Config(), timeout: float = 30.0) -> float:
    """One small request by the reference client on a fresh session; its latency in seconds
    (raises ``trio.TooSlowError`` past ``timeout``)."""
    async def dial():
        return await trio.open_tcp_stream(host, port)

    with trio.fail_after(timeout):
        async with Client(dial, config, random.Random(0)).run() as client:
            start = trio.current_time()
            stream = await client.open(REQUEST)
            async for _chunk in stream:
                pass
            return trio.current_time() - start
