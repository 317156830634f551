"""Example application for `statemodel serve` and the README demo: one stream mixes text,
JSON, binary and a multipart body, paced so a killed connection lands mid-stream."""

from __future__ import annotations

import json
from typing import AsyncIterator

import trio

from .errors import StreamError
from .testapp import blob, text


#: What one demo request may ask for: anything larger is refused before any work is done
#: (a 300 MB request used to cost 570 MiB of RSS and a 2.4 s stall of the event loop).
LIMITS = {"count": (0, 1000), "size": (0, 1024 * 1024), "interval": (0.0, 60.0)}


def _option(opts: dict, name: str, default: float, kind: type) -> float:
    value = opts.get(name, default)
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
            or (kind is int and value != int(value)):
        raise StreamError(f"bad_request: {name} must be a number in [{lo}, {hi}]"
                          f"{' (an integer)' if kind is int else ''}, got {str(value)[:40]!r}")
    return kind(value)


async def demo_app(request) -> AsyncIterator[str | bytes]:
    """Open payload (optional JSON): {"count": 10, "size": 65536, "interval": 0.2}, each
    within LIMITS (else the stream fails with `bad_request: ...`)."""
    try:
        opts = json.loads(request.payload or "{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        opts = {}
    if not isinstance(opts, dict):
        opts = {}
    count = _option(opts, "count", 10, int)
    size = _option(opts, "size", 64 * 1024, int)
    interval = _option(opts, "interval", 0.2, float)
    for i in range(count):
        yield f"text {i}: {text(i, 40)}"
        yield json.dumps({"chunk": i, "of": count, "session": request.session_id[:8]})
        yield blob(i, size)
        await trio.sleep(interval)
    boundary = "statemodel-demo"
    yield f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
    yield f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode() + blob(99, 1024) + b"\r\n"
    yield f"--{boundary}--\r\n"
