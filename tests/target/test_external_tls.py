"""wss:// targets: TLS from the reference client to the server, through the proxy."""

from __future__ import annotations

import functools
import json
import random
import shutil
import ssl
import subprocess

import pytest
import trio

from statemodel.machine.options import MachineOptions
from statemodel.net import faults as F
from statemodel.stream.server import Server
from statemodel.stream.testapp import script_app
from statemodel.target.external import REAL_TIME_CONFIG, ExternalTarget


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_wss_target_round_trip_and_frame_faults_skipped(certificate) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    chunks = []

    async def main():
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                server = Server(script_app, REAL_TIME_CONFIG, rng=random.Random(0))
                async with server:
                    async def handle(stream):
                        await server.handle_stream(trio.SSLStream(stream, server_ctx, server_side=True))

                    listeners = await nursery.start(functools.partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
                    port = listeners[0].socket.getsockname()[1]
                    url = f"wss://localhost:{port}/"
                    target = ExternalTarget(MachineOptions(target=url, transport="tcp"), 0, ssl_context=client_ctx)
                    await target.start(nursery)
                    assert target.apply(F.SplitAtFrameBoundary(), None) is False  # TLS records, not frames
                    assert target.apply(F.Latency(seconds=0.001), None) is True

                    async def dial():
                        stream, _ = await target.dial()
                        return stream

                    client = target.new_client(dial, random.Random(1))
                    command = {"op": "emit", "chunks": [{"kind": "text", "seed": 1, "chars": 50}]}
                    expected = ExternalTarget.expected_chunks(command)
                    async with client.run():
                        stream = await client.open(json.dumps(command).encode())
                        for _ in expected:
                            chunks.append(await stream.receive())
                        await stream.send(json.dumps({"op": "end"}).encode())
                    await target.stop()
                    nursery.cancel_scope.cancel()

    trio.run(main)
    assert chunks == ExternalTarget.expected_chunks({"op": "emit", "chunks": [{"kind": "text", "seed": 1, "chars": 50}]})
