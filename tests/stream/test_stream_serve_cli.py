"""`statemodel serve`: a real process on loopback that a reference client can use, and a
clear exit-2 error when the port is taken. Wall clock, every wait bounded; no timing asserts."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys

import trio

from statemodel.cli import main
from statemodel.stream.client import Client
from statemodel.stream.testapp import text


def test_serve_reports_a_taken_port_as_exit_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    assert "cannot serve" in capsys.readouterr().err


def test_serve_process_streams_to_a_client_over_loopback():
    proc = subprocess.Popen([sys.executable, "-m", "statemodel", "serve", "--port", "0", "--app", "script"],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))

        async def run():
            async def connect():
                return await trio.open_tcp_stream("127.0.0.1", port)

            async with Client(connect, rng=random.Random(0)).run() as client:
                with trio.fail_after(20):
                    return [c async for c in client.request(json.dumps({"op": "batch", "commands": [
                        {"op": "emit", "chunks": [{"kind": "text", "seed": 4, "chars": 300}]}, {"op": "end"}]}))]

        assert trio.run(run) == [text(4, 300)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
