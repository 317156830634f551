"""Record the protocol frames a connection exchanges, for the conformance report.

``WireTap`` wraps the transport stream a client (or a rogue peer) dials and parses the
WebSocket bytes both ways (RFC 6455 framing, client frames unmasked) into PROTOCOL.md frame
headers. It observes only: bytes pass through unchanged. Tokens are redacted; payloads are
recorded by size.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import trio

from statemodel.net.wsframes import take_frame

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE = 0x0, 0x1, 0x2, 0x8
MAX_FRAMES = 400  # per case; later frames are counted, not kept
MAX_HTTP_HEAD = 64 * 1024


class FrameLog:
    """Frames of every tapped connection of one case, in the order they crossed the wire."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.dropped = 0
        self.connections = 0
        self.start: float | None = None

    def add(self, conn: str, direction: str, entry: dict[str, Any]) -> None:
        now = trio.current_time()
        if self.start is None:
            self.start = now
        if len(self.frames) >= MAX_FRAMES:
            self.dropped += 1
            return
        self.frames.append({"t": round(now - self.start, 4), "conn": conn, "dir": direction, **entry})

    def wrap(self, stream: trio.abc.Stream, label: str) -> "WireTap":
        self.connections += 1
        return WireTap(stream, self, f"{label} #{self.connections}")


def summarize(message: bytes) -> dict[str, Any]:
    """A protocol frame as a short dict: its header (token redacted) and payload size."""
    if len(message) < 4:
        return {"frame": f"undecodable ({len(message)} bytes)"}
    (hlen,) = struct.unpack_from(">I", message)
    try:
        header = json.loads(message[4:4 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {"frame": f"undecodable ({len(message)} bytes)"}
    if not isinstance(header, dict):
        return {"frame": f"header is not an object ({len(message)} bytes)"}
    header = _redact(header)
    out: dict[str, Any] = {"frame": header}
    payload = len(message) - 4 - hlen
    if payload > 0:
        out["payload"] = payload
    return out


def _redact(header: dict) -> dict:
    header = dict(header)
    if "token" in header:
        header["token"] = "…"
    if isinstance(header.get("resume"), dict) and "token" in header["resume"]:
        header["resume"] = {**header["resume"], "token": "…"}
    return header


class _Parser:
    """One direction's WebSocket frames (after the HTTP upgrade), reassembled into messages."""

    def __init__(self, log: FrameLog, conn: str, direction: str) -> None:
        self.log, self.conn, self.direction = log, conn, direction
        self.buf = bytearray()
        self.http = True
        self.opaque = False
        self.message: list[bytes] = []
        self.kind = OP_BINARY

    def feed(self, data: bytes) -> None:
        if self.opaque or not data:
            return
        self.buf += data
        if self.http:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                self.opaque = len(self.buf) > MAX_HTTP_HEAD
                return
            del self.buf[:end + 4]
            self.http = False
        while self._frame():
            pass

    def _frame(self) -> bool:
        frame = take_frame(self.buf)
        if frame is None:
            return False
        fin, op, payload = frame
        if op == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            reason = payload[2:].decode("utf-8", "replace")[:120]
            self.log.add(self.conn, self.direction, {"close": code, "reason": reason})
        elif op in (OP_TEXT, OP_BINARY, OP_CONT):
            if op != OP_CONT:
                self.kind, self.message = op, []
            self.message.append(payload)
            if fin:
                whole = b"".join(self.message)
                self.message = []
                if self.kind == OP_TEXT:
                    self.log.add(self.conn, self.direction, {"frame": f"text message ({len(whole)} bytes)"})
                else:
                    self.log.add(self.conn, self.direction, summarize(whole))
        return True


class WireTap(trio.abc.HalfCloseableStream):
    """A pass-through stream that logs the protocol frames crossing it."""

    def __init__(self, inner: trio.abc.Stream, log: FrameLog, conn: str) -> None:
        self.inner = inner
        self._out = _Parser(log, conn, "c2s")
        self._in = _Parser(log, conn, "s2c")

    async def send_all(self, data) -> None:
        await self.inner.send_all(data)
        self._out.feed(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self.inner.receive_some(max_bytes)
        self._in.feed(data)
        return data

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()
