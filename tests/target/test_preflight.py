"""Preflight (issue 13.1): a target that cannot be tested is named as such before any example
runs, in one line, and `statemodel fuzz` exits 2. Each foreign server here is real, on
loopback, started by the test; every probe step has its own bound."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, serve_websocket

from statemodel.machine import MachineOptions
from statemodel.stream.config import Config
from statemodel.stream.demo import demo_app
from statemodel.stream.server import Server
from statemodel.target.preflight import TargetUnavailable, preflight

REPO = Path(__file__).parent.parent.parent


@contextmanager
def foreign_server(kind: str):
    """A loopback server of one foreign ``kind`` in a helper thread's own trio run; yields
    its port. ``silent`` accepts and never answers; ``http`` answers 404; ``echo_ws`` is a
    WebSocket echo server (not PROTOCOL.md); ``demo`` is PROTOCOL.md without the scripted app."""
    ready, box = threading.Event(), {}

    async def silent(stream):
        with trio.move_on_after(30):
            async for _ in stream:
                pass

    async def http(stream):
        with trio.move_on_after(30):
            await stream.receive_some(4096)
            await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    async def garbage(stream):  # bytes that are not HTTP where the handshake's answer goes
        with trio.move_on_after(30):
            await stream.receive_some(4096)
            await stream.send_all(b"\x00\xff" * 100)
            await trio.sleep(30)

    async def closes(stream):  # accepts, then closes at once
        await stream.aclose()

    async def http10(stream):  # HTTP/1.0 200 with a body, no upgrade
        with trio.move_on_after(30):
            await stream.receive_some(4096)
            await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>hi</html>")
            await stream.aclose()

    async def echo_ws(request):
        ws = await request.accept()
        with trio.move_on_after(30):
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                pass

    async def main():
        box["token"] = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as box["scope"]:
            async with trio.open_nursery() as nursery:
                if kind == "echo_ws":
                    server = await nursery.start(functools.partial(serve_websocket, echo_ws, "127.0.0.1", 0,
                                                                   ssl_context=None))
                    box["port"] = server.port
                elif kind == "demo":
                    box["port"] = await nursery.start(Server(demo_app, Config()).serve_tcp, "127.0.0.1", 0)
                else:
                    handler = {"silent": silent, "http": http, "garbage": garbage, "closes": closes,
                               "http10": http10}[kind]
                    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
                    box["port"] = listeners[0].socket.getsockname()[1]
                ready.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["port"]
    finally:
        trio.from_thread.run_sync(box["scope"].cancel, trio_token=box["token"])
        thread.join(10)


def _check(url: str, **kwargs) -> str:
    with pytest.raises(TargetUnavailable) as info:
        preflight(MachineOptions(target=url, transport="tcp"), **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"target {url}: "), message
    return message


def test_nothing_listening_is_named_after_a_bounded_number_of_attempts() -> None:
    message = _check("ws://127.0.0.1:1/", attempts=2)
    assert "cannot connect to 127.0.0.1:1 (2 attempts" in message and "refused" in message.lower()


@pytest.mark.parametrize("kind, words", [
    ("silent", "the WebSocket handshake did not complete within 1 s"),
    ("closes", "the WebSocket handshake did not complete within 1 s (no answer, the connection closed"),
    ("http10", "the WebSocket handshake did not complete within 1 s"),
    ("garbage", "not a WebSocket server: its answer to the handshake is not HTTP"),
    ("http", "refused with HTTP 404"),
    ("echo_ws", "does not speak PROTOCOL.md"),
    ("demo", "scripted app (PROTOCOL.md appendix A) is not served"),
])
def test_a_server_that_is_not_a_scripted_protocol_server_is_named_as_such(kind: str, words: str) -> None:
    with foreign_server(kind) as port:
        assert words in _check(f"ws://127.0.0.1:{port}/", timeout=1.0)


def test_a_url_our_handshake_cannot_carry_is_named_as_such_not_blamed_on_the_server() -> None:
    """A non-ASCII path: h11 cannot write our own request line (a traceback, exit 1, before);
    it is not the server's answer."""
    with foreign_server("silent") as port:
        message = _check(f"ws://127.0.0.1:{port}/caf\u00e9", timeout=1.0)
    assert "cannot send a WebSocket handshake for this URL: its path must be ASCII" in message


def test_the_reference_script_server_passes(script_server_url: str) -> None:
    preflight(MachineOptions(target=script_server_url, transport="tcp"))


def test_fuzz_against_nothing_exits_2_with_one_line_before_any_example(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("STATEMODEL_MACHINE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "statemodel", "fuzz", "--target", "ws://127.0.0.1:1/", "--transport", "tcp",
         "--examples", "1"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("statemodel fuzz: error:")]
    assert len(errors) == 1 and "ws://127.0.0.1:1/" in errors[0] and "cannot connect" in errors[0], proc.stderr
    assert "examples" not in proc.stdout  # no example ran


def test_soak_against_nothing_exits_2_naming_the_url(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "statemodel", "soak", "--target", "ws://127.0.0.1:1/", "--duration", "1"],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ws://127.0.0.1:1/" in proc.stderr and "cannot connect" in proc.stderr, proc.stderr
