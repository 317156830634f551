"""Reference server and client over real loopback TCP (wall clock: every await is bounded
with fail_after and nothing asserts on timing)."""

from __future__ import annotations

import json
import random

import trio

from statemodel.stream.client import Client, Resumed
from statemodel.stream.config import Config
from statemodel.stream.server import Server
from statemodel.stream.testapp import blob, script_app

MiB = 1024 * 1024


class KillAfter(trio.abc.Stream):
    """Abruptly closes the TCP socket (no WebSocket close) after `budget` received bytes."""

    def __init__(self, inner, budget):
        self.inner, self.budget = inner, budget

    async def send_all(self, data):
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self):
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes=None):
        if self.budget is not None and self.budget <= 0:
            await trio.aclose_forcefully(self.inner)
            raise trio.BrokenResourceError("killed by test")
        data = await self.inner.receive_some(max_bytes)
        if self.budget is not None:
            self.budget -= len(data)
        return data

    async def aclose(self):
        await self.inner.aclose()


def test_loopback_tcp_2mib_response_killed_mid_stream_resumes_exactly():
    async def main():
        cfg = Config(backoff_base=0.01)
        server = Server(script_app, cfg, rng=random.Random(1))
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
            budgets = [700_000, 500_000]  # both kills land inside the 2 MiB message
            connects = []

            async def connect():
                connects.append(1)
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                return KillAfter(stream, budgets.pop(0) if budgets else None)

            client = Client(connect, cfg, rng=random.Random(2))
            payload = json.dumps({"op": "batch", "commands": [
                {"op": "emit", "chunks": [{"kind": "bytes", "seed": 5, "size": 2 * MiB + 12345},
                                          {"kind": "bytes", "seed": 6, "size": 1000}]},
                {"op": "end"}]})
            async with client.run():
                with trio.fail_after(30):
                    got = [c async for c in client.request(payload)]
                statuses = []
                while True:
                    try:
                        statuses.append(client.status.receive_nowait())
                    except trio.WouldBlock:
                        break
            assert got == [blob(5, 2 * MiB + 12345), blob(6, 1000)]
            assert len(connects) == 3
            assert statuses.count(Resumed("recovered", None)) == 2, statuses
            nursery.cancel_scope.cancel()

    trio.run(main)
