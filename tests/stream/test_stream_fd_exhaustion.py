"""Running out of file descriptors does not end the server (issue 12, observation 2).

With `ulimit -n 1024`, ~1,100 connections made `accept` raise EMFILE in the server's own
accept loop and `statemodel serve` exited 2. Here: the reference server in a child process
with RLIMIT_NOFILE = 64, real loopback sockets, more sessions than it has descriptors.
The verdict is a sequence of bounded waits (each a deadline, never a count reached in
wall time): the server reports accept errors, survives them, and serves a new client once
the others left."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap

import trio

from raw_websocket import OP_BINARY, RawClient, ws_frame
from statemodel.stream.client import Client
from statemodel.stream.frames import Frame, encode
from statemodel.stream.testapp import text

CHILD = textwrap.dedent("""
    import json, resource, sys, trio
    from statemodel.stream.server import Server
    from statemodel.stream.testapp import script_app
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    async def main():
        server = Server(script_app)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp, "127.0.0.1", 0)
            print("READY", port, flush=True)
            stdin = trio.lowlevel.FdStream(0)
            while data := await stdin.receive_some():
                for _ in range(data.count(b"\\n")):
                    print(json.dumps(server.stats()), flush=True)
            nursery.cancel_scope.cancel()

    trio.run(main)
""")

SESSIONS = 100  # well beyond the 64 descriptors the child may hold


async def ask_stats(proc) -> dict:
    await proc.stdin.send_all(b"\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = await proc.stdout.receive_some(1)
        if not chunk:
            raise AssertionError(f"the server process ended (exit code {proc.returncode})")
        line += chunk
    return json.loads(line)


async def hold_session(port: int) -> None:
    """One idle session (WebSocket + hello), held until cancelled; some never get in."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    try:
        peer = RawClient(stream)
        await peer.handshake()
        await peer.send_raw(ws_frame(OP_BINARY, encode(Frame("hello", {"v": 1}))))
        await trio.sleep_forever()
    finally:
        await trio.aclose_forcefully(stream)


async def scenario() -> tuple[dict, list[str], dict]:
    proc = await trio.lowlevel.open_process([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE)
    try:
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive_some(1)
        port = int(line.split()[1])
        async with trio.open_nursery() as holders:
            for _ in range(SESSIONS):
                holders.start_soon(hold_session, port)
            with trio.fail_after(60):  # deadline, not a measurement
                while (stats := await ask_stats(proc))["accept_errors"] == 0:
                    await trio.sleep(0.2)
            holders.cancel_scope.cancel()  # everyone leaves; the server sees EOFs

        async def connect():
            return await trio.open_tcp_stream("127.0.0.1", port)

        with trio.fail_after(60):
            async with Client(connect, rng=random.Random(0)).run() as client:
                got = [c async for c in client.request(json.dumps({"op": "batch", "commands": [
                    {"op": "emit", "chunks": [{"kind": "text", "seed": 3, "chars": 20}]}, {"op": "end"}]}))]
        after = await ask_stats(proc)
        return stats, got, after
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


def test_the_accept_loop_survives_descriptor_exhaustion():
    during, got, after = trio.run(scenario)
    assert during["accept_errors"] >= 1  # it did run out, and said so
    assert got == [text(3, 20)]  # and still serves once descriptors are free again
    assert after["internal_errors"] == 0
