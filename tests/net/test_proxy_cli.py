"""`statemodel proxy` as a standalone process: forwards bytes, obeys its control API."""

from __future__ import annotations

import re
import subprocess
import sys
from functools import partial

import trio

from statemodel.cli import proxy as proxy_cli
from statemodel.cli import build_parser

from test_tcp_proxy import LOOPBACK, echo_upstream, http, read_exactly


def test_cli_parses_host_port_and_rejects_garbage():
    args = build_parser().parse_args(["proxy", "--upstream", "127.0.0.1:80", "--control", "[::1]:0"])
    assert args.upstream == ("127.0.0.1", 80) and args.control == ("::1", 0)
    assert args.listen == ("127.0.0.1", 0)
    assert proxy_cli.HELP


def test_standalone_proxy_process_forwards_and_is_controllable():
    async def main():
        async with trio.open_nursery() as nursery:
            port = await echo_upstream(nursery)
            proc = await nursery.start(partial(
                trio.run_process,
                [sys.executable, "-m", "statemodel", "proxy", "--listen", f"{LOOPBACK}:0",
                 "--upstream", f"{LOOPBACK}:{port}", "--control", f"{LOOPBACK}:0"],
                stdout=subprocess.PIPE, check=False,
            ))
            try:
                line = b""
                with trio.fail_after(30):
                    while not line.endswith(b"\n"):
                        chunk = await proc.stdout.receive_some(1)
                        assert chunk, "proxy exited before announcing its ports"
                        line += chunk
                m = re.search(r"on 127\.0\.0\.1:(\d+) .*control on http://127\.0\.0\.1:(\d+)", line.decode())
                assert m, line
                pport, cport = int(m[1]), int(m[2])
                with trio.fail_after(10):
                    client = await trio.open_tcp_stream(LOOPBACK, pport)
                await client.send_all(b"through")
                assert await read_exactly(client, 7) == b"through"
                status, _ = await http(cport, "POST", "/faults", {"fault": "Abort"})
                assert status == 201
                with trio.fail_after(10):
                    try:
                        assert await client.receive_some(10) == b""
                    except trio.BrokenResourceError:
                        pass
                assert (await http(cport, "GET", "/links")) == (200, {"links": []})
            finally:
                proc.terminate()
            nursery.cancel_scope.cancel()

    trio.run(main)
