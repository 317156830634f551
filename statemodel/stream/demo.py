"""Example application for `statemodel serve` and the README demo: one stream mixes text,
JSON, binary and a multipart body, paced so a killed connection lands mid-stream."""

from __future__ import annotations

import json
from typing import AsyncIterator

import trio

from .testapp import blob, text


async def demo_app(request) -> AsyncIterator[str | bytes]:
    """Open payload (optional JSON): {"count": 10, "size": 65536, "interval": 0.2}."""
    try:
        opts = json.loads(request.payload or "{}")
    except (ValueError, UnicodeDecodeError):
        opts = {}
    count = int(opts.get("count", 10))
    size = int(opts.get("size", 64 * 1024))
    interval = float(opts.get("interval", 0.2))
    for i in range(count):
        yield f"text {i}: {text(i, 40)}"
        yield json.dumps({"chunk": i, "of": count, "session": request.session_id[:8]})
        yield blob(i, size)
        await trio.sleep(interval)
    boundary = "statemodel-demo"
    yield f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
    yield f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + blob(99, 1024) + b"\r\n"
    yield f"--{boundary}--\r\n"
