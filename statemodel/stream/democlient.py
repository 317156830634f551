"""README demo client: `python -m statemodel.stream.democlient --port N [--kill-after BYTES]`.

Streams the demo app's response from a running `statemodel serve`, abruptly kills its own TCP
connection after BYTES received (once), and shows that the stream resumes with nothing lost.
"""

from __future__ import annotations

import argparse
import hashlib

import trio

from .client import Client
from .errors import SessionClosed, StreamError, StreamReset


class _KillOnce(trio.abc.Stream):
    def __init__(self, inner: trio.abc.Stream, budget: int | None) -> None:
        self.inner, self.budget = inner, budget

    async def send_all(self, data) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None) -> bytes:
        if self.budget is not None and self.budget <= 0:
            await trio.aclose_forcefully(self.inner)  # like a pulled cable: no close frame
            raise trio.BrokenResourceError("connection killed by the demo")
        data = await self.inner.receive_some(max_bytes)
        if self.budget is not None:
            self.budget -= len(data)
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


async def main(host: str, port: int, kill_after: int | None, payload: str) -> None:
    budgets = [kill_after]

    async def connect() -> trio.abc.Stream:
        stream = await trio.open_tcp_stream(host, port)
        return _KillOnce(stream, budgets.pop() if budgets else None)

    client = Client(connect)
    async with client.run():
        async def show_status() -> None:
            async for event in client.status:
                print(f"  status: {event}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(show_status)
            digest, count, total = hashlib.sha256(), 0, 0
            with trio.fail_after(120):
                async for chunk in client.request(payload):
                    data = chunk.encode() if isinstance(chunk, str) else chunk
                    digest.update(data)
                    count, total = count + 1, total + len(data)
                    kind = "text" if isinstance(chunk, str) else "bytes"
                    print(f"chunk {count}: {kind} {len(data)} bytes")
            print(f"done: {count} chunks, {total} bytes, sha256 {digest.hexdigest()[:16]}")
            nursery.cancel_scope.cancel()


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--kill-after", type=int, default=200_000, help="bytes received before the kill (0 = never)")
    p.add_argument("--payload", default='{"count": 6, "size": 65536, "interval": 0.1}')
    a = p.parse_args()
    try:
        trio.run(main, a.host, a.port, a.kill_after or None, a.payload)
    except* (StreamError, StreamReset, SessionClosed) as group:  # the server said why: one line
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise SystemExit(f"failed: {leaf}") from None


if __name__ == "__main__":
    cli()
